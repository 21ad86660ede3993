package tail

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	"github.com/ferrylogs/ferry/pipeline/parse"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

const (
	stdout = ferryv1.StreamName_STREAM_STDOUT
	stderr = ferryv1.StreamName_STREAM_STDERR
	noStrm = ferryv1.StreamName_STREAM_UNSPECIFIED
)

// fillOffsets sets the offset of the i-th wanted event to the start of the
// i-th line of content (for tables where each line makes one event).
func fillOffsets(content string, ws []want) {
	off := 0
	for i := range ws {
		ws[i].off = int64(off)
		off += strings.IndexByte(content[off:], '\n') + 1
	}
}

func mustTime(t testing.TB, s string) int64 {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts.UnixNano()
}

// want is one expected event; a zero Time means "the time of reading".
type want struct {
	msg    string
	off    int64
	stream ferryv1.StreamName
	flags  uint32
	time   string
}

// assertEvents checks evs against ws exactly, in order.
func assertEvents(t testing.TB, evs []ev, ws []want, before time.Time) {
	t.Helper()
	if len(evs) != len(ws) {
		t.Fatalf("got %d events, want %d: %v", len(evs), len(ws), evs)
	}
	for i, w := range ws {
		e := evs[i]
		if e.Msg != w.msg || e.Off != w.off || e.Stream != w.stream || e.Flags != w.flags {
			t.Errorf("event %d = %v off=%d stream=%v flags=%d; want %q off=%d stream=%v flags=%d",
				i, e, e.Off, e.Stream, e.Flags, w.msg, w.off, w.stream, w.flags)
		}
		if w.time != "" {
			if wt := mustTime(t, w.time); e.Time != wt {
				t.Errorf("event %d time = %d, want %d", i, e.Time, wt)
			}
		} else if e.Time < before.UnixNano() || e.Time > time.Now().UnixNano() {
			t.Errorf("event %d time = %v, want the time of reading", i, time.Unix(0, e.Time))
		}
	}
}

// 1. Plain, CRI and Docker files read from the start.
func TestReadFormats(t *testing.T) {
	const dts = "2019-01-01T11:11:11.111111111Z"
	cases := []struct {
		name    string
		formats []parse.Format // each is tried; Auto must detect the same
		content string
		want    []want
	}{
		{
			name:    "plain",
			formats: []parse.Format{parse.FormatPlain, parse.FormatAuto},
			content: "hello\nwörld\n\ndos line\r\n  spaced  \n",
			want: []want{
				{msg: "hello", off: 0}, {msg: "wörld", off: 6}, {msg: "", off: 13},
				{msg: "dos line", off: 14}, {msg: "  spaced  ", off: 24},
			},
		},
		{
			name:    "cri",
			formats: []parse.Format{parse.FormatCRI, parse.FormatAuto},
			content: criLine("stdout", "F", "first message") + "\n" +
				"2024-05-01T14:00:00.5+02:00 stderr F second\n" +
				criTS + " stdout F \n" +
				criTS + " stdout F spaces  inside \n",
			want: []want{
				{msg: "first message", off: 0, stream: stdout, time: criTS},
				{msg: "second", off: 46, stream: stderr, time: "2024-05-01T12:00:00.5Z"},
				{msg: "", off: 87, stream: stdout, time: criTS},
				{msg: "spaces  inside ", off: 87 + 42, stream: stdout, time: criTS},
			},
		},
		{
			name:    "docker",
			formats: []parse.Format{parse.FormatDocker, parse.FormatAuto},
			content: `{"log":"hello docker\n","stream":"stdout","time":"` + dts + `"}` + "\n" +
				`{"log":"q\"uote \u00e9\t\n","stream":"stderr","time":"` + dts + `"}` + "\n",
			want: []want{
				{msg: "hello docker", off: 0, stream: stdout, time: dts},
				{msg: "q\"uote é\t", off: 84, stream: stderr, time: dts},
			},
		},
	}
	for _, c := range cases {
		for _, f := range c.formats {
			t.Run(c.name+"/"+f.String(), func(t *testing.T) {
				fillOffsets(c.content, c.want)
				dir := t.TempDir()
				path := filepath.Join(dir, "a.log")
				appendFile(t, path, c.content)
				before := time.Now()
				h := newHarness(t, harnessOpts{}, input("in", f, filepath.Join(dir, "*.log")))
				evs := h.waitEvents(len(c.want))
				assertEvents(t, evs, c.want, before)
				for _, e := range evs {
					if e.Path != path || e.Link != path {
						t.Fatalf("event path %q link %q, want %q", e.Path, e.Link, path)
					}
				}
				// More lines appended later are followed too.
				appendFile(t, path, c.content)
				evs = h.waitEvents(2 * len(c.want))
				size := int64(len(c.content))
				for i := range c.want {
					c.want[i].off += size
				}
				assertEvents(t, evs[len(c.want):], c.want, before)
				for i := range c.want {
					c.want[i].off -= size
				}
				settle() // nothing more may come
				if n := h.count(); n != 2*len(c.want) {
					t.Fatalf("got %d events, want %d", n, 2*len(c.want))
				}
				e, ok := h.store.Get(evs[0].FileID)
				if !ok || e.Offset != 2*size {
					t.Fatalf("store entry %+v (ok %v), want offset %d", e, ok, 2*size)
				}
				assertChunkEnds(t, h.chunkList(), path, bytes.Repeat([]byte(c.content), 2), false)
			})
		}
	}
}

