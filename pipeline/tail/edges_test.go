package tail

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	"github.com/ferrylogs/ferry/pipeline/parse"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// genLines is a file's content that starts with the same banner in every
// generation.
func genLines(tag string, n int) []string {
	return append([]string{"=== app v1.2 starting ==="}, numbered(tag, 0, n)...)
}

// evKey is an event's id as the shipper derives it.
func evKey(e ev) string { return fmt.Sprintf("%s@%d", e.FileID, e.Off) }

// assertUniqueIDs fails if two events share file id and offset (so two
// event ids), unless they are the same line re-sent.
func assertUniqueIDs(t testing.TB, evs []ev) {
	t.Helper()
	seen := map[string]ev{}
	for _, e := range evs {
		if p, ok := seen[evKey(e)]; ok && p.Msg != e.Msg {
			t.Fatalf("two lines under one event id %s: %v and %v", evKey(e), p, e)
		}
		seen[evKey(e)] = e
	}
}

// Issue 19, case 1: a file deleted and at once recreated with the same
// name and the same content, four times. Each generation is read whole,
// under its own id, also when the new file gets the old one's inode
// (ext4 reuses a freed inode at once), and the old generation's final
// commit leaves the new one's position alone.
func TestRecreatedSameNameSameContent(t *testing.T) {
	for _, wait := range []bool{false, true} {
		t.Run(fmt.Sprintf("wait for the old file to be let go %v", wait), func(t *testing.T) { testRecreated(t, wait) })
	}
}

func testRecreated(t *testing.T, waitFinal bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	lines := genLines("line", 50)
	inodes := map[uint64]int{}
	for g := 0; g < 4; g++ {
		if g > 0 {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if waitFinal {
				// The follower closes the deleted file: its inode is
				// free for the next file.
				waitFor(t, "the final chunk", func() bool { return len(h.finals()) == g })
			}
		}
		appendFile(t, path, joinLines(lines))
		inodes[devInoOf(t, path).ino]++
		h.waitEvents(len(lines) * (g + 1))
	}
	settle() // nothing more may come
	evs := h.snapshot()
	files := byFile(evs)
	if len(evs) != 4*len(lines) || len(files) != 4 {
		t.Fatalf("%d events in %d files, want %d in 4 (inodes used: %v)", len(evs), len(files), 4*len(lines), inodes)
	}
	for id, fe := range files {
		assertExactlyOnce(t, fe, lines)
		if fe[0].Off != 0 {
			t.Fatalf("file %s starts at %d", id, fe[0].Off)
		}
	}
	assertUniqueIDs(t, evs)
	waitFor(t, "one position left, the last file's", func() bool {
		all := h.store.All()
		return len(all) == 1 && all[0].Offset == int64(len(joinLines(lines)))
	})
	t.Logf("inodes used: %v", inodes)
}

// Case 1, the decision itself: a position retired because its file was
// deleted is never resumed, even by a file on the same inode with the same
// bytes (what ext4 hands out after rm + create), and the new file gets the
// next generation's id; the old file's final commit removes only its own
// position.
func TestRetiredPositionNotResumed(t *testing.T) {
	dir := t.TempDir()
	lines := genLines("line", 50)
	tmp := filepath.Join(dir, "app.tmp")
	appendFile(t, tmp, joinLines(lines))
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	di := devInoOf(t, tmp)
	f, err := os.Open(tmp)
	if err != nil {
		t.Fatal(err)
	}
	fp, n, err := fingerprint(f)
	if err != nil {
		t.Fatal(err)
	}
	end := int64(len(joinLines(lines)))
	mk, _ := checkAt(f, end)
	f.Close()
	base := identity(di, fp)
	old := checkpoint.Entry{ID: base, Base: base, Dev: di.dev, Ino: di.ino, Fingerprint: fp, FingerprintLen: n,
		Path: filepath.Join(dir, "app.log"), Input: "x", Offset: end, Check: mk.sum, CheckLen: mk.n}
	h.store.Put(old)
	h.store.Retire(old.ID)
	if err := os.Rename(tmp, filepath.Join(dir, "app.log")); err != nil {
		t.Fatal(err)
	}
	evs := h.waitEvents(len(lines))
	settle()
	evs = h.snapshot()
	assertExactlyOnce(t, evs, lines)
	if evs[0].FileID == base || evs[0].FileID != checkpoint.GenID(base, 1) {
		t.Fatalf("new file under id %s, want %s", evs[0].FileID, checkpoint.GenID(base, 1))
	}
	h.m.Commit(&File{ID: old.ID}, 0, true) // the old file's final ack
	waitFor(t, "the new position committed", func() bool {
		e, ok := h.store.Get(evs[0].FileID)
		return ok && e.Offset == end
	})
	if _, ok := h.store.Get(old.ID); ok {
		t.Fatal("the old position survived its final commit")
	}
}

