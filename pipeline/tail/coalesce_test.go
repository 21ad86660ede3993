package tail

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/parse"
)

// TestReadDelayCoalesces shows that with a read delay the writes made to
// several files within it are read at once: each file's new lines, written
// one write(2) each, come in exactly one chunk. The poll interval is an
// hour, so nothing but the delayed wake (after a write notification) reads
// them. The writes are paced (a pause between rounds, the stimulus, not a
// synchronisation) so that without the delay each would be read on its own;
// the delay is long enough that they all fall within it even on a loaded
// machine.
func TestReadDelayCoalesces(t *testing.T) {
	const (
		delay = 2 * time.Second
		pace  = 25 * time.Millisecond
	)
	cases := []struct {
		name          string
		files, writes int
	}{
		{"one file", 1, 20},
		{"many files", 8, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			paths := make([]string, tc.files)
			for i := range paths {
				paths[i] = filepath.Join(dir, fmt.Sprintf("f%d.log", i))
				appendFile(t, paths[i], "first\n")
			}
			in := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"))
			in.PollInterval = time.Hour
			in.ReadDelay = delay
			h := newHarness(t, harnessOpts{}, in)
			h.waitEvents(tc.files)
			before := len(h.chunkList())

			files := make([]*os.File, tc.files)
			for i, p := range paths {
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				files[i] = f
			}
			start := time.Now()
			for w := range tc.writes {
				for i, f := range files {
					if _, err := fmt.Fprintf(f, "line %d of %d\n", w, i); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(pace)
			}
			if took := time.Since(start); took > delay/2 {
				t.Skipf("writing took %s, too slow a machine to fall within the delay", took)
			}
			h.waitEvents(tc.files * (tc.writes + 1))
			chunks := h.chunkList()[before:]
			perFile := map[string]int{}
			for _, c := range chunks {
				if c.Recs != tc.writes {
					t.Errorf("chunk of %s holds %d events, want all %d writes in one", c.File.Path, c.Recs, tc.writes)
				}
				perFile[c.File.Path]++
			}
			if len(chunks) != tc.files {
				t.Errorf("%d chunks for %d files written within the delay, want one each: %v", len(chunks), tc.files, perFile)
			}
		})
	}
}

// TestReadDelayWakes shows that a delayed wake does come: with a poll
// interval of an hour, lines written one at a time, each after the last
// arrived, are read (each within the delay of its notification).
func TestReadDelayWakes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendFile(t, path, "first\n")
	in := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.PollInterval = time.Hour
	in.ReadDelay = 20 * time.Millisecond
	h := newHarness(t, harnessOpts{}, in)
	h.waitEvents(1)
	lines := numbered("line", 0, 5)
	for i, l := range lines {
		appendFile(t, path, l+"\n")
		h.waitEvents(i + 2)
	}
	assertExactlyOnce(t, h.snapshot(), append([]string{"first"}, lines...))
}

// TestReadDelayWindowsFollow: while a file is written steadily, read-delay
// windows follow one another, each ended by its timer, and the notifier
// wakes the agent only for the first write of the run (not for the first
// write of every window); every line still comes.
func TestReadDelayWindowsFollow(t *testing.T) {
	const (
		delay = 100 * time.Millisecond
		pace  = 10 * time.Millisecond
	)
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendFile(t, path, "first\n")
	in := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.PollInterval = time.Hour
	in.ReadDelay = delay
	h := newHarness(t, harnessOpts{}, in)
	h.waitEvents(1)
	if h.m.notes == nil {
		t.Skip("no file notifications here")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wakes, windows := h.m.notifyWakes.Load(), h.m.windows.Load()
	lines := numbered("line", 0, 150) // 1.5 s: about 15 windows
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(pace) // the stimulus: a steady writer
	}
	h.waitEvents(1 + len(lines))
	assertExactlyOnce(t, h.snapshot(), append([]string{"first"}, lines...))
	w, n := h.m.notifyWakes.Load()-wakes, h.m.windows.Load()-windows
	if n < 5 {
		t.Skipf("only %d windows: too slow a machine to tell", n)
	}
	// A writer stalled for a whole window (a loaded machine) starts a new
	// run: a few are allowed, not one per window.
	if w > n/3 {
		t.Errorf("the notifier woke the agent %d times in %d windows of a steady writer, want about once", w, n)
	}
}

