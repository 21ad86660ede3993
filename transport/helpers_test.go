package transport

// Test harness: hand-built chunks, a recording sink, a recording committer
// that checks the commit invariant, a wire log (client interceptor) and a
// real gRPC server and client on loopback TCP.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"

	"github.com/ferrylogs/ferry/internal/testlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testNode = "node-a"

// waitTimeout bounds every wait on a condition: generous, so that a loaded
// machine is slow but never flaky.
const waitTimeout = 30 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ---- chunks

// chunkMaker builds chunks by hand with tail.NewChunk and a permit channel
// of its own, which lets it check that every chunk is released exactly once. (TestEventFields and
// TestManyTinyEvents use a real Manager.)
type chunkMaker struct {
	permits chan struct{}
	mu      sync.Mutex
	fed     map[string][]int64 // file id -> offsets of the events handed out
	t0      int64
}

func newChunkMaker(t testing.TB) *chunkMaker {
	m := &chunkMaker{permits: make(chan struct{}, 1<<20), fed: map[string][]int64{}, t0: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()}
	// Registered before any client, so it runs after the client stopped.
	t.Cleanup(func() {
		if n := len(m.permits); n != 0 && !t.Failed() {
			t.Errorf("%d chunks never released", n)
		}
	})
	return m
}

// outstanding returns the number of chunks handed out and not released.
func (m *chunkMaker) outstanding() int { return len(m.permits) }

// chunk returns a chunk of f holding msgs as consecutive lines from off on
// (each line is its message plus '\\n'); End is the offset after the last.
func (m *chunkMaker) chunk(f *tail.File, off int64, msgs ...string) *tail.Chunk {
	m.permits <- struct{}{}
	c := tail.NewChunk(f, func() { <-m.permits })
	for i, msg := range msgs {
		start := len(c.Arena)
		c.Arena = append(c.Arena, msg...)
		stream := ferryv1.StreamName_STREAM_STDOUT
		if i%2 == 1 {
			stream = ferryv1.StreamName_STREAM_STDERR
		}
		c.Recs = append(c.Recs, tail.Rec{
			Off: off, MsgStart: uint32(start), MsgEnd: uint32(len(c.Arena)),
			Time: m.t0 + off, Stream: stream, Flags: uint32(i % 16),
		})
		off += int64(len(msg)) + 1
	}
	c.End = off
	m.mu.Lock()
	for _, r := range c.Recs {
		m.fed[f.ID] = append(m.fed[f.ID], r.Off)
	}
	m.mu.Unlock()
	return c
}

// seqChunks returns n chunks of f, each with perChunk events, following
// each other in the file.
func (m *chunkMaker) seqChunks(f *tail.File, n, perChunk int) []*tail.Chunk {
	var out []*tail.Chunk
	var off int64
	for i := range n {
		msgs := make([]string, perChunk)
		for j := range msgs {
			msgs[j] = fmt.Sprintf("%s line %d.%d", f.Path, i, j)
		}
		c := m.chunk(f, off, msgs...)
		off = c.End
		out = append(out, c)
	}
	return out
}

func (m *chunkMaker) fedOffsets(fileID string) []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.fed[fileID])
}

func testFile(name string) *tail.File {
	return &tail.File{
		ID:    "801-" + name + "-0f0f0f0f",
		Path:  "/var/log/pods/ns_" + name + "_uid/app/0.log",
		Link:  "/var/log/containers/" + name + ".log",
		Input: "containers",
		Kube:  &ferryv1.Kubernetes{Namespace: "ns", Pod: name, PodUid: "uid-" + name, Container: "app", ContainerId: "c0ffee"},
	}
}

// ---- logs

// logBuf collects a component's log output; it is shown when a test fails.
type logBuf = testlog.Buffer

func newLogger(t testing.TB, name string) (*slog.Logger, *logBuf) { return testlog.New(t, name) }

// ---- sink

type sinkWrite struct {
	seq     uint64
	node    string
	attempt int // earlier writes of the same seq
	events  []*ferryv1.Event
	start   time.Time
	end     time.Time
	ctxErr  error // ctx.Err() when Write returned
}

// recSink records every write. hook, if set, decides the outcome of each
// write (it may block); by default a write succeeds at once.
type recSink struct {
	hook func(ctx context.Context, b *event.Batch, attempt int) (sinks.Result, error)

	mu        sync.Mutex
	writes    []*sinkWrite
	attempts  map[uint64]int
	active    int
	maxActive int
	closed    int
}