// Issue 19, case 2: a file truncated and rewritten (same banner, more bytes
// than before) while the agent is down. The check of the bytes before the
// saved offset fails, so the file is read from its start as new content,
// under a new id.
func TestRewrittenWhileDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	first := genLines("old", 50)
	appendFile(t, path, joinLines(first))
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	evs := h.waitEvents(len(first))
	oldID := evs[0].FileID
	waitFor(t, "all committed", func() bool {
		e, _ := h.store.Get(oldID)
		return e.Offset == int64(len(joinLines(first)))
	})
	h.stop()
	second := genLines("new", 100)
	if err := os.WriteFile(path, []byte(joinLines(second)), 0o644); err != nil { // O_TRUNC
		t.Fatal(err)
	}
	h.restart()
	h.waitEvents(len(first) + len(second))
	settle()
	var run2 []ev
	for _, e := range h.snapshot() {
		if e.Run == 2 {
			run2 = append(run2, e)
		}
	}
	assertExactlyOnce(t, run2, second)
	if run2[0].FileID == oldID || run2[0].Off != 0 {
		t.Fatalf("rewritten file read as %v, want a new id from offset 0 (old id %s)", run2[0], oldID)
	}
	assertUniqueIDs(t, h.snapshot())
}

// Case 2 live: the file is rewritten in place with more bytes than were
// read before the follower looks again. The first line is the same, but
// the bytes before the last mark read are not: read from the start.
func TestRewrittenInPlaceLive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	first := genLines("old", 50)
	appendFile(t, path, joinLines(first))
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	h.waitEvents(len(first))
	second := genLines("new", 100)
	if err := os.WriteFile(path, []byte(joinLines(second)), 0o644); err != nil {
		t.Fatal(err)
	}
	h.waitEvents(len(first) + len(second))
	settle()
	evs := h.snapshot()
	assertExactlyOnce(t, evs[len(first):], second)
	assertUniqueIDs(t, evs)
}

// Issue 19, case 3: truncate -s to a smaller size at a line end. What was
// kept was read (and sent) already, and the marks before the new end still
// hold: reading goes on from the new end, under a new id. Truncated inside
// a line, or to a size where the kept bytes cannot be verified, the file is
// read again from its start (duplicates with new ids, never a loss).
func TestTruncateToSmallerSize(t *testing.T) {
	for _, tc := range []struct {
		name     string
		keep     func(data string) int64
		fromZero bool
	}{
		{"at a line end", func(d string) int64 { return int64(len(joinLines(genLines("line", 100)[:51]))) }, false},
		{"inside a line", func(d string) int64 { return int64(len(joinLines(genLines("line", 100)[:51])) - 3) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.log")
			lines := genLines("line", 100)
			data := joinLines(lines)
			appendFile(t, path, data)
			h := newHarness(t, harnessOpts{}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
			evs := h.waitEvents(len(lines))
			oldID := evs[0].FileID
			waitFor(t, "all committed", func() bool {
				e, _ := h.store.Get(oldID)
				return e.Offset == int64(len(data))
			})
			keep := tc.keep(data)
			if err := os.Truncate(path, keep); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the truncation seen", func() bool { _, ok := h.store.Get(oldID); return !ok })
			more := numbered("more", 0, 10)
			appendFile(t, path, joinLines(more))
			if tc.fromZero {
				kept := data[:keep]
				i := strings.LastIndexByte(kept, '\n')
				again := strings.Split(kept[:i], "\n")
				// The cut line and the first appended one are one line now.
				glued := kept[i+1:] + more[0]
				want := append(append(again, glued), more[1:]...)
				h.waitMsgs(want)
				settle()
				var run []ev
				for _, e := range h.snapshot()[len(lines):] {
					run = append(run, e)
				}
				assertExactlyOnce(t, run, want)
				if run[0].FileID == oldID {
					t.Fatal("read again under the old id")
				}
				return
			}
			h.waitMsgs(more)
			settle()
			evs = h.snapshot()
			assertExactlyOnce(t, evs, append(append([]string(nil), lines...), more...))
			tail := evs[len(lines):]
			if tail[0].FileID == oldID || tail[0].Off != keep {
				t.Fatalf("appended lines as %v, want a new id at offset %d", tail[0], keep)
			}
			assertUniqueIDs(t, evs)
		})
	}
}

// Truncated below the saved offset while the agent was down: only the
// bytes before the offset were known, so nothing verifies what was kept:
// the file is read again from its start, under a new id.
func TestTruncatedBelowOffsetWhileDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	lines := genLines("line", 100)
	appendFile(t, path, joinLines(lines))
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	evs := h.waitEvents(len(lines))
	oldID := evs[0].FileID
	waitFor(t, "all committed", func() bool {
		e, _ := h.store.Get(oldID)
		return e.Offset == int64(len(joinLines(lines)))
	})
	h.stop()
	if err := os.Truncate(path, int64(len(joinLines(lines[:51])))); err != nil {
		t.Fatal(err)
	}
	h.restart()
	h.waitEvents(len(lines) + 51)
	settle()
	again := h.snapshot()[len(lines):]
	assertExactlyOnce(t, again, lines[:51])
	if again[0].FileID == oldID {
		t.Fatal("read again under the old id")
	}
}

