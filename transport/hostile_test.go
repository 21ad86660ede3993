package transport

// Broken and hostile agents: garbage on the port, batches over the size
// limit, agents that send and never read their acks. The aggregator must
// stay up, keep serving the others, and not let them hold its memory or
// its goroutines.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
)

// ---- server as cmd/aggregator runs it

// aggregatorOptions are the grpc.Server options of cmd/aggregator (without
// TLS and auth), with the message size limit given. No window options: the
// flow control windows grow with the measured bandwidth (BDP), as in
// cmd/aggregator today.
func aggregatorOptions(maxRecv int) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		grpc.MaxConcurrentStreams(1024),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge:      10 * time.Minute,
			MaxConnectionAgeGrace: 2 * time.Minute,
			Time:                  time.Minute,
		}),
	}
}

// funcSink is a sink that keeps nothing (recSink keeps every event, which
// would hide what the server holds).
type funcSink func(ctx context.Context, b *event.Batch) (sinks.Result, error)

func (f funcSink) Write(ctx context.Context, b *event.Batch) (sinks.Result, error) { return f(ctx, b) }
func (funcSink) Close(context.Context) error                                       { return nil }

func okSink(_ context.Context, b *event.Batch) (sinks.Result, error) {
	return sinks.Result{Delivered: len(b.Events)}, nil
}

type hostileServer struct {
	addr string
	srv  *Server
	logs *logBuf
}

// startHostileServer serves a Server over sink with the options of
// cmd/aggregator, and more, until the test ends.
func startHostileServer(t *testing.T, sink sinks.Sink, cfg ServerConfig, maxRecv int, more ...grpc.ServerOption) *hostileServer {
	t.Helper()
	log, lb := newLogger(t, "server")
	srv := NewServer(sink, cfg, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(append(aggregatorOptions(maxRecv), more...)...)
	ferryv1.RegisterIngestServer(gs, srv)
	done := make(chan struct{})
	go func() { _ = gs.Serve(ln); close(done) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return &hostileServer{addr: ln.Addr().String(), srv: srv, logs: lb}
}

// wellBehaved opens a stream on a connection of its own, sends a valid
// batch and wants it acknowledged OK.
func wellBehaved(t *testing.T, addr string, seq uint64) {
	t.Helper()
	raw := dialRaw(t, addr)
	if err := raw.st.Send(validBatch(seq, 3)); err != nil {
		t.Fatalf("well-behaved agent: send: %v", err)
	}
	if a := raw.recvAcks(t, 1)[seq]; a == nil || a.Code != ferryv1.Ack_CODE_OK {
		t.Fatalf("well-behaved agent: ack %v, want OK for batch %d", a, seq)
	}
	if err := raw.st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.st.Recv(); err != io.EOF {
		t.Fatalf("well-behaved agent: stream ended with %v, want EOF", err)
	}
}

// heapInuse returns HeapInuse after two collections: the second frees
// what sync.Pools (gRPC's buffers) held before the first.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// preEncoded is a codec that sends messages given encoded ([]byte), as
// they are, and decodes protobuf.
type preEncoded struct{}

func (preEncoded) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (preEncoded) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// Name is the content-subtype: the server decodes with its proto codec.
func (preEncoded) Name() string { return "proto" }

// ---- raw HTTP/2, hand-made

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

const (
	h2Data         = 0x0
	h2Headers      = 0x1
	h2RSTStream    = 0x3
	h2Settings     = 0x4
	h2FlagEndStrm  = 0x1
	h2FlagEndHdrs  = 0x4
	h2FrameHdrSize = 9
)

func h2Frame(typ, flags byte, stream uint32, payload []byte) []byte {
	f := make([]byte, h2FrameHdrSize, h2FrameHdrSize+len(payload))
	f[0], f[1], f[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	f[3], f[4] = typ, flags
	binary.BigEndian.PutUint32(f[5:], stream&0x7fffffff)
	return append(f, payload...)
}

// h2RequestHeaders is the HPACK block of a gRPC call of Ingest.Stream: every
// field a literal without indexing, no Huffman coding.
func h2RequestHeaders() []byte {
	var b []byte
	for _, kv := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/ferry.v1.Ingest/Stream"}, {":authority", "aggregator"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		b = append(b, 0x00, byte(len(kv[0])))
		b = append(b, kv[0]...)
		b = append(b, byte(len(kv[1])))
		b = append(b, kv[1]...)
	}
	return b
}

// grpcFrame is a gRPC length-prefixed message that declares length bytes
// and carries body.
func grpcFrame(length uint32, body []byte) []byte {
	m := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(m[1:], length)
	return append(m, body...)
}

// h2Call opens stream 1 for Ingest.Stream, after the preface and settings.
func h2Call() []byte {
	b := []byte(h2Preface)
	b = append(b, h2Frame(h2Settings, 0, 0, nil)...)
	return append(b, h2Frame(h2Headers, h2FlagEndHdrs, 1, h2RequestHeaders())...)
}

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// readFrames reads the server's frames until one satisfies stop (true), or
// the connection ends (false, and the error).
func readFrames(t *testing.T, c net.Conn, stop func(typ, flags byte, stream uint32) bool) (bool, error) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, h2FrameHdrSize)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return false, err
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			return false, err
		}
		if stop(hdr[3], hdr[4], binary.BigEndian.Uint32(hdr[5:])&0x7fffffff) {
			return true, nil
		}
	}
}