func (s *recSink) Write(ctx context.Context, b *event.Batch) (sinks.Result, error) {
	s.mu.Lock()
	if s.attempts == nil {
		s.attempts = map[uint64]int{}
	}
	w := &sinkWrite{seq: b.Seq, node: b.Node, attempt: s.attempts[b.Seq], events: b.Events, start: time.Now()}
	s.attempts[b.Seq]++
	s.writes = append(s.writes, w)
	s.active++
	s.maxActive = max(s.maxActive, s.active)
	s.mu.Unlock()

	res, err := sinks.Result{Delivered: len(b.Events)}, error(nil)
	if s.hook != nil {
		res, err = s.hook(ctx, b, w.attempt)
	}

	s.mu.Lock()
	s.active--
	w.end, w.ctxErr = time.Now(), ctx.Err()
	s.mu.Unlock()
	return res, err
}

func (s *recSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	return nil
}

func (s *recSink) snapshot() []sinkWrite {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sinkWrite, len(s.writes))
	for i, w := range s.writes {
		out[i] = *w
	}
	return out
}

func (s *recSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.writes)
}

func (s *recSink) activeNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// seqs returns the distinct sequence numbers written, sorted.
func (s *recSink) seqs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for seq := range s.attempts {
		out = append(out, seq)
	}
	slices.Sort(out)
	return out
}

// gate blocks sink writes until it is opened.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate(t testing.TB) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open) // never leave a handler blocked
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// wait blocks until the gate opens or ctx ends.
func (g *gate) wait(ctx context.Context) error {
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ---- wire log

type evKey struct {
	file string
	off  int64
}

type sentBatch struct {
	stream int
	seq    uint64
	ids    []byte // concatenated event ids
	at     time.Time
}

type recvAck struct {
	stream     int
	seq        uint64
	code       ferryv1.Ack_Code
	message    string
	retryAfter int64
	at         time.Time
}

// wireLog records what the client sends and receives, through a stream
// interceptor: the oracle for what crossed the wire.
type wireLog struct {
	opens atomic.Int64 // stream opening attempts

	mu             sync.Mutex
	streams        int
	sends          []sentBatch
	acks           []recvAck
	seqOf          map[evKey]uint64
	final          map[uint64]ferryv1.Ack_Code // seq -> OK or PERMANENT
	outstanding    map[uint64]bool             // on the current stream
	maxOutstanding int
}

func newWireLog() *wireLog {
	return &wireLog{seqOf: map[evKey]uint64{}, final: map[uint64]ferryv1.Ack_Code{}, outstanding: map[uint64]bool{}}
}

func (w *wireLog) interceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		w.opens.Add(1)
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		w.mu.Lock()
		w.streams++
		id := w.streams
		w.outstanding = map[uint64]bool{}
		w.mu.Unlock()
		return &loggedStream{ClientStream: cs, w: w, id: id}, nil
	}
}

type loggedStream struct {
	grpc.ClientStream
	w  *wireLog
	id int
}

func (s *loggedStream) SendMsg(m any) error {
	b, ok := m.(*ferryv1.Batch)
	if x, isExtra := m.(*batchExtra); isExtra {
		b, ok = x.Batch, true // what the client sends (see pending.wireMsg)
	}
	if !ok {
		return fmt.Errorf("loggedStream: a message of type %T", m)
	}
	sb := sentBatch{stream: s.id, seq: b.Seq, at: time.Now()}
	w := s.w
	w.mu.Lock()
	for _, e := range b.Events {
		sb.ids = append(sb.ids, e.Id...)
		k := evKey{e.GetSource().GetFileId(), e.GetSource().GetOffset()}
		if _, ok := w.seqOf[k]; !ok {
			w.seqOf[k] = b.Seq
		}
	}
	w.sends = append(w.sends, sb)
	if s.id == w.streams {
		w.outstanding[b.Seq] = true
		w.maxOutstanding = max(w.maxOutstanding, len(w.outstanding))
	}
	w.mu.Unlock()
	return s.ClientStream.SendMsg(m)
}

func (s *loggedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		return err
	}
	a := m.(*ferryv1.Ack)
	w := s.w
	w.mu.Lock()
	w.acks = append(w.acks, recvAck{stream: s.id, seq: a.Seq, code: a.Code, message: a.Message, retryAfter: a.RetryAfterMillis, at: time.Now()})
	if a.Code == ferryv1.Ack_CODE_OK || a.Code == ferryv1.Ack_CODE_PERMANENT {
		if _, ok := w.final[a.Seq]; !ok {
			w.final[a.Seq] = a.Code
		}
	}
	if s.id == w.streams {
		delete(w.outstanding, a.Seq)
	}
	w.mu.Unlock()
	return nil
}