// Issue 19, case 4: a CRI "P" record never followed by "F" is sent on its
// own, flagged partial, after partial_flush_after, and the committed offset
// moves past it; its late continuation is flagged partial too; a restart
// sends nothing again.
func TestPartialFlushAfter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	in := input("x", parse.FormatCRI, filepath.Join(dir, "*.log"))
	in.PartialFlushAfter = 300 * time.Millisecond
	data := criLine("stdout", "F", "a") + "\n" + criLine("stderr", "F", "err") + "\n" + criLine("stdout", "P", "half") + "\n"
	appendFile(t, path, data)
	h := newHarness(t, harnessOpts{}, in)
	start := time.Now()
	evs := h.waitMsgs([]string{"a", "err", "half"})
	if d := time.Since(start); d < in.PartialFlushAfter {
		t.Fatalf("partial record sent after %s, before partial_flush_after", d)
	}
	id := evs[0].FileID
	waitFor(t, "the offset past the partial record", func() bool {
		e, _ := h.store.Get(id)
		return e.Offset == int64(len(data))
	})
	more := criLine("stdout", "F", "rest") + "\n" + criLine("stdout", "F", "next") + "\n"
	appendFile(t, path, more)
	h.waitMsgs([]string{"rest", "next"})
	h.restart()
	settle()
	evs = h.snapshot()
	assertExactlyOnce(t, evs, []string{"a", "err", "half", "rest", "next"})
	flags := map[string]uint32{}
	for _, e := range evs {
		flags[e.Msg] = e.Flags
	}
	if flags["half"] != flagPartial || flags["rest"] != flagPartial || flags["a"] != 0 || flags["next"] != 0 {
		t.Fatalf("flags %v, want half and rest partial only", flags)
	}
}

// Issue 19, case 10: a matched file that cannot be opened is logged once
// (path and reason) and counted, tried again at every scan, and followed
// once it can be read, which is logged too.
func TestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	ok, denied := filepath.Join(dir, "ok.log"), filepath.Join(dir, "denied.log")
	appendFile(t, ok, "ok-1\n")
	appendFile(t, denied, "denied-1\n")
	var mu sync.Mutex
	deny := map[string]bool{denied: true}
	tries := 0
	openFile = func(p string) (*os.File, error) {
		mu.Lock()
		defer mu.Unlock()
		if deny[p] {
			tries++
			return nil, &os.PathError{Op: "open", Path: p, Err: syscall.EACCES}
		}
		return os.Open(p)
	}
	defer func() { openFile = os.Open }()
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	h.waitMsgs([]string{"ok-1"})
	waitFor(t, "three scans of the unreadable file", func() bool { mu.Lock(); defer mu.Unlock(); return tries >= 3 })
	logs := h.logs.String()
	if n := strings.Count(logs, "cannot read file"); n != 1 || !strings.Contains(logs, denied) || !strings.Contains(logs, "permission denied") {
		t.Fatalf("%d warnings, want one naming %s and the reason:\n%s", n, denied, logs)
	}
	if !strings.Contains(logs, "level=WARN msg=\"cannot read file") {
		t.Fatalf("not a warning:\n%s", logs)
	}
	if c := h.m.Counters(); c["ferry_agent_files_unreadable"] != 1 || c["ferry_agent_files_unreadable_total"] != 1 {
		t.Fatalf("counters %v", c)
	}
	mu.Lock()
	delete(deny, denied)
	mu.Unlock()
	h.waitMsgs([]string{"denied-1"})
	waitFor(t, "the recovery logged", func() bool { return strings.Contains(h.logs.String(), "file can be read now") })
	if c := h.m.Counters(); c["ferry_agent_files_unreadable"] != 0 || c["ferry_agent_files_unreadable_total"] != 1 {
		t.Fatalf("counters after recovery %v", c)
	}
	settle()
	assertExactlyOnce(t, h.snapshot(), []string{"ok-1", "denied-1"})
	if !errors.Is(&os.PathError{Err: syscall.EACCES}, os.ErrPermission) {
		t.Fatal("EACCES is a permission error")
	}
}