// TestGarbageOnThePort writes what no gRPC client would to the server's
// port. The server closes connections that do not speak HTTP/2 and ends
// streams that do not carry whole valid messages; every time, no stream
// goroutine is left, nothing reached the sink, and a well-behaved agent
// still gets its batch acknowledged.
func TestGarbageOnThePort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	var calls atomic.Int64
	srv := startHostileServer(t, funcSink(func(ctx context.Context, b *event.Batch) (sinks.Result, error) {
		calls.Add(1)
		return okSink(ctx, b)
	}), ServerConfig{}, 1<<20)
	// The server ends the connection: EOF or a reset, not the deadline.
	connClosed := func(t *testing.T, c net.Conn) {
		t.Helper()
		_, err := readFrames(t, c, func(byte, byte, uint32) bool { return false })
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server kept the connection open: %v", err)
		}
	}
	// The server ends stream 1: trailers, or a reset.
	streamEnded := func(t *testing.T, c net.Conn) {
		t.Helper()
		ok, err := readFrames(t, c, func(typ, flags byte, stream uint32) bool {
			return stream == 1 && (typ == h2RSTStream || typ == h2Headers && flags&h2FlagEndStrm != 0)
		})
		if !ok {
			t.Fatalf("stream 1 not ended by the server: %v", err)
		}
	}
	valid, err := proto.Marshal(validBatch(77, 2))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		write  []byte
		then   func(t *testing.T, c net.Conn)
		writes int64 // sink writes it makes
	}{
		{name: "random bytes", write: random(64 << 10), then: connClosed},
		{name: "preface then random bytes", write: cat([]byte(h2Preface), random(4<<10)), then: connClosed},
		{name: "frame longer than the maximum frame size", write: cat([]byte(h2Preface), h2Frame(h2Settings, 0, 0, nil), h2Frame(h2Data, 0, 1, make([]byte, 1<<20))), then: connClosed},
		{name: "truncated message, then end of stream", write: cat(h2Call(), h2Frame(h2Data, h2FlagEndStrm, 1, grpcFrame(1000, random(10)))), then: streamEnded},
		{name: "message declaring 2 GiB", write: cat(h2Call(), h2Frame(h2Data, 0, 1, grpcFrame(1<<31-1, random(100)))), then: streamEnded},
		{name: "message that is not protobuf", write: cat(h2Call(), h2Frame(h2Data, h2FlagEndStrm, 1, grpcFrame(2, []byte{0x0f, 0x00}))), then: streamEnded},
		{name: "truncated message, then the connection drops", write: cat(h2Call(), h2Frame(h2Data, 0, 1, grpcFrame(1000, random(10)))),
			then: func(t *testing.T, c net.Conn) {
				waitFor(t, "the handler", func() bool { return srv.srv.running.Load() > 0 })
				c.Close()
			}},
		// Data on a stream never opened is dropped; the connection goes on
		// and a valid call on it is served.
		{name: "data on a stream never opened, then a valid call", writes: 1,
			write: cat([]byte(h2Preface), h2Frame(h2Settings, 0, 0, nil), h2Frame(h2Data, h2FlagEndStrm, 7, grpcFrame(3, []byte{1, 2, 3})),
				h2Frame(h2Headers, h2FlagEndHdrs, 9, h2RequestHeaders()),
				h2Frame(h2Data, h2FlagEndStrm, 9, grpcFrame(uint32(len(valid)), valid))),
			then: func(t *testing.T, c net.Conn) {
				acked := false
				ok, err := readFrames(t, c, func(typ, flags byte, stream uint32) bool {
					acked = acked || stream == 9 && typ == h2Data
					return stream == 9 && typ == h2Headers && flags&h2FlagEndStrm != 0
				})
				if !ok || !acked {
					t.Fatalf("valid call after the garbage: acked %v, ended %v (%v)", acked, ok, err)
				}
			}},
	}
	var writes int64
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The server may hang up before everything is written.
			_, _ = c.Write(tt.write)
			tt.then(t, c)
			waitFor(t, "no stream goroutine left", func() bool { return srv.srv.running.Load() == 0 })
			writes += tt.writes
			if n := calls.Load(); n != writes {
				t.Fatalf("%d sink writes, want %d", n, writes)
			}
			wellBehaved(t, srv.addr, uint64(i+1))
			writes++
		})
	}
	if n := srv.srv.BatchesFailed.Load(); n != 0 {
		t.Errorf("%d batches failed: garbage must not reach validation", n)
	}
}

