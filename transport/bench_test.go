package transport

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/tail"
	"github.com/ferrylogs/ferry/sinks"
)

type discardSink struct{}

func (discardSink) Write(_ context.Context, b *event.Batch) (sinks.Result, error) {
	return sinks.Result{Delivered: len(b.Events)}, nil
}
func (discardSink) Close(context.Context) error { return nil }

// countCommitter signals when the commit of the last chunk arrives.
type countCommitter struct {
	n, want atomic.Int64
	done    chan struct{}
}

func (c *countCommitter) Commit(*tail.File, int64, bool) {
	if c.n.Add(1) == c.want.Load() {
		close(c.done)
	}
}

// BenchmarkShip measures events/s from chunks handed to a Client, over
// loopback gRPC, to a Server whose sink discards them, until every chunk is
// committed: batches of 2048 events of 120 bytes, chunks of 512 events (as
// tail makes them), the default window of 4 batches. One op is one event.
func BenchmarkShip(b *testing.B) {
	const (
		perChunk = 512
		msgLen   = 120
	)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := NewServer(discardSink{}, ServerConfig{}, log)
	ts := &testServer{t: b, srv: srv, opts: []grpc.ServerOption{grpc.MaxRecvMsgSize(16 << 20)}}
	ts.serve("127.0.0.1:0")
	defer ts.stop()

	// One arena and one set of records serve every chunk: the client only
	// reads them. The arena's capacity keeps Release from pooling it.
	arena := make([]byte, 0, 4<<20)
	recs := make([]tail.Rec, perChunk)
	for i := range recs {
		start := len(arena)
		line := fmt.Sprintf("2025-01-02T03:04:05.%06dZ INFO request handled method=GET path=/api/v1/items/%d status=200 duration_ms=12 ", i, i)
		for len(line) < msgLen {
			line += "x"
		}
		arena = append(arena, line[:msgLen]...)
		recs[i] = tail.Rec{Off: int64(i * (msgLen + 1)), MsgStart: uint32(start), MsgEnd: uint32(len(arena)), Time: int64(i), Stream: 1}
	}
	f := testFile("bench")
	chunks := (b.N + perChunk - 1) / perChunk
	permits := make(chan struct{}, 64)

	com := &countCommitter{done: make(chan struct{})}
	com.want.Store(int64(chunks))
	c, err := NewClient(ClientConfig{
		Address: ts.addr, Node: testNode, BatchMaxEvents: 2048,
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
	}, com, log)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	in := make(chan *tail.Chunk, 64)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx, in) }()

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		left := b.N
		for i := range chunks {
			n := min(perChunk, left)
			left -= n
			permits <- struct{}{}
			ch := tail.NewChunk(f, func() { <-permits })
			ch.Arena, ch.Recs, ch.End = arena, recs[:n], int64((i+1)*perChunk*(msgLen+1))
			in <- ch
		}
	}()
	select {
	case <-com.done:
	case <-time.After(10 * time.Minute):
		b.Fatal("not every chunk committed")
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	cancel()
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
}
