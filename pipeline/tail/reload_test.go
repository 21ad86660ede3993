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

// SetInputs while lines handed on are not acknowledged yet: a file that an
// input of another name matches (default names are <type>-<index>, so an
// input inserted before another renames it) keeps its follower, and its
// later chunks and saved position carry the new name; a file stopped and
// matched again is not read again before what its stopped follower handed
// on is acknowledged. Either way no line comes twice and the ids stay.
func TestSetInputsInFlight(t *testing.T) {
	for _, tc := range []struct {
		name string
		// configs are applied in turn, given the file's directory and
		// another one.
		configs  func(dir, other string) [][]Input
		keep     bool   // the file keeps its follower
		wantName string // input of the chunks after the change
	}{
		{
			name: "input renamed by an insertion before it",
			configs: func(dir, other string) [][]Input {
				return [][]Input{{
					input("file-0", parse.FormatPlain, filepath.Join(other, "*.log")),
					input("x-1", parse.FormatPlain, filepath.Join(dir, "*.log")),
				}}
			},
			keep: true, wantName: "x-1",
		},
		{
			name: "file removed and added back",
			configs: func(dir, other string) [][]Input {
				return [][]Input{
					{input("file-0", parse.FormatPlain, filepath.Join(other, "*.log"))},
					{input("x-0", parse.FormatPlain, filepath.Join(dir, "*.log"))},
				}
			},
			wantName: "x-0",
		},
		{
			name: "file removed and added back under another name",
			configs: func(dir, other string) [][]Input {
				return [][]Input{
					{input("file-0", parse.FormatPlain, filepath.Join(other, "*.log"))},
					{
						input("file-0", parse.FormatPlain, filepath.Join(other, "*.log")),
						input("x-1", parse.FormatPlain, filepath.Join(dir, "*.log")),
					},
				}
			},
			wantName: "x-1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, other := t.TempDir(), t.TempDir()
			a := filepath.Join(dir, "a.log")
			a1, a2 := numbered("a1", 0, 200), numbered("a2", 0, 50)
			appendFile(t, a, joinLines(a1))
			h := newHarness(t, harnessOpts{holdCommits: true}, input("x-0", parse.FormatPlain, filepath.Join(dir, "*.log")))
			evs := h.waitMsgs(a1)
			id := evs[0].FileID
			fa := h.follower(devInoOf(t, a))
			for _, c := range tc.configs(dir, other) {
				if err := h.m.SetInputs(c); err != nil {
					t.Fatal(err)
				}
			}
			settle() // a second follower from the committed offset would re-send a1 now
			assertExactlyOnce(t, h.snapshot(), a1)
			if kept := h.follower(devInoOf(t, a)) == fa; kept != tc.keep {
				t.Fatalf("follower kept: %v, want %v", kept, tc.keep)
			}
			h.setHold(false)
			h.commitPending(-1)
			appendFile(t, a, joinLines(a2))
			evs = h.waitMsgs(a2)
			settle()
			assertExactlyOnce(t, h.snapshot(), concat(a1, a2))
			for _, e := range evs {
				if e.FileID != id {
					t.Fatalf("%v: id %s, want %s", e, e.FileID, id)
				}
			}
			chunks := h.chunkList()
			if last := chunks[len(chunks)-1].File; last.Input != tc.wantName {
				t.Fatalf("last chunk of input %q, want %q", last.Input, tc.wantName)
			}
			waitFor(t, "a.log committed", func() bool {
				e, _ := h.store.Get(id)
				return e.Offset == int64(len(joinLines(a1))+len(joinLines(a2)))
			})
			if e, _ := h.store.Get(id); e.Input != tc.wantName {
				t.Fatalf("saved position of input %q, want %q", e.Input, tc.wantName)
			}
		})
	}
}

// A follower stopped by SetInputs while it waits to hand a chunk on: that
// chunk is not in flight, so the file is followed again as soon as the
// chunks that were handed on are acknowledged, from the end of the last of
// them.
func TestSetInputsStoppedWhileBlocked(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	a := filepath.Join(dir, "a.log")
	lines := numbered("a", 0, 20*chunkMaxRecs) // more than the Chunks channel holds
	appendFile(t, a, joinLines(lines))
	in := input("x-0", parse.FormatPlain, filepath.Join(dir, "*.log"))
	h := newHarness(t, harnessOpts{paused: true}, in)
	waitFor(t, "the follower blocked on a full Chunks channel", func() bool { return len(h.m.out) == cap(h.m.out) })
	if err := h.m.SetInputs([]Input{input("y-0", parse.FormatPlain, filepath.Join(other, "*.log"))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a.log no longer followed", func() bool { return h.follower(devInoOf(t, a)) == nil })
	if err := h.m.SetInputs([]Input{in}); err != nil {
		t.Fatal(err)
	}
	h.resume()
	h.waitMsgs(lines)
	settle()
	assertExactlyOnce(t, h.snapshot(), lines)
}
