package transport

import (
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestStreamStats: the stats handler counts agents' ingest streams over
// real gRPC on loopback: two agents connected are two open streams; one
// that stops leaves one open; one whose stream is broken by a server
// restart counts again in the total once it has reopened.
func TestStreamStats(t *testing.T) {
	var ss StreamStats
	srv := startServer(t, &recSink{}, ServerConfig{}, grpc.StatsHandler(&ss))
	mk := newChunkMaker(t)
	cfg := ClientConfig{BatchTimeout: 10 * time.Millisecond, BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	a := startClient(t, srv.addr, mk, cfg, 4)
	b := startClient(t, srv.addr, mk, cfg, 4)
	waitFor(t, "two ingest streams open", func() bool {
		return ss.Open() == 2 && a.c.Connected() && b.c.Connected()
	})
	if got := ss.Total(); got != 2 {
		t.Fatalf("Total = %d with two agents connected once, want 2", got)
	}
	if err := b.stop(); err != nil {
		t.Fatalf("stop b: %v", err)
	}
	waitFor(t, "one ingest stream open after one agent stopped", func() bool { return ss.Open() == 1 })
	if got := ss.Total(); got != 2 {
		t.Fatalf("Total = %d after an agent stopped, want 2", got)
	}
	// A restart ends a's stream; it reopens one on the same handler.
	srv.restart(&recSink{})
	waitFor(t, "a's stream reopened", func() bool { return ss.Open() == 1 && ss.Total() == 3 && a.c.Connected() })
}

// TestStreamStatsRefused: streams an interceptor refuses (as bearer-token
// authentication does) count in Total but are not left open.
func TestStreamStatsRefused(t *testing.T) {
	var ss StreamStats
	refuse := func(any, grpc.ServerStream, *grpc.StreamServerInfo, grpc.StreamHandler) error {
		return status.Error(codes.Unauthenticated, "no token")
	}
	srv := startServer(t, &recSink{}, ServerConfig{}, grpc.StatsHandler(&ss), grpc.StreamInterceptor(refuse))
	cfg := ClientConfig{BatchTimeout: 10 * time.Millisecond, BackoffInitial: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	c := startClient(t, srv.addr, newChunkMaker(t), cfg, 4)
	waitFor(t, "three refused streams", func() bool { return ss.Total() >= 3 })
	if err := c.stop(); err != nil {
		t.Logf("client: %v", err)
	}
	waitFor(t, "no stream left open", func() bool { return ss.Open() == 0 })
}