func (w *wireLog) sendsOf(seq uint64) []sentBatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []sentBatch
	for _, s := range w.sends {
		if s.seq == seq {
			out = append(out, s)
		}
	}
	return out
}

func (w *wireLog) acksOf(seq uint64) []recvAck {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []recvAck
	for _, a := range w.acks {
		if a.seq == seq {
			out = append(out, a)
		}
	}
	return out
}

func (w *wireLog) allAcks() []recvAck {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acks)
}

func (w *wireLog) finalAck(seq uint64) (ferryv1.Ack_Code, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.final[seq]
	return c, ok
}

func (w *wireLog) maxInFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxOutstanding
}

// ---- committer

type commitRec struct {
	file  string
	end   int64
	final bool
}

// recCommitter records commits and checks, at each one, the invariant the
// client promises: every event of the file before the committed offset was
// sent in a batch that got its final ack (OK or PERMANENT), and so did
// every batch sent with a lower sequence number (commits in batch order).
type recCommitter struct {
	mk   *chunkMaker // may be nil: then only sent events are checked
	w    *wireLog
	next Committer // may be nil

	mu      sync.Mutex
	commits []commitRec
	errs    []string
}

func (c *recCommitter) Commit(f *tail.File, end int64, final bool) {
	c.w.mu.Lock()
	var errs []string
	var top uint64
	check := func(k evKey) {
		seq, ok := c.w.seqOf[k]
		if !ok {
			errs = append(errs, fmt.Sprintf("commit %s@%d: event at %d never sent", k.file, end, k.off))
			return
		}
		if _, ok := c.w.final[seq]; !ok {
			errs = append(errs, fmt.Sprintf("commit %s@%d: event at %d is in batch %d, not acknowledged", k.file, end, k.off, seq))
		}
		top = max(top, seq)
	}
	if c.mk != nil {
		for _, off := range c.mk.fedOffsets(f.ID) {
			if off < end {
				check(evKey{f.ID, off})
			}
		}
	} else {
		for k := range c.w.seqOf {
			if k.file == f.ID && k.off < end {
				check(k)
			}
		}
	}
	for _, s := range c.w.sends {
		if _, ok := c.w.final[s.seq]; s.seq < top && !ok {
			errs = append(errs, fmt.Sprintf("commit %s@%d (batch %d) before batch %d was acknowledged", f.ID, end, top, s.seq))
		}
	}
	c.w.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.commits {
		if p.file == f.ID && p.end > end {
			errs = append(errs, fmt.Sprintf("commit %s@%d after %d: offsets go back", f.ID, end, p.end))
		}
	}
	c.commits = append(c.commits, commitRec{f.ID, end, final})
	c.errs = append(c.errs, errs...)
	if c.next != nil {
		c.next.Commit(f, end, final)
	}
}

func (c *recCommitter) list() []commitRec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.commits)
}

func (c *recCommitter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.commits)
}

func (c *recCommitter) check(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.errs {
		t.Error(e)
	}
	seen := map[commitRec]int{}
	for _, p := range c.commits {
		seen[p]++
		if seen[p] == 2 {
			t.Errorf("committed twice: %+v", p)
		}
	}
}

// ---- server

type testServer struct {
	t    testing.TB
	addr string
	opts []grpc.ServerOption
	cfg  ServerConfig
	sink *recSink
	srv  *Server
	gs   *grpc.Server
	done chan struct{}
	logs *logBuf
}