// TestUntilPoll: the next poll falls on a multiple of the interval, within
// one interval, whatever the moment asked at, so followers of the same
// interval poll together.
func TestUntilPoll(t *testing.T) {
	base := time.Unix(1700000000, 0) // a multiple of every interval below
	cases := []struct {
		interval, at, want time.Duration
	}{
		{250 * time.Millisecond, 0, 250 * time.Millisecond},
		{250 * time.Millisecond, time.Nanosecond, 250*time.Millisecond - time.Nanosecond},
		{250 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond},
		{250 * time.Millisecond, 249 * time.Millisecond, time.Millisecond},
		{250 * time.Millisecond, 1250 * time.Millisecond, 250 * time.Millisecond},
		{time.Second, 1500 * time.Millisecond, 500 * time.Millisecond},
		{20 * time.Millisecond, 35 * time.Millisecond, 5 * time.Millisecond},
	}
	for _, c := range cases {
		if got := untilPoll(base.Add(c.at), c.interval); got != c.want {
			t.Errorf("untilPoll(+%s, %s) = %s, want %s", c.at, c.interval, got, c.want)
		}
	}
}

// TestReadDelayOverflow: while a window holds the notifications in the
// kernel, more of them than its queue takes (writes alternating between
// two files are not merged) overflow it and the later ones are lost, among
// them the only one of a third file. The overflow makes every file be
// looked at: the third file's line comes without waiting for its poll (an
// hour away).
func TestReadDelayOverflow(t *testing.T) {
	const delay = time.Second
	limit, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skipf("no inotify queue limit to overflow: %v", err)
	}
	var queue int
	if _, err := fmt.Sscan(string(limit), &queue); err != nil || queue > 1<<17 {
		t.Skipf("inotify queue of %q events: too many to overflow quickly", limit)
	}
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log"), filepath.Join(dir, "c.log")
	for _, p := range []string{a, b, c} {
		appendFile(t, p, "first\n")
	}
	in := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.PollInterval = time.Hour
	in.ReadDelay = delay
	h := newHarness(t, harnessOpts{}, in)
	h.waitEvents(3)
	fa, err := os.OpenFile(a, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.OpenFile(b, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	start := time.Now()
	n := queue/2 + 4096 // the watcher reads up to 4096 before it blocks
	for range n {
		if _, err := fa.WriteString("x\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := fb.WriteString("y\n"); err != nil {
			t.Fatal(err)
		}
	}
	appendFile(t, c, "last\n")
	if took := time.Since(start); took > delay/2 {
		t.Skipf("writing took %s: the window may have ended before the queue overflowed", took)
	}
	h.waitMsgs([]string{"last"})
	h.waitEvents(3 + 2*n + 1)
	if !strings.Contains(h.logs.String(), "overflowed") {
		t.Skip("the queue did not overflow: nothing shown")
	}
}

// TestGoneLooks: a turn woken by a write does not look whether the file is
// gone (that is for polls, here an hour apart), a deletion notification
// makes the next turn look: the deleted file's position is retired without
// waiting for a poll.
func TestGoneLooks(t *testing.T) {
	for _, delay := range []time.Duration{0, 20 * time.Millisecond} {
		t.Run(fmt.Sprintf("read_delay %s", delay), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a.log")
			appendFile(t, path, "first\n")
			in := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"))
			in.PollInterval = time.Hour
			in.ReadDelay = delay
			h := newHarness(t, harnessOpts{}, in)
			h.waitEvents(1)
			fl := h.follower(devInoOf(t, path))
			before := fl.looks.Load() // the first turn looks
			lines := numbered("line", 0, 5)
			for i, l := range lines {
				appendFile(t, path, l+"\n")
				h.waitEvents(i + 2)
			}
			if n := fl.looks.Load() - before; n != 0 {
				t.Errorf("turns woken by writes looked %d times whether the file is gone", n)
			}
			id := h.snapshot()[0].FileID
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the deleted file's position retired", func() bool {
				e, ok := h.store.Get(id)
				return ok && e.Retired
			})
		})
	}
}

// TestQuietPolls: a poll of a file with nothing new and nothing waiting
// reads nothing (it only looks whether the file is gone) and does not even
// wake its follower (the manager polls it); once the file grows, a poll
// reads it, notifications or not.
func TestQuietPolls(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendFile(t, path, "first\n")
	in := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.ReadDelay = time.Hour // only polls read (testPoll apart)
	h := newHarness(t, harnessOpts{}, in)
	h.waitEvents(1)
	fl := h.follower(devInoOf(t, path))
	waitFor(t, "the follower parked", func() bool { fl.parked.mu.Lock(); defer fl.parked.mu.Unlock(); return fl.parked.on })
	reads, looks, turns := fl.reads.Load(), fl.looks.Load(), fl.turns.Load()
	waitFor(t, "five polls", func() bool { return fl.looks.Load() >= looks+5 })
	if n := fl.reads.Load() - reads; n != 0 {
		t.Errorf("%d polls of a quiet file read it", n)
	}
	if n := fl.turns.Load() - turns; n != 0 {
		t.Errorf("%d polls of a quiet file woke its follower", n)
	}
	appendFile(t, path, "second\n")
	h.waitMsgs([]string{"second"})
	if fl.reads.Load() == reads {
		t.Error("the file grew and no poll read it")
	}
}