// 1b. Kubernetes coordinates from a container log symlink.
func TestKubernetesCoordinates(t *testing.T) {
	root := t.TempDir()
	uid := "0b1c2d3e-1111-2222-3333-444455556666"
	cid := strings.Repeat("0123456789abcdef", 4)
	realDir := filepath.Join(root, "pods", "prod_web-1_"+uid, "nginx")
	if err := os.MkdirAll(realDir, 0o755); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(realDir, "0.log")
	appendFile(t, real, criLine("stdout", "F", "GET / 200")+"\n")
	linkDir := filepath.Join(root, "containers")
	if err := os.MkdirAll(linkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(linkDir, "web-1_prod_nginx-"+cid+".log")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	in := input("k8s", parse.FormatCRI, filepath.Join(linkDir, "*.log"))
	in.Container = true
	in.Dataset = "kube.logs"
	h := newHarness(t, harnessOpts{}, in)
	h.waitEvents(1)
	appendFile(t, real, criLine("stderr", "F", "second")+"\n")
	evs := h.waitEvents(2)
	if evs[0].Msg != "GET / 200" || evs[1].Msg != "second" || evs[1].Stream != stderr {
		t.Fatalf("events %v", evs)
	}
	cs := h.chunkList()
	f := cs[0].File
	if f.Path != realPath(t, real) || f.Link != link {
		t.Errorf("Path %q Link %q, want %q and %q", f.Path, f.Link, realPath(t, real), link)
	}
	k := f.Kube
	if k == nil || k.Namespace != "prod" || k.Pod != "web-1" || k.PodUid != uid || k.Container != "nginx" || k.ContainerId != cid {
		t.Errorf("kube = %v", k)
	}
	if v := f.Fields["data_stream.dataset"]; v.GetStr() != "kube.logs" {
		t.Errorf("dataset field %v", v)
	}
	if f.Input != "k8s" {
		t.Errorf("input %q", f.Input)
	}
}

func TestKubeFromPath(t *testing.T) {
	cid := strings.Repeat("ab", 32)
	for _, c := range []struct {
		link, real string
		want       *ferryv1.Kubernetes
	}{
		{"/var/log/containers/web-1_prod_nginx-" + cid + ".log", "/var/log/pods/prod_web-1_u-1/nginx/0.log",
			&ferryv1.Kubernetes{Namespace: "prod", Pod: "web-1", PodUid: "u-1", Container: "nginx", ContainerId: cid}},
		{"/var/log/containers/web-1_prod_side-car-" + cid + ".log", "/x/y.log",
			&ferryv1.Kubernetes{Namespace: "prod", Pod: "web-1", Container: "side-car", ContainerId: cid}},
		{"/var/log/pods/prod_web-1_u-1/nginx/3.log", "/var/log/pods/prod_web-1_u-1/nginx/3.log",
			&ferryv1.Kubernetes{Namespace: "prod", Pod: "web-1", PodUid: "u-1", Container: "nginx"}},
		{"/var/log/syslog", "/var/log/syslog", nil},
		// Not a kubelet's name, but a file of any name may match: the
		// coordinates must be valid UTF-8 (the wire format refuses others).
		{"/var/log/containers/we\xffb_pr\xfeod_ngi\xc3nx-" + cid + ".log", "/var/log/pods/pr\xfeod_we\xffb_u\xff/ngi\xc3nx/0.log",
			&ferryv1.Kubernetes{Namespace: "pr\uFFFDod", Pod: "we\uFFFDb", PodUid: "u\uFFFD", Container: "ngi\uFFFDnx", ContainerId: cid}},
	} {
		got := kubeFromPath(c.link, c.real)
		if (got == nil) != (c.want == nil) || got != nil && (got.Namespace != c.want.Namespace || got.Pod != c.want.Pod ||
			got.PodUid != c.want.PodUid || got.Container != c.want.Container || got.ContainerId != c.want.ContainerId) {
			t.Errorf("kubeFromPath(%q, %q) = %v, want %v", c.link, c.real, got, c.want)
		}
	}
}

// lineWriter appends lines through one descriptor opened with O_APPEND, as
// a logging process does.
type lineWriter struct {
	t    testing.TB
	path string
	f    *os.File
}

func openWriter(t testing.TB, path string) *lineWriter {
	w := &lineWriter{t: t, path: path}
	w.reopen()
	return w
}

func (w *lineWriter) reopen() {
	if w.f != nil {
		w.f.Close()
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		panic(err)
	}
	w.f = f
}

func (w *lineWriter) write(lines ...string) {
	if _, err := w.f.WriteString(joinLines(lines)); err != nil {
		panic(err)
	}
}

func (w *lineWriter) close() { w.f.Close() }

// runWriter runs fn in a goroutine and waits for it, failing on a panic.
func runWriter(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan any)
	go func() {
		defer func() { done <- recover() }()
		fn()
	}()
	if p := <-done; p != nil {
		t.Fatalf("writer: %v", p)
	}
}

// 2. Rename rotation while a process keeps writing.
// It runs on the platform's notifier and on fsnotify's.
func TestRenameRotationWhileWriting(t *testing.T) {
	for _, k := range notifiers() {
		t.Run(k.name, func(t *testing.T) { testRenameRotationWhileWriting(t, k) })
	}
}

func testRenameRotationWhileWriting(t *testing.T, k notifierKind) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	h := newHarness(t, harnessOpts{notifier: k.make}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	const gens, perGen, late = 4, 3000, 50
	var all []string
	runWriter(t, func() {
		w := openWriter(t, path)
		n := 0
		for g := 0; g < gens; g++ {
			for i := 0; i < perGen; i += 100 {
				lines := numbered("line", n, n+100)
				n += 100
				all = append(all, lines...)
				w.write(lines...)
				time.Sleep(time.Millisecond) // interleave with reading, not for sync
			}
			if g == gens-1 {
				break
			}
			for k := g; k >= 1; k-- {
				if err := os.Rename(fmt.Sprintf("%s.%d", path, k), fmt.Sprintf("%s.%d", path, k+1)); err != nil {
					panic(err)
				}
			}
			if err := os.Rename(path, path+".1"); err != nil {
				panic(err)
			}
			// The process writes a little more to the renamed file
			// before it reopens its log.
			lines := numbered("line", n, n+late)
			n += late
			all = append(all, lines...)
			w.write(lines...)
			w.reopen()
		}
		w.close()
	})
	h.waitMsgs(all)
	waitFor(t, "final chunks of the rotated files", func() bool { return len(h.finals()) == gens-1 })
	settle() // nothing more may come
	evs := h.snapshot()
	assertExactlyOnce(t, evs, all)
	if n := len(byFile(evs)); n != gens {
		t.Fatalf("%d file ids, want %d", n, gens)
	}
	for id, n := range h.finals() {
		if n != 1 {
			t.Fatalf("%d final chunks for %s", n, id)
		}
		if _, ok := h.store.Get(id); ok {
			t.Fatalf("position of finished file %s kept", id)
		}
	}
	if all := h.store.All(); len(all) != 1 || all[0].Path != path {
		t.Fatalf("store %+v, want only the current file", all)
	}
	assertChunkLimits(t, h.chunkList(), 256<<10)
}

