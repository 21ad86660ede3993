package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// A damaged positions file does not stop the agent: it is moved aside,
// named in a problem, and the store starts from a complete temporary file
// of an interrupted save if there is one, else empty; either way Existed
// says a positions file was there (so start_at: end does not skip lines).
func TestDamagedFileMovedAside(t *testing.T) {
	good := `{"version":1,"entries":[{"id":"a","dev":1,"ino":2,"path":"/x","input":"i","offset":10}]}`
	cases := []struct {
		name, content string
		tmps          map[string]string
		want          []string // ids recovered
	}{
		{name: "empty", content: ""},
		{name: "garbage", content: "{not json"},
		{name: "truncated", content: good[:40]},
		{name: "from tmp", content: "\x00\x00", tmps: map[string]string{".positions.json.tmp123": good, ".positions.json.tmp999": good[:30]}, want: []string{"a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, FileName)
			if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			for n, d := range c.tmps {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(d), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Open(dir)
			if err != nil {
				t.Fatalf("Open of a damaged file: %v", err)
			}
			if !s.Existed() {
				t.Fatal("Existed must be true after a damaged file")
			}
			var ids []string
			for _, e := range s.All() {
				ids = append(ids, e.ID)
			}
			if strings.Join(ids, ",") != strings.Join(c.want, ",") {
				t.Fatalf("recovered %v, want %v", ids, c.want)
			}
			aside, _ := filepath.Glob(p + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("moved aside: %v, want one positions.json.corrupt-<time>", aside)
			}
			if got, _ := os.ReadFile(aside[0]); string(got) != c.content {
				t.Fatalf("the file moved aside holds %q, want the damaged content", got)
			}
			if len(s.Problems()) == 0 || !strings.Contains(s.Problems()[0].Error(), aside[0]) {
				t.Fatalf("problems %v, want the first naming %s", s.Problems(), aside[0])
			}
			if err := s.Save(); err != nil {
				t.Fatal(err)
			}
			r, err := Open(dir)
			if err != nil || len(r.Problems()) != 0 || len(r.All()) != len(c.want) {
				t.Fatalf("reopened after save: %v, problems %v, %d entries", err, r.Problems(), len(r.All()))
			}
		})
	}
}

// Entries that cannot be right are dropped at load, each named once.
func TestImpossibleEntriesDropped(t *testing.T) {
	dir := t.TempDir()
	data := `{"version":1,"entries":[
 {"id":"ok","path":"/ok","offset":5,"check":"x","check_len":5},
 {"id":"neg","path":"/neg.log","offset":-1},
 {"id":"","path":"/noid.log","offset":1},
 {"id":"fp","path":"/fp.log","offset":1,"fingerprint_len":5000},
 {"id":"ck","path":"/ck.log","offset":3,"check_len":10}]}`
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if all := s.All(); len(all) != 1 || all[0].ID != "ok" {
		t.Fatalf("kept %+v, want only ok", all)
	}
	ps := s.Problems()
	for _, name := range []string{"/neg.log", "/noid.log", "/fp.log", "/ck.log"} {
		n := 0
		for _, p := range ps {
			if strings.Contains(p.Error(), name) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s named in %d problems, want 1: %v", name, n, ps)
		}
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	if r, _ := Open(dir); len(r.Problems()) != 0 {
		t.Fatalf("dropped entries came back: %v", r.Problems())
	}
}

// A state directory that cannot be created or written is refused at Open
// with an error that says state_dir and names the path once.
func TestStateDirNotWritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(filepath.Join(file, "state"))
	if err == nil || !strings.HasPrefix(err.Error(), "state_dir") || strings.Count(err.Error(), file) != 1 {
		t.Fatalf("err = %v, want state_dir and the path once", err)
	}
}

// Generations: an id is never handed out twice for one identity, also
// after its entry is removed and the store reopened.
func TestGenerations(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	if g := s.NextGen("b"); g != 0 {
		t.Fatalf("first generation %d, want 0", g)
	}
	s.Put(Entry{ID: GenID("b", 0), Base: "b"})
	if g := s.NextGen("b"); g != 1 {
		t.Fatalf("with generation 0 saved: %d, want 1", g)
	}
	s.Put(Entry{ID: GenID("b", 1), Base: "b", Gen: 1})
	s.Remove(GenID("b", 1))
	s.Remove(GenID("b", 0)) // the older one last: the tombstone keeps 1
	if g := s.NextGen("b"); g != 2 {
		t.Fatalf("after removal: %d, want 2", g)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	r, _ := Open(dir)
	if g := r.NextGen("b"); g != 2 {
		t.Fatalf("after reopening: %d, want 2", g)
	}
	if GenID("b", 0) != "b" || GenID("b", 2) != "b-g2" {
		t.Fatal("GenID")
	}
	// Legacy ids of a truncated file (base.<time>) count as used.
	r.Put(Entry{ID: "c.123"})
	if g := r.NextGen("c"); g != 1 {
		t.Fatalf("legacy: %d, want 1", g)
	}
}

// AdvanceCheck records the check with the offset, never backwards; Retire
// marks the entry without removing it.
func TestAdvanceCheckRetire(t *testing.T) {
	s, _ := Open(t.TempDir())
	s.Put(Entry{ID: "a"})
	s.AdvanceCheck("a", 10, "c10", 10)
	s.AdvanceCheck("a", 5, "c5", 5)
	s.Retire("a")
	if e, _ := s.Get("a"); e.Offset != 10 || e.Check != "c10" || e.CheckLen != 10 || !e.Retired {
		t.Fatalf("entry %+v", e)
	}
}

// Tombstones are bounded: the oldest go first, and old ones expire.
func TestTombstonesBounded(t *testing.T) {
	s, _ := Open(t.TempDir())
	for i := 0; i < tombMax+100; i++ {
		id := fmt.Sprintf("b%d", i)
		s.Put(Entry{ID: id})
		s.Remove(id)
	}
	if len(s.tombs) > tombMax {
		t.Fatalf("%d tombstones, want at most %d", len(s.tombs), tombMax)
	}
	if g := s.NextGen(fmt.Sprintf("b%d", tombMax+99)); g != 1 {
		t.Fatalf("the newest tombstone is gone (next gen %d)", g)
	}
	s.tombs["old"] = tomb{Base: "old", At: time.Now().Add(-tombKeep - time.Hour)}
	s.pruneTombs(time.Now())
	if _, ok := s.tombs["old"]; ok {
		t.Fatal("an expired tombstone was kept")
	}
}
