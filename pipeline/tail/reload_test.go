package tail

import (
	"path/filepath"
	"testing"

	"github.com/ferrylogs/ferry/pipeline/parse"
)

func (h *harness) follower(di devIno) *follower {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.m.followers[di]
}

// SetInputs: a new path is picked up, a newly excluded file stops being
// read with its position kept, an unchanged file keeps its follower, and
// including the file again resumes it where it stopped, under its id.
func TestSetInputs(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	a, b, c := filepath.Join(dir1, "a.log"), filepath.Join(dir1, "b.log"), filepath.Join(dir2, "c.log")
	a1, b1, b2, a2, c1, a3 := numbered("a1", 0, 100), numbered("b1", 0, 100), numbered("b2", 0, 100),
		numbered("a2", 0, 100), numbered("c1", 0, 100), numbered("a3", 0, 10)
	appendFile(t, a, joinLines(a1))
	appendFile(t, b, joinLines(b1))
	in := input("x", parse.FormatPlain, filepath.Join(dir1, "*.log"))
	h := newHarness(t, harnessOpts{}, in)
	evs := h.waitMsgs(append(append([]string(nil), a1...), b1...))
	bID := byMsg(evs)[b1[0]].FileID
	waitFor(t, "b.log committed", func() bool {
		e, _ := h.store.Get(bID)
		return e.Offset == int64(len(joinLines(b1)))
	})
	fa := h.follower(devInoOf(t, a))

	in2 := in
	in2.Paths = []string{filepath.Join(dir1, "*.log"), filepath.Join(dir2, "*.log")}
	in2.Exclude = []string{"b.log"}
	if err := h.m.SetInputs([]Input{in2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b.log no longer followed", func() bool { return h.follower(devInoOf(t, b)) == nil })
	appendFile(t, a, joinLines(a2))
	appendFile(t, b, joinLines(b2))
	appendFile(t, c, joinLines(c1))
	h.waitMsgs(append(append([]string(nil), a2...), c1...))
	settle() // b2 must not come
	assertExactlyOnce(t, h.snapshot(), concat(a1, b1, a2, c1))
	if got := h.follower(devInoOf(t, a)); got != fa {
		t.Fatal("a.log, still matched, got a new follower")
	}
	if e, ok := h.store.Get(bID); !ok || e.Offset != int64(len(joinLines(b1))) {
		t.Fatalf("position of the excluded b.log: %+v %v, want offset %d kept", e, ok, len(joinLines(b1)))
	}

	// A bad configuration changes nothing.
	bad := in
	bad.Paths = []string{"[x"}
	if err := h.m.SetInputs([]Input{bad}); err == nil {
		t.Fatal("SetInputs accepted a malformed pattern")
	}
	if err := h.m.SetInputs([]Input{in2, in2}); err == nil {
		t.Fatal("SetInputs accepted a repeated input name")
	}

	in3 := in2
	in3.Exclude = nil
	if err := h.m.SetInputs([]Input{in3}); err != nil {
		t.Fatal(err)
	}
	appendFile(t, a, joinLines(a3))
	evs = h.waitMsgs(append(append([]string(nil), b2...), a3...))
	settle()
	assertExactlyOnce(t, h.snapshot(), concat(a1, b1, a2, c1, b2, a3))
	if got := byMsg(evs)[b2[0]]; got.FileID != bID || got.Off != int64(len(joinLines(b1))) {
		t.Fatalf("b.log resumed as %v, want id %s at offset %d", got, bID, len(joinLines(b1)))
	}
	if got := h.follower(devInoOf(t, a)); got != fa {
		t.Fatal("a.log, still matched, got a new follower")
	}
}

func byMsg(evs []ev) map[string]ev {
	out := map[string]ev{}
	for _, e := range evs {
		out[e.Msg] = e
	}
	return out
}

func concat(ls ...[]string) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l...)
	}
	return out
}