// copyFile copies src to dst (a new file), as logrotate's copytruncate.
func copyFile(src, dst string) {
	data, err := os.ReadFile(src)
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		panic(err)
	}
}

// copytruncate rotates path: path.k -> path.k+1, copy path to path.1,
// truncate path.
func copytruncate(path string, keep int) {
	for k := keep; k >= 1; k-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", path, k), fmt.Sprintf("%s.%d", path, k+1)); err != nil && !os.IsNotExist(err) {
			panic(err)
		}
	}
	copyFile(path, path+".1")
	if err := os.Truncate(path, 0); err != nil {
		panic(err)
	}
}

// 3. Copytruncate while a process keeps writing: a burst right before each
// rotation leaves lines the follower has not read yet.
func TestCopytruncateWhileWriting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	const gens, perGen, burst = 4, 2000, 1500
	var all []string
	runWriter(t, func() {
		w := openWriter(t, path)
		n := 0
		for g := 0; g < gens; g++ {
			for i := 0; i < perGen; i += 100 {
				lines := numbered("line", n, n+100)
				n += 100
				all = append(all, lines...)
				w.write(lines...)
				time.Sleep(time.Millisecond) // interleave with reading, not for sync
			}
			if g == gens-1 {
				break
			}
			lines := numbered("line", n, n+burst)
			n += burst
			all = append(all, lines...)
			w.write(lines...)
			copytruncate(path, g)
		}
		w.close()
	})
	h.waitMsgs(all)
	waitFor(t, "final chunks of the truncated generations", func() bool { return len(h.finals()) == gens-1 })
	settle() // nothing more may come
	evs := h.snapshot()
	assertExactlyOnce(t, evs, all)
	if n := len(byFile(evs)); n != gens {
		t.Fatalf("%d file ids, want %d", n, gens)
	}
	if all := h.store.All(); len(all) != 1 {
		t.Fatalf("store %+v, want only the current generation", all)
	}
}

// 3b. Copytruncate while the follower is blocked with lines unread: they
// must be read from the copy. The new content is shorter than the read
// offset (size check) or longer (fingerprint check).
func TestCopytruncateUnreadRest(t *testing.T) {
	for _, c := range []struct {
		name   string
		newLen int
	}{{"new content shorter", 10}, {"new content longer", 60000}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.log")
			old := numbered("old", 0, 60000)
			appendFile(t, path, joinLines(old))
			h := newHarness(t, harnessOpts{paused: true}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
			// With nobody reading, the follower fills the channel and
			// blocks with the rest of the file unread.
			waitFor(t, "the follower to block", func() bool { return len(h.m.out) == cap(h.m.out) })
			burst := numbered("burst", 0, 500)
			appendFile(t, path, joinLines(burst))
			copytruncate(path, 0)
			fresh := numbered("new", 0, c.newLen)
			appendFile(t, path, joinLines(fresh))
			h.resume()
			wantAll := append(append(append([]string(nil), old...), burst...), fresh...)
			h.waitMsgs(wantAll)
			settle() // nothing more may come
			evs := h.snapshot()
			assertExactlyOnce(t, evs, wantAll)
			ids := byFile(evs)
			if len(ids) != 2 {
				t.Fatalf("%d file ids, want 2", len(ids))
			}
			for _, e := range evs {
				if strings.HasPrefix(e.Msg, "new") != (e.FileID == evs[len(evs)-1].FileID) {
					t.Fatalf("event %v under the wrong identity", e)
				}
			}
		})
	}
}

// 3c. A truncated file whose first line is the same as before gets a new
// identity all the same, so its event ids cannot collide with the old ones.
func TestCopytruncateSameFirstLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	appendFile(t, path, "banner\n"+joinLines(numbered("a", 0, 100)))
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	h.waitEvents(101)
	copytruncate(path, 0)
	appendFile(t, path, "banner\n"+joinLines(numbered("b", 0, 10)))
	evs := h.waitEvents(112)
	settle()
	evs = h.snapshot()
	if len(evs) != 112 {
		t.Fatalf("%d events: %v", len(evs), evs[101:])
	}
	if evs[0].FileID == evs[101].FileID {
		t.Fatalf("truncated file kept its identity %s", evs[0].FileID)
	}
	if evs[101].Msg != "banner" || evs[101].Off != 0 || evs[111].Msg != "b-0000009" {
		t.Fatalf("after truncation: %v", evs[101:])
	}
	if _, ok := h.store.Get(evs[101].FileID); !ok {
		t.Fatalf("new identity has no position: %+v", h.store.All())
	}
	if _, ok := h.store.Get(evs[0].FileID); ok {
		t.Fatalf("old identity kept: %+v", h.store.All())
	}
}

// 4. A saved position whose inode now holds another file is dropped and the
// new file is read from the start.
func TestInodeReuseByHand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	appendFile(t, path, "new-1\nnew-2\n")
	di := devInoOf(t, path)
	oldFP := hashPrefix([]byte("old first line\n"))
	h := newHarness(t, harnessOpts{prepare: func(st *checkpoint.Store) {
		st.Put(checkpoint.Entry{ID: "old-id", Dev: di.dev, Ino: di.ino, Fingerprint: oldFP, FingerprintLen: 15,
			Path: path, Input: "x", Offset: 7})
	}}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	evs := h.waitEvents(2)
	assertEvents(t, evs, []want{{msg: "new-1", off: 0}, {msg: "new-2", off: 6}}, time.Time{}.Add(1))
	waitFor(t, "the new position to be committed", func() bool {
		e, ok := h.store.Get(evs[0].FileID)
		return ok && e.Offset == 12
	})
	if _, ok := h.store.Get("old-id"); ok {
		t.Fatal("old entry kept")
	}
	if n := len(h.store.All()); n != 1 {
		t.Fatalf("store %+v", h.store.All())
	}
}

