package ops

import (
	"os"
	"path/filepath"
	"runtime/debug"
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

func TestApplyMemoryLimit(t *testing.T) {
	cases := []struct {
		name       string
		cgroup     string // memory.max, "" for none
		gomemlimit string
		configured int64
		want       MemoryLimit
	}{
		{"no container", "", "", 128 << 20, MemoryLimit{128 << 20, "memory_limit", 107374182}},
		{"container larger", "1073741824", "", 128 << 20, MemoryLimit{128 << 20, "memory_limit", 107374182}},
		{"container smaller", "104857600", "", 128 << 20, MemoryLimit{104857600, "container", 83886080}},
		{"container unlimited", "max", "", 64 << 20, MemoryLimit{64 << 20, "memory_limit", 53687091}},
		{"GOMEMLIMIT set", "104857600", "500MiB", 128 << 20, MemoryLimit{104857600, "container", 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if c.cgroup != "" {
				if err := os.WriteFile(filepath.Join(root, "memory.max"), []byte(c.cgroup), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("GOMEMLIMIT", c.gomemlimit)
			before := debug.SetMemoryLimit(-1)
			defer debug.SetMemoryLimit(before)
			got, err := ApplyMemoryLimit(c.configured, root)
			if err != nil || got != c.want {
				t.Fatalf("ApplyMemoryLimit = %+v, %v; want %+v", got, err, c.want)
			}
			after := debug.SetMemoryLimit(-1)
			switch {
			case c.want.Runtime > 0 && after != c.want.Runtime:
				t.Fatalf("runtime limit %d, want %d", after, c.want.Runtime)
			case c.want.Runtime == 0 && after != before:
				t.Fatalf("runtime limit changed to %d with GOMEMLIMIT set", after)
			}
		})
	}
}