// TestHugeBatch: a batch over the server's maximum message size, or one
// that only inflates over it (a gzip bomb), ends its stream with
// ResourceExhausted, without the server decoding (or inflating) it whole;
// it never reaches the budget, and the server keeps serving another stream
// of the same connection, and new ones.
func TestHugeBatch(t *testing.T) {
	const maxRecv = 1 << 20
	var calls atomic.Int64
	srv := startHostileServer(t, funcSink(func(ctx context.Context, b *event.Batch) (sinks.Result, error) {
		calls.Add(1)
		return okSink(ctx, b)
	}), ServerConfig{MaxBytesInFlight: 4 << 20}, maxRecv)
	other := dialRaw(t, srv.addr)
	seq := uint64(1)
	otherOK := func() {
		t.Helper()
		if err := other.st.Send(validBatch(seq, 2)); err != nil {
			t.Fatal(err)
		}
		if a := other.recvAcks(t, 1)[seq]; a == nil || a.Code != ferryv1.Ack_CODE_OK {
			t.Fatalf("other stream: ack %v, want OK", a)
		}
		seq++
	}
	otherOK()
	cases := []struct {
		name    string
		msg     int
		opts    []grpc.CallOption
		errWant string
		// Allocated in the whole process while sending and refusing it:
		// the client's encoding of the message (msg bytes) and a little.
		// A server decoding it would allocate msg bytes more at least.
		maxAlloc uint64
	}{
		{name: "2 MiB", msg: 2 << 20, errWant: "larger than max"},
		{name: "gzip bomb: 8 MiB of zeros", msg: 8 << 20, opts: []grpc.CallOption{grpc.UseCompressor(gzip.Name)},
			errWant: "after decompression larger than max", maxAlloc: 8<<20 + 6<<20},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			// On the other stream's connection.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hostile, err := ferryv1.NewIngestClient(other.conn).Stream(ctx, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			big := validBatch(1000, 1)
			big.Events[0].Message = make([]byte, tt.msg)
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			_ = hostile.Send(big) // fails if the server reset the stream first
			_, err = hostile.Recv()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if status.Code(err) != codes.ResourceExhausted || !contains(err.Error(), tt.errWant) {
				t.Fatalf("huge batch: %v, want ResourceExhausted %q", err, tt.errWant)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d KiB while sending and refusing %d KiB", alloc>>10, tt.msg>>10)
			if tt.maxAlloc > 0 && alloc > tt.maxAlloc {
				t.Errorf("allocated %d KiB, want at most %d KiB: did the server inflate the bomb?", alloc>>10, tt.maxAlloc>>10)
			}
			otherOK()
			wellBehaved(t, srv.addr, 2000)
		})
	}
	if n := srv.srv.BudgetWaits.Load(); n != 0 || srv.srv.budget.Peak() > maxRecv {
		t.Errorf("budget: %d waits, peak %d B; the huge batches must never be counted", n, srv.srv.budget.Peak())
	}
	// The other stream's batches and one per well-behaved agent.
	if n, want := calls.Load(), int64(seq-1)+int64(len(cases)); n != want {
		t.Errorf("%d sink writes, want %d", n, want)
	}
}

