package transport

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/sinks"
	"google.golang.org/grpc"
)

// TestBatchTooLargeForServer: a batch over the aggregator's maximum message
// size breaks the stream with ResourceExhausted; the client says which
// settings to fix (for a line too long: the aggregator's limit or the
// input's max_line_bytes, not batch_max_bytes), commits nothing and keeps the batch (it is not dropped);
// a batch that fits, sent after the configuration is fixed (here: the
// server restarted with a larger limit), is delivered with it.
func TestBatchTooLargeForServer(t *testing.T) {
	mk := newChunkMaker(t)
	srv := startServer(t, &recSink{}, ServerConfig{}, grpc.MaxRecvMsgSize(64<<10))
	cfg := fastRetry
	cfg.ShutdownTimeout = 5e9
	tc := startClient(t, srv.addr, mk, cfg, 4)
	f := testFile("big")
	tc.send(mk.chunk(f, 0, strings.Repeat("x", 100<<10)))
	// The server announces no limit here: the client learns it from
	// gRPC's error.
	refusal := "a line of input containers is larger than the aggregator accepts"
	waitFor(t, "the client to log the refusal", func() bool { return tc.logs.Count(refusal) > 0 })
	if line := tc.logs.Lines(refusal)[0]; !strings.Contains(line, "aggregator_max_recv_message_bytes=65536") ||
		!strings.Contains(line, "raise max_recv_message_bytes on the aggregator, or lower max_line_bytes of input containers") {
		t.Fatalf("refusal does not name the limit and the fix: %s", line)
	}
	if n := tc.com.count(); n != 0 {
		t.Fatalf("%d commits of a batch the server refused", n)
	}
	if n := srv.sink.count(); n != 0 {
		t.Fatalf("%d sink writes of a refused batch", n)
	}
	srv.opts = nil // the operator raises the limit
	srv.restart(&recSink{})
	waitFor(t, "the batch to be delivered after the fix", func() bool { return tc.com.count() == 1 })
	tc.com.check(t)
}

// TestRefusedEventsAreAcked: events a sink refuses for good (not retryable,
// not dead-lettered) are dropped and counted, and their batch is
// acknowledged, so the agent goes on; events a sink may take later keep the
// batch unacknowledged (retry).
func TestRefusedEventsAreAcked(t *testing.T) {
	mk := newChunkMaker(t)
	var retryable atomic.Bool
	sink := &recSink{hook: func(_ context.Context, b *event.Batch, _ int) (sinks.Result, error) {
		return sinks.Result{Delivered: len(b.Events) - 1, Failed: []sinks.ItemError{
			{Index: 0, Retryable: retryable.Load(), Err: errors.New("document too large")},
		}}, nil
	}}
	srv := startServer(t, sink, ServerConfig{})
	tc := startClient(t, srv.addr, mk, fastRetry, 4)
	shipOne(t, tc, mk, "refused")
	if n := srv.srv.EventsDropped.Load(); n != 1 {
		t.Fatalf("EventsDropped %d, want 1", n)
	}
	retryable.Store(true)
	tc.send(mk.chunk(testFile("later"), 0, "a", "b"))
	waitFor(t, "a retry of the batch", func() bool { return srv.srv.BatchesRetry.Load() >= 2 })
	if n := tc.com.count(); n != 1 {
		t.Fatalf("%d commits, want 1: a batch with retryable failures must not be acknowledged", n)
	}
	retryable.Store(false)
	waitFor(t, "the batch acknowledged once its failure is final", func() bool { return tc.com.count() == 2 })
	tc.com.check(t)
}

func TestAckMessage(t *testing.T) {
	long := strings.Repeat("é", maxAckMessage) // 2 bytes each
	cases := []struct {
		name, in string
		wantLen  int
	}{
		{"short", "mapping conflict", len("mapping conflict")},
		{"exact", strings.Repeat("x", maxAckMessage), maxAckMessage},
		{"long ascii", strings.Repeat("x", 10*maxAckMessage), maxAckMessage + len("…")},
		{"long, cut at a character", long, maxAckMessage + len("…")},
	}
	for _, c := range cases {
		got := ackMessage(c.in)
		if len(got) != c.wantLen || !utf8.ValidString(got) {
			t.Errorf("%s: %d bytes (valid UTF-8 %v), want %d", c.name, len(got), utf8.ValidString(got), c.wantLen)
		}
	}
}