// 5. A file deleted while open: what was written before the deletion is
// read, a final chunk comes, and the position goes once it is committed.
func TestDeletedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	h := newHarness(t, harnessOpts{holdCommits: true}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	first := numbered("a", 0, 100)
	appendFile(t, path, joinLines(first))
	evs := h.waitEvents(100)
	id := evs[0].FileID
	h.commitPending(-1)
	rest := numbered("b", 0, 2000)
	w := openWriter(t, path)
	w.write(rest...)
	w.f.WriteString("unterminated")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w.close()
	waitFor(t, "the final chunk", func() bool { return h.finals()[id] == 1 })
	if _, ok := h.store.Get(id); !ok {
		t.Fatal("position removed before the final chunk was committed")
	}
	h.commitPending(-1)
	if _, ok := h.store.Get(id); ok {
		t.Fatal("position kept after the final chunk was committed")
	}
	settle() // nothing more may come
	all := append(append(first, rest...), "unterminated")
	assertExactlyOnce(t, h.snapshot(), all)
	if n := h.finals()[id]; n != 1 {
		t.Fatalf("%d final chunks", n)
	}
}

// 6. Over-long lines are cut at MaxLineBytes, flagged, and the rest of the
// line is skipped; reading goes on.
func TestLongLines(t *testing.T) {
	const max = 256 << 10
	big := strings.Repeat("0123456789abcdef", 10<<20/16) // 10 MiB
	cases := []struct {
		name   string
		format parse.Format
		pieces []string // written one after another
		want   []want   // messages given in full
	}{
		{
			name:   "plain 10MiB",
			format: parse.FormatPlain,
			pieces: []string{"before\n" + big + "\nafter-1\nafter-2\n"},
			want:   []want{{msg: "before"}, {msg: big[:max], flags: flagTrunc}, {msg: "after-1"}, {msg: "after-2"}},
		},
		{
			name:   "cri 10MiB",
			format: parse.FormatCRI,
			pieces: []string{criLine("stdout", "F", "before") + "\n" + criLine("stdout", "F", big) + "\n" + criLine("stderr", "F", "after") + "\n"},
			want: []want{
				{msg: "before", stream: stdout, time: criTS},
				{msg: big[:max-len(criLine("stdout", "F", ""))], stream: stdout, flags: flagTrunc, time: criTS},
				{msg: "after", stream: stderr, time: criTS},
			},
		},
		{
			name:   "long line in many writes",
			format: parse.FormatPlain,
			pieces: append(append([]string{"before\n"}, splitN(big[:1<<20], 16)...), "\nafter\n"),
			want:   []want{{msg: "before"}, {msg: big[:max], flags: flagTrunc}, {msg: "after"}},
		},
		{
			name:   "line just under the limit in many writes",
			format: parse.FormatPlain,
			pieces: append(append([]string{"before\n"}, splitN(big[:max], 10)...), "\nafter\n"),
			want:   []want{{msg: "before"}, {msg: big[:max]}, {msg: "after"}},
		},
		{
			name:   "line one byte over the limit",
			format: parse.FormatPlain,
			pieces: []string{big[:max+1] + "\nafter\n"},
			want:   []want{{msg: big[:max], flags: flagTrunc}, {msg: "after"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.log")
			h := newHarness(t, harnessOpts{}, input("x", c.format, filepath.Join(dir, "*.log")))
			content := strings.Join(c.pieces, "")
			for _, p := range c.pieces {
				appendFile(t, path, p)
				if len(c.pieces) > 1 {
					// Let the follower see the line grow; not for sync.
					time.Sleep(testPoll / 2)
				}
			}
			evs := h.waitEvents(len(c.want))
			starts := []int64{0}
			for i := 0; i < len(content); i++ {
				if content[i] == '\n' {
					starts = append(starts, int64(i+1))
				}
			}
			for i := range c.want {
				c.want[i].off = starts[i]
			}
			assertEvents(t, evs, c.want, time.Time{}.Add(1))
			// The follower is not stuck: more lines arrive.
			more := "more\n"
			if c.format == parse.FormatCRI {
				more = criLine("stdout", "F", "more") + "\n"
			}
			appendFile(t, path, more)
			evs = h.waitEvents(len(c.want) + 1)
			if evs[len(c.want)].Msg != "more" {
				t.Fatalf("last event %v", evs[len(c.want)])
			}
			settle() // nothing more may come
			if n := h.count(); n != len(c.want)+1 {
				t.Fatalf("%d events", n)
			}
			id := evs[0].FileID
			waitFor(t, "everything committed", func() bool {
				e, _ := h.store.Get(id)
				return e.Offset == int64(len(content)+len(more))
			})
			assertChunkEnds(t, h.chunkList(), path, []byte(content+more), false)
		})
	}
}

func splitN(s string, n int) []string {
	var out []string
	step := (len(s) + n - 1) / n
	for len(s) > 0 {
		k := min(step, len(s))
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}

// 7. Invalid UTF-8 becomes U+FFFD and is flagged.
func TestInvalidUTF8(t *testing.T) {
	for _, c := range []struct {
		name    string
		format  parse.Format
		content string
		want    []want
	}{
		{"plain", parse.FormatPlain, "ok\nbad \xff byte\ncut \xe2\x82\nfine é\n", []want{
			{msg: "ok", off: 0}, {msg: "bad \uFFFD byte", off: 3, flags: flagUTF8},
			{msg: "cut \uFFFD\uFFFD", off: 14, flags: flagUTF8}, {msg: "fine é", off: 21},
		}},
		{"cri", parse.FormatCRI, criLine("stdout", "F", "bad \xff") + "\n" + criLine("stderr", "F", "ok") + "\n", []want{
			{msg: "bad \uFFFD", stream: stdout, flags: flagUTF8, time: criTS},
			{msg: "ok", off: 42, stream: stderr, time: criTS},
		}},
		{"cri joined", parse.FormatCRI, criLine("stdout", "P", "a\xff") + "\n" + criLine("stdout", "F", "b") + "\n", []want{
			{msg: "a\uFFFDb", stream: stdout, flags: flagUTF8 | flagJoined, time: criTS},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			appendFile(t, filepath.Join(dir, "x.log"), c.content)
			fillOffsets(c.content, c.want)
			h := newHarness(t, harnessOpts{}, input("x", c.format, filepath.Join(dir, "*.log")))
			evs := h.waitEvents(len(c.want))
			settle() // nothing more may come
			assertEvents(t, h.snapshot(), c.want, time.Time{}.Add(1))
			_ = evs
		})
	}
}

// 8. CRI partial lines are joined, also when the fragments arrive in
// separate writes; a chunk never ends inside an open join.
func TestCRIJoins(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatCRI, filepath.Join(dir, "*.log")))
	lines := []string{
		criLine("stdout", "F", "before"),
		criLine("stdout", "P", "part one, "),
		criLine("stderr", "F", "err in between"),
		criLine("stdout", "P", "part two, "),
		criLine("stdout", "F", "the end"),
		criLine("stdout", "F", "after"),
	}
	var content string
	var offs []int64
	for _, l := range lines {
		offs = append(offs, int64(len(content)))
		content += l + "\n"
	}
	appendFile(t, path, lines[0]+"\n")
	evs := h.waitEvents(1)
	id := evs[0].FileID
	waitFor(t, "first commit", func() bool { e, _ := h.store.Get(id); return e.Offset == offs[1] })
	for _, l := range lines[1:4] {
		appendFile(t, path, l+"\n")
		// Let the follower read each fragment on its own; not for sync.
		time.Sleep(2 * testPoll)
	}
	h.waitEvents(2) // the stderr line
	settle()        // give the follower every chance to commit too far
	if e, _ := h.store.Get(id); e.Offset > offs[1] {
		t.Fatalf("committed offset %d passes the open join at %d", e.Offset, offs[1])
	}
	appendFile(t, path, lines[4]+"\n"+lines[5]+"\n")
	evs = h.waitEvents(4)
	settle() // nothing more may come
	assertEvents(t, h.snapshot(), []want{
		{msg: "before", off: offs[0], stream: stdout, time: criTS},
		{msg: "err in between", off: offs[2], stream: stderr, time: criTS},
		{msg: "part one, part two, the end", off: offs[1], stream: stdout, flags: flagJoined, time: criTS},
		{msg: "after", off: offs[5], stream: stdout, time: criTS},
	}, time.Time{}.Add(1))
	assertChunkEnds(t, h.chunkList(), path, []byte(content), true)
	waitFor(t, "everything committed", func() bool { e, _ := h.store.Get(id); return e.Offset == int64(len(content)) })
	_ = evs
}