// TestBatchLargerThanBudget: a batch larger than the whole budget is
// admitted when nothing else is held (else it would wait for ever), and
// alone: a small batch sent meanwhile waits for it.
func TestBatchLargerThanBudget(t *testing.T) {
	g := newGate(t)
	srv := startHostileServer(t, funcSink(func(ctx context.Context, b *event.Batch) (sinks.Result, error) {
		if b.Seq == 1 {
			if err := g.wait(ctx); err != nil {
				return sinks.Result{}, err
			}
		}
		return okSink(ctx, b)
	}), ServerConfig{MaxBytesInFlight: 64 << 10}, 1<<20)
	big := validBatch(1, 1)
	big.Events[0].Message = make([]byte, 512<<10)
	raw := dialRaw(t, srv.addr)
	if err := raw.st.Send(big); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the big batch admitted", func() bool { return srv.srv.BytesInFlight() == batchBytes(big) })
	small := dialRaw(t, srv.addr)
	if err := small.st.Send(validBatch(2, 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the small batch waiting", func() bool { return srv.srv.budget.Waiting() == 1 })
	g.open()
	if a := raw.recvAcks(t, 1)[1]; a == nil || a.Code != ferryv1.Ack_CODE_OK {
		t.Fatalf("big batch: ack %v", a)
	}
	if a := small.recvAcks(t, 1)[2]; a == nil || a.Code != ferryv1.Ack_CODE_OK {
		t.Fatalf("small batch: ack %v", a)
	}
	waitFor(t, "the budget empty", func() bool { return srv.srv.BytesInFlight() == 0 })
	if n := srv.srv.BudgetWaits.Load(); n != 1 {
		t.Errorf("%d waits for the budget, want 1", n)
	}
}

// TestBudgetWaitEnds: a stream waiting for the budget stops waiting when
// its agent goes away (its handler returns), and when Drain gives up (the
// batch is answered with a retry while the batch holding the budget is
// still in the sink).
func TestBudgetWaitEnds(t *testing.T) {
	setup := func(t *testing.T) (*hostileServer, *gate, context.CancelFunc, grpc.BidiStreamingClient[ferryv1.Batch, ferryv1.Ack]) {
		g := newGate(t)
		// Batch 1 holds the whole budget until the gate opens; it ignores
		// cancellation, like a sink slow to notice it.
		const budget = 64 << 10
		srv := startHostileServer(t, funcSink(func(ctx context.Context, b *event.Batch) (sinks.Result, error) {
			if b.Seq == 1 {
				<-g.ch
			}
			return okSink(ctx, b)
		}), ServerConfig{MaxBytesInFlight: budget, RetryAfter: 123 * time.Millisecond}, 1<<20)
		// Batch 1 leaves less room than batch 2 needs.
		full := validBatch(1, 1)
		full.Events[0].Message = make([]byte, budget-batchBytes(full)-64) // counted once: the strings share the bytes
		if free := budget - batchBytes(full); free <= 0 || free >= batchBytes(validBatch(2, 1)) {
			t.Fatalf("batch 1 leaves %d B of the budget", free)
		}
		holder := dialRaw(t, srv.addr)
		if err := holder.st.Send(full); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "batch 1 holding the budget", func() bool { return srv.srv.BytesInFlight() == batchBytes(full) })
		waitFor(t, "batch 1 in the sink", func() bool { return srv.srv.running.Load() == 3 }) // handler, receiver, writer
		conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		waiter, err := ferryv1.NewIngestClient(conn).Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := waiter.Send(validBatch(2, 1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "batch 2 waiting for the budget", func() bool {
			return srv.srv.budget.Waiting() == 1 && srv.srv.running.Load() == 5
		})
		return srv, g, cancel, waiter
	}
	t.Run("agent gone", func(t *testing.T) {
		srv, g, cancel, _ := setup(t)
		cancel()
		waitFor(t, "the waiting stream's goroutines gone", func() bool {
			return srv.srv.budget.Waiting() == 0 && srv.srv.running.Load() == 3
		})
		if n := srv.srv.BytesInFlight(); n > 64<<10 {
			t.Errorf("%d B held, want batch 1's only", n)
		}
		g.open()
		waitFor(t, "the budget empty", func() bool { return srv.srv.BytesInFlight() == 0 })
	})
	t.Run("drain gives up", func(t *testing.T) {
		srv, g, _, waiter := setup(t)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		drained := make(chan error, 1)
		go func() { drained <- srv.srv.Drain(ctx) }()
		a, err := waiter.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if a.Seq != 2 || a.Code != ferryv1.Ack_CODE_RETRY || !contains(a.Message, "shutting down") || a.RetryAfterMillis != 123 {
			t.Errorf("ack %v, want RETRY for batch 2", a)
		}
		if srv.srv.BytesInFlight() == 0 {
			t.Error("batch 1 no longer held: the wait ended for another reason")
		}
		g.open()
		if err := <-drained; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Drain: %v, want a deadline error", err)
		}
	})
}

// TestSlowReaders: agents that send batches of 256 KiB as fast as they can
// on 8 streams of one connection and never read their acks.
//
// Phase 1, the sink is slow (100 ms a write): the attackers push many times
// MaxBytesInFlight, which holds: the bytes in flight never exceed the
// budget plus one batch, the heap stays bounded, and a well-behaved agent
// on another connection gets its batches acknowledged meanwhile.
//
// Phase 2, the sink answers each attacker batch at once with a RETRY of
// 4 KiB (an Elasticsearch rejection): the acks fill the attackers' receive
// windows (64 KiB, static) and the server's write quota (64 KiB) after ~32
// acks, and an ack send blocks. After AckTimeout the server ends the
// streams: their goroutines return and their batches are released, while
// the attackers' connection stays open and they still read nothing. (With
// 10-byte OK acks ~13000 acks would fit in those buffers before a send
// blocks: the long RETRY only makes the test get there fast.)
func TestSlowReaders(t *testing.T) {
	const (
		budgetBytes = 4 << 20
		attackers   = 8
		msgBytes    = 256 << 10
		ackTimeout  = time.Second
		attackNode  = "attacker"
		// The server's HTTP/2 receive windows, per stream and connection:
		// what a stream whose batch waits for the budget has buffered,
		// outside the budget. Static, unlike cmd/aggregator's today (see
		// aggregatorOptions): grown by BDP, they reach up to 16 MiB a
		// stream, and this test measured 3 to 18 MiB in gRPC's frame
		// buffers for its 8 streams, run to run.
		window = 256 << 10
	)
	var phase atomic.Int32
	phase.Store(1)
	rejection := "elasticsearch: es_rejected_execution_exception: " + strings.Repeat("rejected execution of coordinating operation; ", 90)
	sink := funcSink(func(ctx context.Context, b *event.Batch) (sinks.Result, error) {
		if b.Node != attackNode {
			return okSink(ctx, b)
		}
		if phase.Load() == 2 {
			return sinks.Result{}, errors.New(rejection)
		}
		select {
		case <-time.After(100 * time.Millisecond):
			return okSink(ctx, b)
		case <-ctx.Done():
			return sinks.Result{}, ctx.Err()
		}
	})
	// 16 batches in flight per stream: 8 streams could hold 32 MiB without
	// the shared budget.
	srv := startHostileServer(t, sink, ServerConfig{MaxBytesInFlight: budgetBytes, AckTimeout: ackTimeout, MaxBatchesInFlight: 16}, 1<<20,
		grpc.InitialWindowSize(window), grpc.InitialConnWindowSize(window))

	// Small batches: its builders (1 MiB each by default) would weigh in
	// the heap measured.
	mk := newChunkMaker(t)
	good := startClient(t, srv.addr, mk, ClientConfig{BatchMaxEvents: 1, BatchMaxBytes: 4 << 10, BatchTimeout: time.Hour, MaxInflight: 4}, 16)
	chunks := mk.seqChunks(testFile("good"), 12, 1)
	good.send(chunks[:2]...)
	waitFor(t, "the good agent connected and acked", func() bool { return good.com.count() == 2 })

	// Each attacker sends one batch, encoded once, again and again: the
	// heap of the process is then the server's, not the attackers'
	// encoding buffers.
	attack := validBatch(1, 1)
	attack.Node = attackNode
	attack.Events[0].Message = bytes.Repeat([]byte("x"), msgBytes)
	batchSize := batchBytes(attack)
	encoded, err := proto.Marshal(attack)
	if err != nil {
		t.Fatal(err)
	}
	attack = nil

	baseHeap := heapInuse()
	baseGoroutines := runtime.NumGoroutine()
	baseStream := srv.srv.running.Load()

	// The attack: one connection, whose receive windows are not grown by
	// BDP, so that the acks it does not read block the server's sends
	// predictably.
	conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	var (
		pushed  atomic.Int64
		sending sync.WaitGroup
		streams []grpc.ClientStream
	)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close(); sending.Wait() })
	for range attackers {
		st, err := conn.NewStream(ctx, &ferryv1.Ingest_ServiceDesc.Streams[0], ferryv1.Ingest_Stream_FullMethodName, grpc.ForceCodecV2(preEncoded{}))
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
		sending.Add(1)
		go func() {
			defer sending.Done()
			for st.SendMsg(encoded) == nil {
				pushed.Add(int64(len(encoded)))
			}
		}()
	}

	// Sample while the attack runs.
	var maxInFlight atomic.Int64
	var maxHeap atomic.Uint64
	var maxGoroutines atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var lastGC time.Time
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			if n := srv.srv.BytesInFlight(); n > maxInFlight.Load() {
				maxInFlight.Store(n)
			}
			if time.Since(lastGC) >= 50*time.Millisecond {
				if h := heapInuse(); h > maxHeap.Load() {
					maxHeap.Store(h)
				}
				if n := int64(runtime.NumGoroutine()); n > maxGoroutines.Load() {
					maxGoroutines.Store(n)
				}
				lastGC = time.Now()
			}
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			close(stopSampling)
			<-sampled
			stopped = true
		}
	}
	defer stop()

	// Phase 1.
	start := time.Now()
	waitFor(t, "the budget exhausted", func() bool {
		return srv.srv.budget.Peak() > budgetBytes-batchSize && srv.srv.BudgetWaits.Load() > 0
	})
	good.send(chunks[2:]...)
	waitFor(t, "the good agent's batches acknowledged during the attack", func() bool { return good.com.count() == len(chunks) })
	goodDone := time.Since(start)
	good.com.check(t)
	waitFor(t, "the attackers pushing 10 times the budget", func() bool { return pushed.Load() >= 10*budgetBytes })
	stop()
	if n := srv.srv.AckTimeouts.Load(); n != 0 {
		t.Fatalf("%d attack streams ended during phase 1", n)
	}
	phase1 := time.Since(start)

	// (i) The budget holds, at most one batch over it (none here, the
	// batches being smaller than the budget); and it was exhausted.
	if m, p := maxInFlight.Load(), srv.srv.budget.Peak(); m > budgetBytes+batchSize || p > budgetBytes+batchSize {
		t.Errorf("bytes in flight: sampled max %d, peak %d; budget %d + one batch %d", m, p, budgetBytes, batchSize)
	}
	// (ii) The heap holds the budget (batches estimated at their in-memory
	// size), the batch each attack stream has received and waits to admit
	// (8 x 256 KiB), the unread data of the server's receive windows (8 x
	// 256 KiB), and gRPC's buffer pools. 16 MiB over the budget leave room
	// for those, not for the 32 MiB the streams' slots would hold without
	// the budget.
	growth := int64(maxHeap.Load()) - int64(baseHeap)
	t.Logf("phase 1 (%v): pushed %d MiB (%dx the budget); bytes in flight max %d KiB (sampled), %d KiB (peak), budget %d KiB, batch %d KiB; heap %.1f MiB -> max %.1f MiB (growth %.1f MiB); %d budget waits; good agent's batches acked %v after the start; goroutines %d -> max %d",
		phase1.Round(time.Millisecond), pushed.Load()>>20, pushed.Load()/budgetBytes, maxInFlight.Load()>>10, srv.srv.budget.Peak()>>10, budgetBytes>>10, batchSize>>10,
		float64(baseHeap)/(1<<20), float64(maxHeap.Load())/(1<<20), float64(growth)/(1<<20), srv.srv.BudgetWaits.Load(), goodDone.Round(time.Millisecond), baseGoroutines, maxGoroutines.Load())
	if limit := int64(budgetBytes + 16<<20); growth > limit {
		t.Errorf("heap grew by %d MiB during the attack, want less than %d MiB", growth>>20, limit>>20)
	}

	// Phase 2.
	phase.Store(2)
	start = time.Now()
	waitFor(t, "the attack streams ended by the server", func() bool { return srv.srv.AckTimeouts.Load() == attackers })
	// (iv) Their goroutines are gone and their batches released, while the
	// attackers' connection is open and they read nothing.
	waitFor(t, "the attack streams' goroutines gone", func() bool { return srv.srv.running.Load() <= baseStream })
	waitFor(t, "the budget empty", func() bool { return srv.srv.BytesInFlight() == 0 && srv.srv.budget.Waiting() == 0 })
	phase2 := time.Since(start)
	after := runtime.NumGoroutine()
	heapAfter := heapInuse()
	// Left: the attackers' goroutines blocked in Send (the server's
	// trailers wait behind the acks they do not read) and gRPC's watcher
	// of each of their streams, and the goroutines of their connection on
	// both sides (reader, writer, keepalive, callback serializers).
	if after > baseGoroutines+2*attackers+10 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Logf("%s", buf)
		t.Errorf("%d goroutines, %d before the attack", after, baseGoroutines)
	}
	if n := strings.Count(srv.logs.String(), "agent does not read acknowledgements"); n != attackers {
		t.Errorf("%d warnings about agents not reading, want one per stream (%d)", n, attackers)
	}
	t.Logf("phase 2 (%v): %d attack streams ended; goroutines %d (%d before the attack); heap %.1f MiB",
		phase2.Round(time.Millisecond), srv.srv.AckTimeouts.Load(), after, baseGoroutines, float64(heapAfter)/(1<<20))

	// Once they read, the attackers learn why: the acks, then the status.
	for _, st := range streams {
		var err error
		for err == nil {
			err = st.RecvMsg(new(ferryv1.Ack))
		}
		if status.Code(err) != codes.DeadlineExceeded || !contains(err.Error(), "agent does not read acknowledgements") {
			t.Errorf("attack stream ended with %v, want DeadlineExceeded: agent does not read acknowledgements", err)
		}
	}
	sending.Wait()

	// The good agent is still served.
	more := mk.seqChunks(testFile("good-after"), 2, 1)
	good.send(more...)
	waitFor(t, "the good agent served after the attack", func() bool { return good.com.count() == len(chunks)+len(more) })
	good.com.check(t)
}

