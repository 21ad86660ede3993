package tail

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferrylogs/ferry/pipeline/budget"
	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	"github.com/ferrylogs/ferry/pipeline/parse"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"

	"github.com/ferrylogs/ferry/internal/testlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Intervals used by every test: short, so that tests are fast, but every
// wait is on a condition with a generous deadline, so a loaded machine only
// makes them slower.
const (
	testPoll    = 20 * time.Millisecond
	testGlob    = 50 * time.Millisecond
	waitTimeout = 60 * time.Second
)

const (
	flagTrunc   = uint32(ferryv1.Flag_FLAG_TRUNCATED)
	flagUTF8    = uint32(ferryv1.Flag_FLAG_INVALID_UTF8)
	flagJoined  = uint32(ferryv1.Flag_FLAG_JOINED)
	flagUnpars  = uint32(ferryv1.Flag_FLAG_UNPARSED)
	flagPartial = uint32(ferryv1.Flag_FLAG_PARTIAL)
)

// ev is one event as the harness saw it.
type ev struct {
	Run    int // which start of the manager delivered it
	FileID string
	Path   string
	Link   string
	Off    int64
	Msg    string
	Flags  uint32
	Stream ferryv1.StreamName
	Time   int64
	Orig   string // Rec.OrigTime
	End    int64  // Rec.End (multiline events)
	Lines  uint32 // Rec.Lines (multiline events)
}

func (e ev) String() string {
	m := e.Msg
	if len(m) > 60 {
		m = fmt.Sprintf("%s...(%d bytes)", m[:60], len(m))
	}
	return fmt.Sprintf("{run %d %s@%d %q flags=%d}", e.Run, e.FileID, e.Off, m, e.Flags)
}

// chunkSeen is one chunk as the harness saw it.
type chunkSeen struct {
	Run    int
	File   *File
	Recs   int
	Bytes  int
	End    int64
	Final  bool
	Commit bool // committed (at once, or later by commitPending)
}

// pendingCommit is a received chunk whose commit the test holds back.
type pendingCommit struct {
	file  *File
	end   int64
	final bool
	idx   int // in chunks
}

type harnessOpts struct {
	// holdCommits: record chunks but do not commit them until the test
	// calls commitPending.
	holdCommits bool
	// paused: do not read Chunks until the test calls resume.
	paused bool
	// prepare, if set, fills the store before the first start; the store
	// is then saved and reopened, as after an earlier run of the agent.
	prepare func(st *checkpoint.Store)
	// budget is the manager's read-ahead budget in bytes (0: the default).
	budget int64
	// stateDir, if set, is the state directory (else a new one).
	stateDir string
	// notifier, if set, makes the manager's notifier (else the
	// platform's).
	notifier func() (notifier, error)
}

// harness runs a Manager over real files, with a checkpoint store in a
// temporary directory, and records everything that comes out of it.
type harness struct {
	t        testing.TB
	stateDir string
	inputs   []Input
	opts     harnessOpts

	store    *checkpoint.Store
	m        *Manager
	cancel   context.CancelFunc
	runErr   chan error
	consDone chan struct{}
	gate     chan struct{} // closed when consumption may proceed

	mu      sync.Mutex
	run     int
	events  []ev
	chunks  []chunkSeen
	pending []pendingCommit
	logs    *testlog.Buffer
}

// newHarness opens a store in a fresh state directory and starts a manager.
func newHarness(t testing.TB, opts harnessOpts, inputs ...Input) *harness {
	t.Helper()
	h := &harness{t: t, stateDir: opts.stateDir, inputs: inputs, opts: opts, logs: &testlog.Buffer{}}
	if h.stateDir == "" {
		h.stateDir = t.TempDir()
	}
	st, err := checkpoint.Open(h.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	h.store = st
	if opts.prepare != nil {
		opts.prepare(st)
		if err := st.Save(); err != nil {
			t.Fatal(err)
		}
		if h.store, err = checkpoint.Open(h.stateDir); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("manager log:\n%s", h.logs.String())
		}
	})
	h.start()
	return h
}

// input returns an Input with the test intervals.
func input(name string, format parse.Format, paths ...string) Input {
	return Input{Name: name, Paths: paths, Format: format, PollInterval: testPoll, GlobInterval: testGlob}
}

func (h *harness) start() {
	h.mu.Lock()
	h.run++
	h.mu.Unlock()
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var b *budget.Budget
	if h.opts.budget > 0 {
		b = budget.New(h.opts.budget)
	}
	h.m = NewManager(h.inputs, h.store, b, log)
	if h.opts.notifier != nil {
		h.m.newNotifier = h.opts.notifier
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.runErr = make(chan error, 1)
	h.consDone = make(chan struct{})
	h.gate = make(chan struct{})
	if !h.opts.paused {
		close(h.gate)
	}
	m := h.m
	go func() { h.runErr <- m.Run(ctx) }()
	go h.consume(ctx, m, h.gate)
}

// consume reads chunks, records them, commits them (unless held) and
// releases them, as the shipper does.
func (h *harness) consume(ctx context.Context, m *Manager, gate chan struct{}) {
	defer close(h.consDone)
	select {
	case <-gate:
	case <-ctx.Done():
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-m.Chunks():
			h.record(m, c)
			c.Release()
		}
	}
}

