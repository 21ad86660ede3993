package ops

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	cases := []struct {
		name, file, content string
		want                int64
		wantErr             bool
	}{
		{"v2 limit", "memory.max", "268435456\n", 268435456, false},
		{"v2 unlimited", "memory.max", "max\n", 0, false},
		{"v1 limit", "memory/memory.limit_in_bytes", "536870912\n", 536870912, false},
		{"v1 unlimited", "memory/memory.limit_in_bytes", "9223372036854771712\n", 0, false},
		{"garbage", "memory.max", "lots\n", 0, true},
		{"no cgroup", "", "", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if c.file != "" {
				p := filepath.Join(root, c.file)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := CgroupMemoryLimit(root)
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("CgroupMemoryLimit = %d, %v; want %d, error %v", got, err, c.want, c.wantErr)
			}
		})
	}
}

func TestSetMemoryLimitLeavesGOMEMLIMIT(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "memory.max"), []byte("1000000000"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOMEMLIMIT", "500MiB")
	if got, err := SetMemoryLimit(root); err != nil || got != 0 {
		t.Fatalf("SetMemoryLimit with GOMEMLIMIT set = %d, %v; want it left alone", got, err)
	}
}
