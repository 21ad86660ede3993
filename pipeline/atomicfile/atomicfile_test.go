package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, data := range []string{"one", "two, longer", ""} {
		if err := Write(p, []byte(data)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != data {
			t.Fatalf("content = %q, %v; want %q", got, err, data)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the file", len(ents))
	}
}

func TestWriteNamesMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing", "f")
	if err := Write(p, []byte("x")); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

// An error names the file once ("write X: write X: …" was issue 19, case 14).
func TestErrorNamesPathOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	err := Write(filepath.Join(dir, "f"), []byte("x"))
	if err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
	if n := strings.Count(err.Error(), dir); n != 1 {
		t.Errorf("error %q names %s %d times, want once", err, dir, n)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %q does not wrap ErrNotExist", err)
	}
	err = SyncDir(dir)
	if err == nil || strings.Count(err.Error(), dir) != 1 {
		t.Errorf("SyncDir: error %v, want one naming %s once", err, dir)
	}
}