// Issue 19, case 13: a Docker json-file line longer than max_line_bytes
// keeps its stream and time: its decoded message is cut, flagged
// truncated, not parsed as raw JSON. Both when the whole line is in the
// read buffer and when it is longer than a read and skipped to its end.
func TestDockerLongLine(t *testing.T) {
	const dts = "2019-01-01T11:11:11Z"
	docker := func(log, stream string) string {
		return `{"log":"` + log + `\n","stream":"` + stream + `","time":"` + dts + `"}` + "\n"
	}
	dir := t.TempDir()
	in := input("x", parse.FormatDocker, filepath.Join(dir, "*.log"))
	in.MaxLineBytes = 1000
	short := strings.Repeat("s", 3000)
	huge := strings.Repeat("h\\u00e9", 200000) // 1.4 MB raw, more than a read
	appendFile(t, filepath.Join(dir, "x.log"), docker("before", "stdout")+docker(short, "stderr")+docker(huge, "stderr")+docker("after", "stdout"))
	h := newHarness(t, harnessOpts{}, in)
	evs := h.waitEvents(4)
	settle()
	evs = h.snapshot()
	want, _ := parse.ParseTime([]byte(dts))
	if len(evs) != 4 || evs[0].Msg != "before" || evs[3].Msg != "after" {
		t.Fatalf("events %v", evs)
	}
	// The message is decoded from the first max_line_bytes+dockerHeadSlack
	// raw bytes: escapes make it shorter than max_line_bytes.
	units := (in.MaxLineBytes + dockerHeadSlack - len(`{"log":"`)) / len(`h\u00e9`)
	for i, w := range []string{short[:1000], strings.Repeat("hé", units) + "h"} {
		e := evs[i+1]
		if e.Msg != w || e.Flags != flagTrunc || e.Stream != ferryv1.StreamName_STREAM_STDERR || e.Time != want {
			t.Fatalf("long line %d: %v stream %v time %d, want %q stderr at %d flagged truncated", i, e, e.Stream, e.Time, w[:20], want)
		}
	}
}

// Issue 19, case 14: errors name the file once (an *os.PathError already
// says which call failed on which file).
func TestErrorsNamePathOnce(t *testing.T) {
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, _, ferr := fingerprint(d) // reading a directory fails
	missing := filepath.Join(dir, "missing")
	_, derr := readDirSorted(missing)
	for name, c := range map[string]struct {
		err  error
		path string
	}{"fingerprint": {ferr, dir}, "readDirSorted": {derr, missing}} {
		if c.err == nil || strings.Count(c.err.Error(), c.path) != 1 {
			t.Errorf("%s: %v, want an error naming %s once", name, c.err, c.path)
		}
	}
}

// Issue 19, case 11: after a damaged positions file (moved aside by the
// store) start_at: end does not apply: a positions file existed, so lines
// written while the agent was down are not skipped; files are read from
// their start again, and lines re-sent carry the ids they had (identity and
// offset), which Elasticsearch drops as duplicates.
func TestDamagedPositionsStartAtEnd(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "x.log")
	lines := numbered("line", 0, 20)
	appendFile(t, path, joinLines(lines))
	in := input("x", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.StartAtEnd = true
	h := newHarness(t, harnessOpts{stateDir: state}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	first := h.waitEvents(len(lines))
	h.stop()
	if err := os.WriteFile(filepath.Join(state, checkpoint.FileName), []byte("{\"version\":1,\"entr"), 0o644); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, harnessOpts{stateDir: state}, in)
	if len(h2.store.Problems()) == 0 {
		t.Fatal("no problem reported for the damaged file")
	}
	again := h2.waitEvents(len(lines))
	settle()
	again = h2.snapshot()
	assertExactlyOnce(t, again, lines)
	for i := range again {
		if evKey(again[i]) != evKey(first[i]) {
			t.Fatalf("re-sent %v under another id than %v", again[i], first[i])
		}
	}
}