func (h *harness) record(m *Manager, c *Chunk) {
	h.mu.Lock()
	cs := chunkSeen{Run: h.run, File: c.File, Recs: len(c.Recs), Bytes: len(c.Arena), End: c.End, Final: c.Final}
	for i := range c.Recs {
		r := &c.Recs[i]
		h.events = append(h.events, ev{
			Run: h.run, FileID: c.File.ID, Path: c.File.Path, Link: c.File.Link, Off: r.Off,
			Msg: string(c.Message(r)), Flags: r.Flags, Stream: r.Stream, Time: r.Time, Orig: r.OrigTime,
			End: r.End, Lines: r.Lines,
		})
	}
	hold := h.opts.holdCommits
	cs.Commit = !hold
	h.chunks = append(h.chunks, cs)
	if hold {
		h.pending = append(h.pending, pendingCommit{file: c.File, end: c.End, final: c.Final, idx: len(h.chunks) - 1})
	}
	h.mu.Unlock()
	if !hold {
		m.Commit(c.File, c.End, c.Final)
	}
}

// resume lets a paused harness read chunks.
func (h *harness) resume() {
	h.opts.paused = false
	close(h.gate)
}

// setHold switches held commits on or off for chunks received from now on.
func (h *harness) setHold(hold bool) {
	h.mu.Lock()
	h.opts.holdCommits = hold
	h.mu.Unlock()
}

// commitPending commits the first n held chunks (all if n < 0), in order,
// and returns how many it committed.
func (h *harness) commitPending(n int) int {
	h.mu.Lock()
	if n < 0 || n > len(h.pending) {
		n = len(h.pending)
	}
	todo := h.pending[:n]
	h.pending = append([]pendingCommit(nil), h.pending[n:]...)
	for _, p := range todo {
		h.chunks[p.idx].Commit = true
	}
	m := h.m
	h.mu.Unlock()
	for _, p := range todo {
		m.Commit(p.file, p.end, p.final)
	}
	return n
}

// stop cancels the manager, waits for it and for the consumer, and
// releases whatever chunks were left unread (they are not delivered).
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.runErr:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(waitTimeout):
		h.t.Fatalf("Run did not return after cancel")
	}
	<-h.consDone
	for {
		select {
		case c := <-h.m.Chunks():
			c.Release()
			continue
		default:
		}
		break
	}
	if n := h.m.budget.Used(); n != 0 {
		h.t.Errorf("%d bytes of the budget still held after stop", n)
	}
	h.cancel = nil
	h.mu.Lock()
	h.pending = nil // never acknowledged
	h.mu.Unlock()
}

// restart saves the store, reopens it from disk and starts a new manager.
func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	if err := h.store.Save(); err != nil {
		h.t.Fatal(err)
	}
	st, err := checkpoint.Open(h.stateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	h.store = st
	h.start()
}

// snapshot returns a copy of the events seen so far.
func (h *harness) snapshot() []ev {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ev(nil), h.events...)
}

func (h *harness) chunkList() []chunkSeen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]chunkSeen(nil), h.chunks...)
}

