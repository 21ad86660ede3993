package tail

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ferrylogs/ferry/pipeline/parse"
)

// TestLagBytes: ferry_agent_file_lag_bytes is the bytes of the followed
// files past their acknowledged offsets: all of what was read while no
// commit came, nothing once every chunk is committed, the new bytes once
// the file grows; ferry_agent_files_tailed counts the followed files.
func TestLagBytes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	if err := os.WriteFile(path, []byte("one\ntwo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOpts{holdCommits: true}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	h.waitMsgs([]string{"one", "two"})
	lag := func() uint64 { return h.m.Counters()["ferry_agent_file_lag_bytes"] }
	if c := h.m.Counters(); c["ferry_agent_files_tailed"] != 1 || c["ferry_agent_file_lag_bytes"] != 8 {
		t.Fatalf("before any commit: counters %v, want 1 file tailed, lag 8", c)
	}
	h.commitPending(-1)
	waitFor(t, "lag 0 after the commits", func() bool { return lag() == 0 })
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("three\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(t, "lag 6 after the file grew", func() bool { return lag() == 6 })
	h.commitPending(-1) // may commit nothing yet: the chunk may not be read
	h.waitMsgs([]string{"one", "two", "three"})
	h.commitPending(-1)
	waitFor(t, "lag 0 after the last commit", func() bool { return lag() == 0 })
}
