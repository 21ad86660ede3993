package transport

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/ferrylogs/ferry/pipeline/parse"
	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// wireStats records, on the server, the compression of each stream and the
// sizes of the batches received.
type wireStats struct {
	mu          sync.Mutex
	compression []string
	length      int // uncompressed
	wire        int // on the wire
}

func (w *wireStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (w *wireStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (w *wireStats) HandleConn(context.Context, stats.ConnStats) {}
func (w *wireStats) HandleRPC(_ context.Context, s stats.RPCStats) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch s := s.(type) {
	case *stats.InHeader:
		w.compression = append(w.compression, s.Compression)
	case *stats.InPayload:
		w.length += s.Length
		w.wire += s.WireLength
	}
}

// TestCompression ships the same events with and without gzip; the server
// decodes both, and gzip makes them much smaller on the wire.
func TestCompression(t *testing.T) {
	for _, tt := range []struct{ compression, header string }{{"none", ""}, {"gzip", "gzip"}} {
		t.Run(tt.compression, func(t *testing.T) {
			mk := newChunkMaker(t)
			ws := &wireStats{}
			sink := &recSink{}
			srv := startServer(t, sink, ServerConfig{}, grpc.StatsHandler(ws))
			tc := startClient(t, srv.addr, mk, ClientConfig{Compression: tt.compression, BatchMaxEvents: 50, BatchTimeout: time.Hour}, 1)
			msgs := make([]string, 50)
			for i := range msgs {
				msgs[i] = strings.Repeat("GET /api/v1/items 200 ", 10)
			}
			f := testFile("gz")
			tc.send(mk.chunk(f, 0, msgs...))
			waitFor(t, "the commit", func() bool { return tc.com.count() == 1 })
			tc.com.check(t)
			w := sink.snapshot()
			if len(w) != 1 || len(w[0].events) != 50 {
				t.Fatalf("sink writes %+v", w)
			}
			for i, e := range w[0].events {
				if string(e.Message) != msgs[i] {
					t.Errorf("event %d: message %q", i, e.Message)
				}
			}
			ws.mu.Lock()
			defer ws.mu.Unlock()
			if len(ws.compression) != 1 || ws.compression[0] != tt.header {
				t.Errorf("stream compression %q, want %q", ws.compression, tt.header)
			}
			if tt.header == "gzip" && ws.wire*4 > ws.length {
				t.Errorf("gzip: %d bytes on the wire for %d", ws.wire, ws.length)
			}
			if tt.header == "" && ws.wire < ws.length {
				t.Errorf("no compression: %d bytes on the wire for %d", ws.wire, ws.length)
			}
		})
	}
}

// TestOversizeMessage: a batch larger than the server's MaxRecvMsgSize ends
// its stream with ResourceExhausted; other streams, and new ones, are
// served.
func TestOversizeMessage(t *testing.T) {
	mk := newChunkMaker(t)
	sink := &recSink{}
	srv := startServer(t, sink, ServerConfig{}, grpc.MaxRecvMsgSize(64<<10))
	// A well-behaved agent keeps shipping throughout.
	tc := startClient(t, srv.addr, mk, ClientConfig{BatchMaxEvents: 1, BatchTimeout: time.Hour}, 4)
	f := testFile("ok")
	chunks := mk.seqChunks(f, 4, 1)
	tc.send(chunks[:2]...)

	other := dialRaw(t, srv.addr)
	hostile := dialRaw(t, srv.addr)
	big := validBatch(1, 1)
	big.Events[0].Message = make([]byte, 100<<10)
	_ = hostile.st.Send(big) // may fail once the server has reset the stream
	_, err := hostile.st.Recv()
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversize batch: %v, want ResourceExhausted", err)
	}

	if err := other.st.Send(validBatch(2, 3)); err != nil {
		t.Fatal(err)
	}
	if a := other.recvAcks(t, 1)[2]; a == nil || a.Code != ferryv1.Ack_CODE_OK {
		t.Errorf("other stream: ack %v, want OK", a)
	}
	again := dialRaw(t, srv.addr)
	if err := again.st.Send(validBatch(3, 3)); err != nil {
		t.Fatal(err)
	}
	if a := again.recvAcks(t, 1)[3]; a == nil || a.Code != ferryv1.Ack_CODE_OK {
		t.Errorf("new stream: ack %v, want OK", a)
	}
	tc.send(chunks[2:]...)
	waitFor(t, "the agent's chunks committed", func() bool { return tc.com.count() == 4 })
	tc.com.check(t)
}

// TestManyTinyEvents: 100k tiny events, in one raw batch and through the
// Client from a real file (one chunk holds them all: the client splits it
// into batches of at most BatchMaxEvents).
func TestManyTinyEvents(t *testing.T) {
	const n = 100_000
	t.Run("raw batch", func(t *testing.T) {
		sink := &recSink{}
		srv := startServer(t, sink, ServerConfig{}, grpc.MaxRecvMsgSize(64<<20))
		raw := dialRaw(t, srv.addr)
		b := validBatch(1, n)
		for _, e := range b.Events {
			e.Message = e.Message[:1]
		}
		if err := raw.st.Send(b); err != nil {
			t.Fatal(err)
		}
		if a := raw.recvAcks(t, 1)[1]; a == nil || a.Code != ferryv1.Ack_CODE_OK {
			t.Fatalf("ack %v, want OK", a)
		}
		if w := sink.snapshot(); len(w) != 1 || len(w[0].events) != n {
			t.Fatalf("sink got %d writes", len(w))
		}
	})
	t.Run("client from a file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "tiny.log")
		if err := os.WriteFile(path, []byte(strings.Repeat("x\n", n)), 0o644); err != nil {
			t.Fatal(err)
		}
		path, _ = filepath.EvalSymlinks(path)
		sink := &recSink{}
		srv := startServer(t, sink, ServerConfig{})
		mgr, store := runManager(t, []tail.Input{{Name: "tiny", Paths: []string{filepath.Join(dir, "*.log")}, Format: parse.FormatPlain,
			PollInterval: 10 * time.Millisecond, GlobInterval: 10 * time.Millisecond}})
		const maxEvents = 2048
		tc := startClientFrom(t, srv.addr, nil, ClientConfig{BatchMaxEvents: maxEvents, BatchTimeout: 20 * time.Millisecond}, mgr.Chunks(), mgr)
		waitFor(t, "the position at the end of the file", func() bool {
			for _, e := range store.All() {
				if e.Path == path {
					return e.Offset == 2*n
				}
			}
			return false
		})
		tc.com.check(t)
		ids := map[string]bool{}
		for _, w := range sink.snapshot() {
			if len(w.events) > maxEvents {
				t.Errorf("batch %d holds %d events", w.seq, len(w.events))
			}
			for _, e := range w.events {
				ids[string(e.Id)] = true
			}
		}
		if len(ids) != n {
			t.Errorf("%d distinct events in the sink, want %d", len(ids), n)
		}
	})
}