// startServer serves a new Server over sink on a loopback port.
func startServer(t testing.TB, sink *recSink, cfg ServerConfig, opts ...grpc.ServerOption) *testServer {
	t.Helper()
	log, lb := newLogger(t, "server")
	s := &testServer{t: t, opts: opts, cfg: cfg, sink: sink, logs: lb}
	s.srv = NewServer(sink, cfg, log)
	s.serve("127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) serve(addr string) {
	s.t.Helper()
	var ln net.Listener
	var err error
	// The port of a stopped server may take a moment to be free again.
	waitFor(s.t, "listening on "+addr, func() bool {
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	s.addr = ln.Addr().String()
	s.gs = grpc.NewServer(s.opts...)
	ferryv1.RegisterIngestServer(s.gs, s.srv)
	s.done = make(chan struct{})
	gs, done := s.gs, s.done
	go func() { _ = gs.Serve(ln); close(done) }()
}

// stop kills the server: connections closed, streams cancelled.
func (s *testServer) stop() {
	if s.gs == nil {
		return
	}
	s.gs.Stop()
	<-s.done
	s.gs = nil
}

// restart serves again on the same address, with a new Server over sink.
func (s *testServer) restart(sink *recSink) {
	s.t.Helper()
	s.stop()
	log, lb := newLogger(s.t, "restarted server")
	s.sink, s.logs = sink, lb
	s.srv = NewServer(sink, s.cfg, log)
	s.serve(s.addr)
}

// ---- client

type testClient struct {
	t      testing.TB
	c      *Client
	in     chan *tail.Chunk
	wire   *wireLog
	com    *recCommitter
	logs   *logBuf
	cancel context.CancelFunc
	done   chan error
	result error
	ended  bool
}

func startClient(t testing.TB, addr string, mk *chunkMaker, cfg ClientConfig, inCap int, dial ...grpc.DialOption) *testClient {
	t.Helper()
	in := make(chan *tail.Chunk, inCap)
	tc := startClientFrom(t, addr, mk, cfg, in, nil, dial...)
	tc.in = in
	t.Cleanup(func() {
		// After the client's own cleanup (LIFO): give back what it never took.
		for len(in) > 0 {
			(<-in).Release()
		}
	})
	return tc
}

// startClientFrom runs a client over src; commits go to the recording
// committer and then to next, if set.
func startClientFrom(t testing.TB, addr string, mk *chunkMaker, cfg ClientConfig, src <-chan *tail.Chunk, next Committer, dial ...grpc.DialOption) *testClient {
	t.Helper()
	log, lb := newLogger(t, "client")
	w := newWireLog()
	cfg.Address = addr
	if cfg.Node == "" {
		cfg.Node = testNode
	}
	cfg.DialOptions = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStreamInterceptor(w.interceptor()),
	}, dial...)
	com := &recCommitter{mk: mk, w: w, next: next}
	c, err := NewClient(cfg, com, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tc := &testClient{t: t, c: c, wire: w, com: com, logs: lb, cancel: cancel, done: make(chan error, 1)}
	go func() { tc.done <- c.Run(ctx, src) }()
	t.Cleanup(func() {
		cancel()
		tc.wait()
		c.Close()
	})
	return tc
}

func (tc *testClient) send(chunks ...*tail.Chunk) {
	for _, c := range chunks {
		tc.in <- c
	}
}

// stop cancels Run and returns its result.
func (tc *testClient) stop() error {
	tc.cancel()
	return tc.wait()
}

func (tc *testClient) wait() error {
	if tc.ended {
		return tc.result
	}
	select {
	case tc.result = <-tc.done:
		tc.ended = true
	case <-time.After(2 * waitTimeout):
		tc.t.Fatal("Run did not return")
	}
	return tc.result
}

// returned reports, without blocking, whether Run has returned.
func (tc *testClient) returned() bool {
	if tc.ended {
		return true
	}
	select {
	case tc.result = <-tc.done:
		tc.ended = true
		return true
	default:
		return false
	}
}

// committedEnds returns, per file id, the offsets committed in order.
func (tc *testClient) committedEnds() map[string][]int64 {
	out := map[string][]int64{}
	for _, c := range tc.com.list() {
		out[c.file] = append(out[c.file], c.end)
	}
	return out
}

// ---- raw client

// rawStream is a bare gRPC stream, for sending what the Client never would.
type rawStream struct {
	conn *grpc.ClientConn
	st   grpc.BidiStreamingClient[ferryv1.Batch, ferryv1.Ack]
}

func dialRaw(t testing.TB, addr string, opts ...grpc.CallOption) *rawStream {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := ferryv1.NewIngestClient(conn).Stream(ctx, opts...)
	if err != nil {
		cancel()
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); conn.Close() })
	return &rawStream{conn: conn, st: st}
}

// recvAcks receives n acks, by sequence number.
func (r *rawStream) recvAcks(t testing.TB, n int) map[uint64]*ferryv1.Ack {
	t.Helper()
	out := map[uint64]*ferryv1.Ack{}
	for range n {
		a, err := r.st.Recv()
		if err != nil {
			t.Fatalf("recv ack: %v", err)
		}
		out[a.Seq] = a
	}
	return out
}

// validBatch returns a well-formed batch of n events.
func validBatch(seq uint64, n int) *ferryv1.Batch {
	b := &ferryv1.Batch{Seq: seq, Node: testNode}
	for i := range n {
		b.Events = append(b.Events, &ferryv1.Event{
			Id:      event.ID(nil, testNode, "raw", int64(seq)<<32|int64(i)),
			Message: []byte(fmt.Sprintf("raw %d.%d", seq, i)),
			Source:  &ferryv1.Source{FileId: "raw", Offset: int64(seq)<<32 | int64(i)},
		})
	}
	return b
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