// 8b. Joins: Docker partial lines, a join over MaxLineBytes, and an open
// join at the end of a deleted file.
func TestJoinsMore(t *testing.T) {
	const dts = "2019-01-01T11:11:11Z"
	docker := func(log, stream string) string {
		return `{"log":"` + log + `","stream":"` + stream + `","time":"` + dts + `"}`
	}
	t.Run("docker", func(t *testing.T) {
		dir := t.TempDir()
		appendFile(t, filepath.Join(dir, "x.log"), docker("one ", "stdout")+"\n"+docker("two ", "stdout")+"\n"+
			docker("err\\n", "stderr")+"\n"+docker("three\\n", "stdout")+"\n")
		h := newHarness(t, harnessOpts{}, input("x", parse.FormatDocker, filepath.Join(dir, "*.log")))
		h.waitEvents(2)
		settle() // nothing more may come
		evs := h.snapshot()
		if len(evs) != 2 || evs[0].Msg != "err" || evs[1].Msg != "one two three" || evs[1].Flags != flagJoined || evs[1].Off != 0 {
			t.Fatalf("events %v", evs)
		}
	})
	t.Run("join over the limit", func(t *testing.T) {
		dir := t.TempDir()
		in := input("x", parse.FormatCRI, filepath.Join(dir, "*.log"))
		in.MaxLineBytes = 1000
		var b strings.Builder
		for i := 0; i < 30; i++ {
			b.WriteString(criLine("stdout", "P", strings.Repeat(string(rune('a'+i%26)), 100)) + "\n")
		}
		b.WriteString(criLine("stdout", "F", "end") + "\n" + criLine("stdout", "F", "next") + "\n")
		appendFile(t, filepath.Join(dir, "x.log"), b.String())
		h := newHarness(t, harnessOpts{}, in)
		evs := h.waitEvents(2)
		settle() // nothing more may come
		evs = h.snapshot()
		if len(evs) != 2 || len(evs[0].Msg) != 1000 || evs[0].Flags != flagJoined|flagTrunc || evs[1].Msg != "next" {
			t.Fatalf("events %v", evs)
		}
		if !strings.HasPrefix(evs[0].Msg, strings.Repeat("a", 100)+strings.Repeat("b", 100)) {
			t.Fatalf("joined message %q", evs[0].Msg[:300])
		}
	})
	t.Run("open join at the end of a deleted file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "x.log")
		appendFile(t, path, criLine("stdout", "F", "a")+"\n"+criLine("stdout", "P", "half")+"\n")
		h := newHarness(t, harnessOpts{}, input("x", parse.FormatCRI, filepath.Join(dir, "*.log")))
		evs := h.waitEvents(1)
		os.Remove(path)
		evs = h.waitEvents(2)
		waitFor(t, "final", func() bool { return h.finals()[evs[0].FileID] == 1 })
		settle() // nothing more may come
		evs = h.snapshot()
		if len(evs) != 2 || evs[1].Msg != "half" || evs[1].Flags != flagPartial {
			t.Fatalf("events %v", evs)
		}
	})
}

