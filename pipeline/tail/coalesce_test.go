package tail

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	waitFor(t, "the follower parked", fl.isParked)
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

// parkedFollower starts a harness following one file, a.log with one line,
// polled every 250 ms with the read delay given, and returns once its
// follower has read the line and parked; notesFailed is set to failed
// (notifications must come for the test's directory).
func parkedFollower(t *testing.T, readDelay time.Duration, failed bool) (*harness, *follower, Input, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendFile(t, path, "first\n")
	in := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.PollInterval = 250 * time.Millisecond
	in.ReadDelay = readDelay
	h := newHarness(t, harnessOpts{}, in)
	h.waitEvents(1)
	fl := h.follower(devInoOf(t, path))
	if !fl.notified.Load() {
		t.Fatal("no notifications for the test's directory")
	}
	h.m.notesFailed.Store(failed)
	waitFor(t, "the follower parked", fl.isParked)
	return h, fl, in, path
}

// isParked reports whether the follower is parked (tests).
func (fl *follower) isParked() bool {
	fl.parked.mu.Lock()
	defer fl.parked.mu.Unlock()
	return fl.parked.on
}

func TestParkedPollMax(t *testing.T) {
	for _, c := range []struct{ base, want time.Duration }{
		{10 * time.Millisecond, 80 * time.Millisecond},
		{250 * time.Millisecond, 2 * time.Second},
		{300 * time.Millisecond, 1200 * time.Millisecond}, // 2400 ms would pass 2 s
		{time.Second, 2 * time.Second},
		{1500 * time.Millisecond, 1500 * time.Millisecond},
		{5 * time.Second, 5 * time.Second},
	} {
		if got := parkedPollMax(c.base); got != c.want {
			t.Errorf("parkedPollMax(%s) = %s, want %s", c.base, got, c.want)
		}
	}
}

// TestParkedPollsBackOff: the polls of a parked, quiet file back off to
// parkedPollMax while notifications cover it, and stay at the input's
// interval once notifications have failed; a poll that finds the file
// grown (its write notification lost) goes back to the interval, and the
// next one wakes the follower to read it. The polls are driven with
// made-up times a day ahead, which the manager's own polls (at the real
// time) never reach.
func TestParkedPollsBackOff(t *testing.T) {
	for _, failed := range []bool{false, true} {
		t.Run(fmt.Sprintf("notifications failed %v", failed), func(t *testing.T) {
			// A write is read by a poll, not by its notification.
			h, fl, in, path := parkedFollower(t, time.Hour, failed)
			state := func() (time.Time, time.Duration) {
				fl.parked.mu.Lock()
				defer fl.parked.mu.Unlock()
				return fl.parked.next, fl.parked.every
			}
			now := time.Now().Add(24 * time.Hour).Truncate(in.PollInterval)
			// As freshly parked, with its next poll due at now (the
			// manager's real polls may have backed off already).
			fl.parked.mu.Lock()
			fl.parked.next, fl.parked.every = now, in.PollInterval
			fl.parked.mu.Unlock()
			var everys []time.Duration
			for range 6 {
				next := fl.pollParked(now)
				_, every := state()
				// The next poll is on the next multiple of the interval
				// (see untilPoll), with the other files' polls.
				if next.IsZero() || !next.After(now) || next.Sub(now) > every || next.UnixNano()%int64(every) != 0 {
					t.Fatalf("a quiet poll at %s: next %s, every %s", now, next, every)
				}
				everys = append(everys, every)
				now = next
			}
			want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}
			if failed {
				want = []time.Duration{250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond}
			}
			if !slices.Equal(everys, want) {
				t.Errorf("poll intervals %v, want %v", everys, want)
			}

			appendFile(t, path, "second\n")
			next := fl.pollParked(now)
			if !failed {
				// The first poll leaves it to the write's notification
				// (held here), at the input's interval.
				if _, every := state(); next.IsZero() || every != in.PollInterval {
					t.Fatalf("the poll that found the file grown: next %s, every %s; want the interval %s", next, every, in.PollInterval)
				}
				next = fl.pollParked(next)
			}
			if !next.IsZero() {
				t.Fatalf("the file grew and the poll did not wake its follower (next %s)", next)
			}
			h.waitMsgs([]string{"second"})
		})
	}
}

// TestParkKeepsBackOff: a file whose writes wake its follower through
// their notifications keeps the poll interval it backed off to when it
// parks after a turn (a busy file is not polled at the input's interval
// after each write); without notifications (they failed) it parks at the
// input's interval again.
func TestParkKeepsBackOff(t *testing.T) {
	for _, failed := range []bool{false, true} {
		t.Run(fmt.Sprintf("notifications failed %v", failed), func(t *testing.T) {
			h, fl, in, path := parkedFollower(t, 0, failed)
			// As backed off by quiet polls, none of which is due before
			// the write below wakes the follower.
			backedOff := parkedPollMax(in.PollInterval)
			fl.parked.mu.Lock()
			fl.parked.every, fl.parked.next = backedOff, time.Now().Add(time.Hour)
			fl.parked.mu.Unlock()
			turns := fl.turns.Load()
			appendFile(t, path, "second\n")
			h.waitMsgs([]string{"second"})
			waitFor(t, "the follower parked after the turn that read the write", func() bool {
				return fl.turns.Load() > turns && fl.isParked()
			})
			fl.parked.mu.Lock()
			every := fl.parked.every
			fl.parked.mu.Unlock()
			want := backedOff
			if failed {
				want = in.PollInterval
			}
			if every != want {
				t.Errorf("parked after a turn with poll interval %s, want %s", every, want)
			}
		})
	}
}

