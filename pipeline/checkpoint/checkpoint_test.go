package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaveAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Existed() {
		t.Fatal("a fresh directory must not report an existing positions file")
	}
	s.Put(Entry{ID: "a", Dev: 1, Ino: 2, Path: "/x", Offset: 10})
	s.Put(Entry{ID: "b", Dev: 1, Ino: 3, Path: "/y", Offset: 0})
	s.Advance("a", 50)
	s.Advance("a", 20) // never backwards
	if !s.Advance("b", 7) || s.Advance("zz", 1) {
		t.Fatal("Advance must report whether the entry exists")
	}
	s.Remove("b")
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Existed() {
		t.Fatal("reopened store must report the saved file")
	}
	all := r.All()
	if len(all) != 1 || all[0].ID != "a" || all[0].Offset != 50 {
		t.Fatalf("reopened positions = %+v, want only a at 50", all)
	}
	if got := r.Find(1, 2); len(got) != 1 {
		t.Fatalf("Find(1,2) = %v", got)
	}
}

func TestCorruptFileNamesPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	if err := os.WriteFile(p, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Open of a corrupt file: err = %v, want one naming %s", err, p)
	}
}
