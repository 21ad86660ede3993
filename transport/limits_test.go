package transport

import (
	"strings"
	"testing"

	"google.golang.org/grpc"
)

// TestBatchTooLargeForServer: a batch over the aggregator's maximum message
// size breaks the stream with ResourceExhausted; the client says which
// settings to fix, commits nothing and keeps the batch (it is not dropped);
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
	waitFor(t, "the client to log the refusal", func() bool {
		return strings.Contains(tc.logs.String(), "lower aggregator.batch_max_bytes")
	})
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