// 9. Restart without loss or duplicates: the new manager resumes exactly at
// the committed offset, and re-sent events keep their file id and offset.
func TestRestartResumesAtCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	lines := numbered("line", 0, 5000)
	appendFile(t, path, joinLines(lines))
	h := newHarness(t, harnessOpts{holdCommits: true}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	first := h.waitEvents(len(lines))
	cs := h.chunkList()
	if len(cs) < 4 {
		t.Fatalf("only %d chunks", len(cs))
	}
	h.commitPending(3)
	committed := cs[2].End
	id := first[0].FileID
	if e, _ := h.store.Get(id); e.Offset != committed {
		t.Fatalf("store offset %d, want %d", e.Offset, committed)
	}
	h.setHold(false)
	h.restart()
	more := numbered("more", 0, 100)
	appendFile(t, path, joinLines(more))
	var resent []string
	firstOff := map[string]int64{}
	for _, e := range first {
		firstOff[e.Msg] = e.Off
		if e.Off >= committed {
			resent = append(resent, e.Msg)
		}
	}
	want := append(resent, more...)
	h.waitEvents(len(first) + len(want))
	settle() // nothing more may come
	var second []ev
	for _, e := range h.snapshot() {
		if e.Run == 2 {
			second = append(second, e)
		}
	}
	assertExactlyOnce(t, second, want)
	if second[0].Off != committed {
		t.Fatalf("resumed at %d, want %d", second[0].Off, committed)
	}
	for _, e := range second {
		if e.FileID != id {
			t.Fatalf("event %v under another id than %s", e, id)
		}
		if off, ok := firstOff[e.Msg]; ok && off != e.Off {
			t.Fatalf("re-sent %v at another offset than %d", e, off)
		}
	}
	waitFor(t, "everything committed", func() bool {
		e, _ := h.store.Get(id)
		return e.Offset == int64(len(joinLines(lines))+len(joinLines(more)))
	})
}

// 10. Rotation while the agent is down: the rest of the renamed file and
// the whole new file are read, nothing twice.
func TestRotationWhileDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	a := numbered("a", 0, 3000)
	appendFile(t, path, joinLines(a))
	h := newHarness(t, harnessOpts{holdCommits: true}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	first := h.waitEvents(len(a))
	cs := h.chunkList()
	if len(cs) < 3 {
		t.Fatalf("only %d chunks", len(cs))
	}
	h.commitPending(2)
	committed := cs[1].End
	h.setHold(false)
	h.stop()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	late := numbered("late", 0, 200)
	appendFile(t, path+".1", joinLines(late))
	b := numbered("b", 0, 1000)
	appendFile(t, path, joinLines(b))
	h.restart()
	var want []string
	for _, e := range first {
		if e.Off >= committed {
			want = append(want, e.Msg)
		}
	}
	want = append(append(want, late...), b...)
	h.waitMsgs(want)
	oldID := first[0].FileID
	waitFor(t, "final chunk of the rotated file", func() bool { return h.finals()[oldID] == 1 })
	settle() // nothing more may come
	var second []ev
	for _, e := range h.snapshot() {
		if e.Run == 2 {
			second = append(second, e)
		}
	}
	assertExactlyOnce(t, second, want)
	for _, e := range second {
		if strings.HasPrefix(e.Msg, "b-") == (e.FileID == oldID) {
			t.Fatalf("event %v under the wrong identity", e)
		}
	}
	if _, ok := h.store.Get(oldID); ok {
		t.Fatal("position of the drained file kept")
	}
	if all := h.store.All(); len(all) != 1 || all[0].Path != path {
		t.Fatalf("store %+v", all)
	}
}