// TestAckTimeoutOnRejections: an agent that sends only malformed batches
// and never reads: the PERMANENT acks are sent by the receiving goroutine
// itself, which blocks in Send; the stream still ends after AckTimeout.
func TestAckTimeoutOnRejections(t *testing.T) {
	srv := startHostileServer(t, funcSink(okSink), ServerConfig{AckTimeout: 300 * time.Millisecond}, 1<<20)
	conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := ferryv1.NewIngestClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan int)
	go func() {
		n := 0
		for seq := uint64(1); ; seq++ {
			b := validBatch(seq, 1)
			b.Node = "" // rejected
			if st.Send(b) != nil {
				break
			}
			n++
		}
		sent <- n
	}()
	t.Cleanup(func() { cancel(); conn.Close() })
	waitFor(t, "the stream ended by the server", func() bool { return srv.srv.AckTimeouts.Load() == 1 })
	waitFor(t, "its goroutines gone", func() bool { return srv.srv.running.Load() == 0 })
	// Reading now: the acks, then why the stream ended; the sender stops.
	acks := 0
	for err == nil {
		_, err = st.Recv()
		acks++
	}
	if status.Code(err) != codes.DeadlineExceeded || !contains(err.Error(), "agent does not read acknowledgements") {
		t.Errorf("stream ended with %v, want DeadlineExceeded: agent does not read acknowledgements", err)
	}
	n := <-sent
	t.Logf("%d malformed batches sent, %d acks read at the end", n, acks-1)
	if f := srv.srv.BatchesFailed.Load(); f < 1000 {
		t.Errorf("%d batches rejected: the acks should have filled the windows", f)
	}
}