func TestGlobMax(t *testing.T) {
	for _, c := range []struct{ base, want time.Duration }{
		{50 * time.Millisecond, 400 * time.Millisecond},
		{time.Second, 8 * time.Second},
		{3 * time.Second, 6 * time.Second},
		{5 * time.Second, 5 * time.Second},
		{time.Minute, time.Minute},
	} {
		if got := globMax(c.base); got != c.want {
			t.Errorf("globMax(%s) = %s, want %s", c.base, got, c.want)
		}
	}
}

// TestGlobBackOff: the periodic glob backs off while it finds nothing
// where notifications cover every pattern's directory, and runs at the
// glob interval after it found a file, once notifications failed, or for
// a pattern with a wildcard in its directory (whose new directories no
// notification announces). A file created meanwhile is still followed.
func TestGlobBackOff(t *testing.T) {
	dir := t.TempDir()
	appendFile(t, filepath.Join(dir, "a.log"), "first\n")
	in := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.GlobInterval = time.Second
	h := newHarness(t, harnessOpts{}, in)
	h.waitEvents(1)
	var got []time.Duration
	every := time.Duration(0)
	for range 6 {
		every = h.m.nextGlob(every, false)
		got = append(got, every)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("glob intervals %v, want %v", got, want)
	}
	if g := h.m.nextGlob(8*time.Second, true); g != time.Second {
		t.Errorf("after a glob that found a file: %s, want the glob interval 1s", g)
	}

	appendFile(t, filepath.Join(dir, "b.log"), "second\n")
	h.waitMsgs([]string{"second"})

	h.m.notesFailed.Store(true)
	if g := h.m.nextGlob(2*time.Second, false); g != time.Second {
		t.Errorf("notifications failed: %s, want the glob interval 1s", g)
	}
	h.m.notesFailed.Store(false)

	sub := filepath.Join(dir, "pods")
	if err := os.MkdirAll(filepath.Join(sub, "p1"), 0o755); err != nil {
		t.Fatal(err)
	}
	wild := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"), filepath.Join(sub, "*", "*.log"))
	wild.GlobInterval = time.Second
	if err := h.m.SetInputs([]Input{wild}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new patterns' directories", func() bool {
		h.m.mu.Lock()
		defer h.m.mu.Unlock()
		return len(h.m.patternDirs) == 2
	})
	if g := h.m.nextGlob(2*time.Second, false); g != time.Second {
		t.Errorf("a pattern with a wildcard directory: %s, want the glob interval 1s", g)
	}
}

// TestPatternDirectoryCreatedLater: a pattern whose directory does not
// exist at the start is followed by globs until the directory exists, then
// watched (its globs may back off, its new files are announced).
func TestPatternDirectoryCreatedLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "containers")
	in := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"))
	h := newHarness(t, harnessOpts{}, in)
	waitFor(t, "the first scan", func() bool {
		h.m.mu.Lock()
		defer h.m.mu.Unlock()
		return len(h.m.patternDirs) == 1
	})
	if h.m.globsNotified() {
		t.Fatal("a directory that does not exist counts as watched")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(dir, "a.log"), "first\n")
	h.waitMsgs([]string{"first"})
	waitFor(t, "the pattern's directory watched", h.m.globsNotified)
	appendFile(t, filepath.Join(dir, "b.log"), "second\n")
	h.waitMsgs([]string{"first", "second"})
}

// TestPatternDirectoryRecreated: a glob pattern's directory deleted (or
// moved away) and created again under its name is watched again. Until
// then its globs and its files' polls do not back off as if notifications
// came, and once it is watched, the followers of its new files are woken
// by their writes. Before, the watch ended with the old directory and
// the agent went on counting on notifications that never came: the new
// directory's files were found and read late (up to 8 s and 2 s).
func TestPatternDirectoryRecreated(t *testing.T) {
	for _, c := range []struct {
		how string
		nk  notifierKind
	}{
		{"deleted", notifiers()[0]}, {"moved away", notifiers()[0]},
		{"deleted", notifiers()[1]}, {"moved away", notifiers()[1]},
	} {
		how := c.how
		t.Run(c.nk.name+"/"+how, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "containers")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			in := input("in", parse.FormatPlain, filepath.Join(dir, "*.log"))
			h := newHarness(t, harnessOpts{notifier: c.nk.make}, in)
			waitFor(t, "the first scan", func() bool { // after Run set up notifications
				h.m.mu.Lock()
				defer h.m.mu.Unlock()
				return len(h.m.patternDirs) == 1
			})
			waitFor(t, "the pattern's directory watched", h.m.globsNotified)
			appendFile(t, filepath.Join(dir, "a.log"), "first\n")
			h.waitMsgs([]string{"first"})

			var err error
			if how == "deleted" {
				err = os.RemoveAll(dir)
			} else {
				err = os.Rename(dir, filepath.Join(root, "old"))
			}
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the directory's watch known to be gone", func() bool { return !h.m.globsNotified() })
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the new directory watched", h.m.globsNotified)
			appendFile(t, filepath.Join(dir, "b.log"), "second\n")
			h.waitMsgs([]string{"first", "second"})
			fl, _ := h.m.followerAt(filepath.Join(dir, "b.log"))
			if fl == nil || !fl.notified.Load() {
				t.Fatalf("the follower of b.log (%v) does not count on notifications", fl)
			}
		})
	}
}