// 11. start_at end on the very first start skips what files already hold,
// but a file created later is read from its start.
func TestStartAtEnd(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.log")
	appendFile(t, old, joinLines(numbered("skip", 0, 100)))
	in := input("x", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.StartAtEnd = true
	h := newHarness(t, harnessOpts{}, in)
	// The follower must have taken its position before the new lines
	// come, else they would count as existing content.
	waitFor(t, "the position of the existing file", func() bool { return len(h.store.All()) == 1 })
	kept := numbered("kept", 0, 50)
	appendFile(t, old, joinLines(kept))
	created := numbered("created", 0, 50)
	appendFile(t, filepath.Join(dir, "new.log"), joinLines(created))
	h.waitMsgs(append(append([]string(nil), kept...), created...))
	settle() // nothing more may come
	assertExactlyOnce(t, h.snapshot(), append(kept, created...))

	// After a restart (the store now exists) start_at no longer applies: a
	// file that appeared while the agent was down is read in full.
	h.stop()
	late := numbered("late", 0, 20)
	appendFile(t, filepath.Join(dir, "late.log"), joinLines(late))
	h.restart()
	h.waitMsgs(late)
	settle() // nothing more may come
	assertExactlyOnce(t, h.snapshot(), append(append(kept, created...), late...))
}

// 12. With nobody reading, followers block once the byte budget is used
// up (it is never exceeded by lines shorter than a chunk); once reading
// resumes every line arrives.
func TestBackpressure(t *testing.T) {
	dir := t.TempDir()
	const files, perFile = 200, 2000
	var all []string
	for i := 0; i < files; i++ {
		lines := numbered(fmt.Sprintf("f%03d", i), 0, perFile)
		all = append(all, lines...)
		appendFile(t, filepath.Join(dir, fmt.Sprintf("f%03d.log", i)), joinLines(lines))
	}
	const limit = 8 << 20
	h := newHarness(t, harnessOpts{paused: true, budget: limit}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	b := h.m.budget
	const cost = chunkCost
	waitFor(t, "the budget to be used up", func() bool {
		return b.Used() > limit-cost && b.Waiting() > 0
	})
	settle() // the followers stay blocked: nothing can move
	if u := b.Used(); u > limit {
		t.Fatalf("%d bytes held, over the budget of %d", u, limit)
	}
	var ms runtimeMem
	ms.read()
	// An 8 MiB budget plus small per-follower state; the files hold far
	// more (200 files need 800 chunks).
	t.Logf("live heap while blocked: %d MiB; budget peak %d KiB", ms.heap>>20, b.Peak()>>10)
	if ms.heap > 40<<20 {
		t.Errorf("heap in use %d MiB while blocked", ms.heap>>20)
	}
	if p := b.Peak(); p > limit {
		t.Errorf("budget peak %d over its limit %d", p, limit)
	}
	h.resume()
	h.waitEvents(len(all))
	settle() // nothing more may come
	assertExactlyOnce(t, h.snapshot(), all)
	assertChunkLimits(t, h.chunkList(), 256<<10)
}

// 12a. Lines longer than a chunk make its arena grow: the growth is
// counted against the budget (past its limit, since the memory is in use)
// and reading pauses until it is released; every line arrives whole.
func TestBudgetLongLines(t *testing.T) {
	dir := t.TempDir()
	const lineLen, perFile, files = 3 << 20, 4, 3
	var all []string
	for i := range files {
		var lines []string
		for j := range perFile {
			p := fmt.Sprintf("f%d-%d-", i, j)
			lines = append(lines, p+strings.Repeat("x", lineLen-len(p)))
		}
		all = append(all, lines...)
		appendFile(t, filepath.Join(dir, fmt.Sprintf("f%d.log", i)), joinLines(lines))
	}
	const limit = 2 << 20
	in := input("x", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.MaxLineBytes = 4 << 20
	h := newHarness(t, harnessOpts{paused: true, budget: limit}, in)
	b := h.m.budget
	waitFor(t, "a follower to wait for the budget", func() bool { return b.Waiting() > 0 })
	settle()
	// Held: the chunks started before the budget was used up, each grown
	// to hold a line (append may double it); no new chunk starts while the
	// budget is overdrawn.
	if u, most := b.Used(), int64(limit+(limit/chunkCost+1)*2*lineLen); u > most {
		t.Fatalf("%d bytes held while paused, want at most %d", u, most)
	}
	h.resume()
	h.waitEvents(len(all))
	settle()
	assertExactlyOnce(t, h.snapshot(), all)
	t.Logf("budget %d KiB, peak %d KiB", limit>>10, b.Peak()>>10)
	if p := b.Peak(); p < lineLen {
		t.Errorf("peak %d: the long lines were not counted", p)
	}
}

// 12b. Many tiny lines: a chunk never holds more than chunkMaxRecs events
// (the shipper sizes its batches on that).
func TestChunkLimits(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 200000; i++ {
		b.WriteString("x\n")
	}
	appendFile(t, filepath.Join(dir, "x.log"), b.String())
	appendFile(t, filepath.Join(dir, "y.log"), strings.Repeat(criLine("stdout", "P", "p")+"\n"+criLine("stdout", "F", "f")+"\n", 20000))
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatAuto, filepath.Join(dir, "*.log")))
	h.waitEvents(220000)
	settle() // nothing more may come
	if n := h.count(); n != 220000 {
		t.Fatalf("%d events", n)
	}
	assertChunkLimits(t, h.chunkList(), 256<<10)
	for _, e := range h.snapshot() {
		if e.Msg != "x" && e.Msg != "pf" {
			t.Fatalf("event %v", e)
		}
	}
}

// 13. Exclude patterns match the base name or the full path.
func TestExclude(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"keep.log", "skip-me.log", "byfull.log", "also.log"} {
		appendFile(t, filepath.Join(dir, n), n+"\n")
	}
	in := input("x", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.Exclude = []string{"skip-*.log", filepath.Join(dir, "byfull.log")}
	h := newHarness(t, harnessOpts{}, in)
	h.waitMsgs([]string{"keep.log", "also.log"})
	appendFile(t, filepath.Join(dir, "skip-later.log"), "skip-later.log\n")
	appendFile(t, filepath.Join(dir, "later.log"), "later.log\n")
	h.waitMsgs([]string{"later.log"})
	settle() // nothing more may come
	assertExactlyOnce(t, h.snapshot(), []string{"also.log", "keep.log", "later.log"})
	if !excluded(&in, filepath.Join(dir, "skip-x.log")) || !excluded(&in, filepath.Join(dir, "byfull.log")) ||
		excluded(&in, filepath.Join(dir, "sub", "byfull.log")) {
		t.Fatal("excluded() wrong")
	}
}

// 10b. Copytruncate while the agent is down: the rest of the old content is
// read from the copy under the old identity, the new content from its start.
func TestCopytruncateWhileDown(t *testing.T) {
	for _, c := range []struct {
		name   string
		banner string // a first line both generations share, if any
	}{{"other first line", ""}, {"same first line", "banner"}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.log")
			var a []string
			if c.banner != "" {
				a = append(a, c.banner)
			}
			a = append(a, numbered("a", 0, 3000)...)
			appendFile(t, path, joinLines(a))
			h := newHarness(t, harnessOpts{holdCommits: true}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
			first := h.waitEvents(len(a))
			cs := h.chunkList()
			if len(cs) < 3 {
				t.Fatalf("only %d chunks", len(cs))
			}
			h.commitPending(2)
			committed := cs[1].End
			h.setHold(false)
			h.stop()
			late := numbered("late", 0, 300)
			appendFile(t, path, joinLines(late))
			copytruncate(path, 0)
			// The new generation starts with the same line as the old
			// one, or not.
			var b []string
			if c.banner != "" {
				b = append(b, c.banner)
			}
			b = append(b, numbered("b", 0, 20)...)
			appendFile(t, path, joinLines(b))
			h.restart()
			var want []string
			for _, e := range first {
				if e.Off >= committed {
					want = append(want, e.Msg)
				}
			}
			want = append(want, late...)
			oldID := first[0].FileID
			waitFor(t, "final chunk of the old content", func() bool { return h.finals()[oldID] == 1 })
			h.waitEvents(len(first) + len(want) + len(b))
			settle() // nothing more may come
			var second, newGen []ev
			for _, e := range h.snapshot() {
				if e.Run != 2 {
					continue
				}
				if e.FileID == oldID {
					second = append(second, e)
				} else {
					newGen = append(newGen, e)
				}
			}
			assertExactlyOnce(t, second, want)
			assertExactlyOnce(t, newGen, b)
			if newGen[0].Off != 0 {
				t.Fatalf("new content starts at %d", newGen[0].Off)
			}
			if all := h.store.All(); len(all) != 1 || all[0].ID != newGen[0].FileID {
				t.Fatalf("store %+v", all)
			}
		})
	}
}