func (h *harness) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// finals returns the ids of files whose final chunk arrived.
func (h *harness) finals() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, c := range h.chunks {
		if c.Final {
			out[c.File.ID]++
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEvents waits until at least n events have arrived.
func (h *harness) waitEvents(n int) []ev {
	h.t.Helper()
	waitFor(h.t, fmt.Sprintf("%d events", n), func() bool { return h.count() >= n })
	return h.snapshot()
}

// waitMsgs waits until every message in want has arrived at least once.
func (h *harness) waitMsgs(want []string) []ev {
	h.t.Helper()
	waitFor(h.t, fmt.Sprintf("%d messages", len(want)), func() bool {
		seen := map[string]bool{}
		for _, e := range h.snapshot() {
			seen[e.Msg] = true
		}
		for _, w := range want {
			if !seen[w] {
				return false
			}
		}
		return true
	})
	return h.snapshot()
}

// settle lets time pass to show that nothing more arrives: several poll and
// glob intervals. This is a deliberate sleep, not a synchronisation.
func settle() { time.Sleep(10 * testGlob) }

// --- files -----------------------------------------------------------------

func appendFile(t testing.TB, path string, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func devInoOf(t testing.TB, path string) devIno {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	di, ok := statDevIno(fi)
	if !ok {
		t.Fatal("no device and inode")
	}
	return di
}

func realPath(t testing.TB, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func numbered(prefix string, from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%07d", prefix, i))
	}
	return out
}

func joinLines(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

const criTS = "2024-05-01T12:00:00.123456789Z"

func criLine(stream, tag, msg string) string { return criTS + " " + stream + " " + tag + " " + msg }

// --- assertions ----------------------------------------------------------

// msgs returns the messages of evs.
func msgs(evs []ev) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Msg
	}
	return out
}

// byFile groups events by file id, keeping arrival order.
func byFile(evs []ev) map[string][]ev {
	out := map[string][]ev{}
	for _, e := range evs {
		out[e.FileID] = append(out[e.FileID], e)
	}
	return out
}

// assertExactlyOnce checks that evs hold every message of want exactly once
// and nothing else, and that within each file the events come in offset
// order with the messages in the order of want.
func assertExactlyOnce(t testing.TB, evs []ev, want []string) {
	t.Helper()
	pos := map[string]int{}
	for i, w := range want {
		if _, dup := pos[w]; dup {
			t.Fatalf("test bug: %q wanted twice", w)
		}
		pos[w] = i
	}
	seen := map[string]int{}
	var extra, dups []string
	for _, e := range evs {
		if _, ok := pos[e.Msg]; !ok {
			extra = append(extra, e.String())
			continue
		}
		seen[e.Msg]++
		if seen[e.Msg] == 2 {
			dups = append(dups, e.String())
		}
	}
	var missing []string
	for _, w := range want {
		if seen[w] == 0 {
			missing = append(missing, w)
		}
	}
	if len(extra)+len(dups)+len(missing) > 0 {
		t.Fatalf("got %d events for %d wanted lines:\n unexpected %d: %s\n duplicated %d: %s\n missing %d: %s",
			len(evs), len(want), len(extra), head(extra), len(dups), head(dups), len(missing), head(missing))
	}
	for id, fe := range byFile(evs) {
		for i := 1; i < len(fe); i++ {
			if fe[i].Off <= fe[i-1].Off {
				t.Fatalf("file %s: offsets out of order: %v then %v", id, fe[i-1], fe[i])
			}
			if pos[fe[i].Msg] <= pos[fe[i-1].Msg] {
				t.Fatalf("file %s: lines out of order: %v then %v", id, fe[i-1], fe[i])
			}
		}
	}
}

func head(s []string) string {
	if len(s) > 8 {
		return strings.Join(s[:8], ", ") + fmt.Sprintf(" ... (%d more)", len(s)-8)
	}
	return strings.Join(s, ", ")
}

// lineStarts returns the offsets at which a reader may restart in data:
// the start of every record that does not continue a partial CRI line, and
// the end of the data if it ends with a complete record. With cri false
// every line start counts.
func lineStarts(data []byte, cri bool) map[int64]bool {
	out := map[int64]bool{0: true}
	var off int64
	open := map[string]bool{} // stream -> partial open
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := data[:i]
		off += int64(i + 1)
		data = data[i+1:]
		if cri {
			f := strings.SplitN(string(line), " ", 4)
			if len(f) >= 3 {
				open[f[1]] = f[2] == "P"
			}
		}
		anyOpen := false
		for _, o := range open {
			anyOpen = anyOpen || o
		}
		if !anyOpen {
			out[off] = true
		}
	}
	return out
}

// assertChunkEnds checks that every chunk of the file with the given path
// ends at a restart point of its content.
func assertChunkEnds(t testing.TB, chunks []chunkSeen, path string, data []byte, cri bool) {
	t.Helper()
	ok := lineStarts(data, cri)
	for _, c := range chunks {
		if c.File.Path != path || c.Final {
			continue
		}
		if !ok[c.End] {
			t.Fatalf("chunk of %s ends at %d, inside a line or an open join", path, c.End)
		}
	}
}

// assertChunkLimits checks the per-chunk bounds the shipper relies on.
func assertChunkLimits(t testing.TB, chunks []chunkSeen, maxLine int) {
	t.Helper()
	for _, c := range chunks {
		if c.Recs > chunkMaxRecs {
			t.Fatalf("chunk of %s holds %d events, more than %d", c.File.Path, c.Recs, chunkMaxRecs)
		}
		if c.Bytes > chunkMaxBytes+maxLine {
			t.Fatalf("chunk of %s holds %d bytes, more than %d", c.File.Path, c.Bytes, chunkMaxBytes+maxLine)
		}
	}
}

// inodeOf returns the inode of an open file.
func inodeOf(f *os.File) uint64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// runtimeMem is the live heap after a collection.
type runtimeMem struct{ heap uint64 }

func (m *runtimeMem) read() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heap = ms.HeapAlloc
}