// 2b. A glob that also matches rotated names: a renamed file stays followed
// under its identity and is never read again from the start.
func TestRotationGlobMatchesRotatedNames(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	h := newHarness(t, harnessOpts{}, input("x", parse.FormatPlain, filepath.Join(dir, "x.log*")))
	var all []string
	w := openWriter(t, path)
	for g := 0; g < 3; g++ {
		lines := numbered(fmt.Sprintf("g%d", g), 0, 1000)
		all = append(all, lines...)
		w.write(lines...)
		h.waitMsgs(all)
		for k := g; k >= 1; k-- {
			if err := os.Rename(fmt.Sprintf("%s.%d", path, k), fmt.Sprintf("%s.%d", path, k+1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		late := numbered(fmt.Sprintf("late%d", g), 0, 10)
		all = append(all, late...)
		w.write(late...)
		w.reopen()
	}
	w.close()
	h.waitMsgs(all)
	settle() // nothing more may come, in particular no re-read of x.log.N
	evs := h.snapshot()
	assertExactlyOnce(t, evs, all)
	if n := len(h.finals()); n != 0 {
		t.Fatalf("%d files finished though still matched", n)
	}
	// Deleting the oldest finishes it.
	os.Remove(path + ".3")
	waitFor(t, "the final chunk of the deleted file", func() bool { return len(h.finals()) == 1 })
}

// 2c. A writer that goes on appending to a renamed file for a while (longer
// than a poll interval) loses nothing: the renamed file is read for several
// poll intervals and until it has been quiet for one.
func TestRenamedFileStillWritten(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	in := input("x", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.PollInterval = 100 * time.Millisecond // renamed files are read for 1s at least
	h := newHarness(t, harnessOpts{}, in)
	w := openWriter(t, path)
	all := numbered("a", 0, 10)
	w.write(all...)
	h.waitMsgs(all)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, "new file\n")
	all = append(all, "new file")
	for i := 0; i < 3; i++ {
		// Time must pass here: the writer is slower than a poll
		// interval, and the old file is still read.
		time.Sleep(in.PollInterval * 3 / 2)
		l := numbered(fmt.Sprintf("late%d", i), 0, 3)
		all = append(all, l...)
		w.write(l...)
	}
	w.close()
	h.waitMsgs(all)
	waitFor(t, "the final chunk", func() bool { return len(h.finals()) == 1 })
	settle() // nothing more may come
	assertExactlyOnce(t, h.snapshot(), all)
}

// 11b. start_at end never starts inside a line: a line being written when
// the agent starts is read whole.
func TestStartAtEndMidLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	appendFile(t, path, "old-1\nold-2\nhalf")
	in := input("x", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.StartAtEnd = true
	h := newHarness(t, harnessOpts{}, in)
	waitFor(t, "the position", func() bool { return len(h.store.All()) == 1 })
	appendFile(t, path, "-line\nnext\n")
	h.waitEvents(2)
	settle() // nothing more may come
	assertEvents(t, h.snapshot(), []want{{msg: "half-line", off: 12}, {msg: "next", off: 22}}, time.Time{}.Add(1))
}

func TestCutRunes(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"abcdef", 3, "abc"},
		{"abc", 3, "abc"},
		{"ab€cd", 3, "ab"}, // € is 3 bytes: cutting at 3 or 4 would split it
		{"ab€cd", 4, "ab"},
		{"ab€cd", 5, "ab€"},
		{"\xff\xff\xff\xff\xff\xff", 4, "\xff\xff\xff\xff"},
	} {
		if got := string(cutRunes([]byte(c.in), c.n)); got != c.want {
			t.Errorf("cutRunes(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// 3d. Truncation without a copy while the follower is blocked, its chunks
// handed on and possibly some lines read but not parsed yet (its chunk was
// full): they come out line by line, and the new content is read from its
// start. (A blocked follower holds few such lines: it reads about what its
// chunk has room for, and gives up a larger rest to read it again, see
// follower.rewind.)
func TestTruncateWithoutCopy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	old := numbered("old", 0, 60000)
	appendFile(t, path, joinLines(old))
	h := newHarness(t, harnessOpts{paused: true}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	waitFor(t, "the follower to block", func() bool { return len(h.m.out) == cap(h.m.out) })
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	fresh := numbered("new", 0, 100)
	appendFile(t, path, joinLines(fresh))
	h.resume()
	h.waitMsgs(fresh)
	settle() // nothing more may come
	var olds, news, cut []ev
	for _, e := range h.snapshot() {
		switch {
		case strings.HasPrefix(e.Msg, "new-"):
			news = append(news, e)
		case len(e.Msg) == len(old[0]) && e.Flags == 0:
			olds = append(olds, e)
		default:
			cut = append(cut, e)
		}
	}
	// The line the follower was reading when the file was truncated (if
	// it had read part of one) is sent cut and flagged.
	if len(cut) > 1 || len(cut) == 1 && (cut[0].Flags != flagTrunc || !strings.HasPrefix(old[len(olds)], cut[0].Msg)) {
		t.Fatalf("unexpected events %v", cut)
	}
	// What was read before the truncation arrives, as whole lines; what
	// was not is lost with the truncation.
	if len(olds) < cap(h.m.out)*chunkMaxRecs {
		t.Fatalf("only %d old lines", len(olds))
	}
	assertExactlyOnce(t, olds, old[:len(olds)])
	assertExactlyOnce(t, news, fresh)
}

// 12c. A follower that must wait with complete lines read but not parsed
// (its chunk filled up first) gives them up and reads them again from the
// file, instead of copying them aside: long lines teach it a large read,
// then short ones fill its chunk with most of the read left over. Every
// line arrives exactly once, in order.
func TestRewindLeftover(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	long := make([]string, 0, 20*chunkMaxRecs)
	for i := range 20 * chunkMaxRecs {
		long = append(long, fmt.Sprintf("long-%07d-%s", i, strings.Repeat("y", 180)))
	}
	short := numbered("s", 0, 40*chunkMaxRecs)
	all := append(append([]string(nil), long...), short...)
	appendFile(t, path, joinLines(all))
	h := newHarness(t, harnessOpts{paused: true}, input("x", parse.FormatPlain, filepath.Join(dir, "*.log")))
	waitFor(t, "the follower to block", func() bool { return len(h.m.out) == cap(h.m.out) })
	h.resume()
	evs := h.waitMsgs(all)
	settle() // nothing more may come
	assertExactlyOnce(t, h.snapshot(), all)
	for i := 1; i < len(evs); i++ {
		if evs[i].Off <= evs[i-1].Off {
			t.Fatalf("event %d at offset %d after %d", i, evs[i].Off, evs[i-1].Off)
		}
	}
	h.m.mu.Lock()
	var rewound int64
	for _, fl := range h.m.followers {
		rewound += fl.rewound.Load()
	}
	h.m.mu.Unlock()
	if rewound == 0 {
		t.Errorf("the follower never gave up lines read ahead: the test does not test rewind")
	}
	assertChunkEnds(t, h.chunkList(), realPath(t, path), []byte(joinLines(all)), false)
}
