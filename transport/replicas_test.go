package transport

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/transport/tlsconf"
)

// TestReplicasFailover: a client given two aggregator addresses ships to
// one; when that one is killed, the stream reopens on the other, which gets
// the unacknowledged batches again and everything after; every chunk is
// committed once, in order.
func TestReplicasFailover(t *testing.T) {
	mk := newChunkMaker(t)
	a, b := startServer(t, &recSink{}, ServerConfig{}), startServer(t, &recSink{}, ServerConfig{})
	cfg := fastRetry
	cfg.BatchMaxEvents, cfg.MaxInflight, cfg.ShutdownTimeout = 2, 2, 5*time.Second
	cfg.Addresses = []string{a.addr, b.addr}
	tc := startClient(t, "", mk, cfg, 64)
	f := testFile("replicas")
	chunks := mk.seqChunks(f, 20, 2)
	tc.send(chunks[:10]...)
	waitFor(t, "the first 10 chunks committed", func() bool { return tc.com.count() == 10 })

	first, other := a, b
	if b.sink.count() > 0 {
		first, other = b, a
	}
	if first.sink.count() == 0 || other.sink.count() != 0 {
		t.Fatalf("batches before the kill: %d and %d, want all on one replica", a.sink.count(), b.sink.count())
	}
	first.stop()
	tc.send(chunks[10:]...)
	waitFor(t, "every chunk committed", func() bool { return tc.com.count() == 20 })
	tc.com.check(t)
	if other.sink.count() == 0 {
		t.Fatal("the surviving replica got no batch")
	}
	if r := tc.c.Counters()["ferry_agent_reconnects_total"]; r < 1 {
		t.Errorf("reconnects %d, want at least 1", r)
	}
	t.Logf("first replica: %d batches, survivor: %d batches", first.sink.count(), other.sink.count())
}

// TestReplicasTLS: with a list of addresses each replica's certificate is
// checked against the host of its own address (there is no single dial
// target name to check it against).
func TestReplicasTLS(t *testing.T) {
	p := newPKI(t)
	a, b := startTLSServer(t, p, "", nil), startTLSServer(t, p, "", nil)
	mk := newChunkMaker(t)
	dial, _ := tlsDial(t, tlsconf.ClientFiles{CAFile: p.caFile}, nil)
	cfg := fastRetry
	cfg.Addresses = []string{"localhost:" + port(a.addr), "127.0.0.1:" + port(b.addr)}
	tc := startClient(t, "", mk, cfg, 4, dial...)
	shipOne(t, tc, mk, "one")
	first := a
	if b.sink.count() > 0 {
		first = b
	}
	first.stop()
	for i := range 3 {
		shipOne(t, tc, mk, fmt.Sprintf("after-%d", i))
	}
	if a.sink.count() == 0 || b.sink.count() == 0 {
		t.Fatalf("batches: %d and %d, want both replicas used", a.sink.count(), b.sink.count())
	}
}

func TestStaticBuilderRejectsBadAddress(t *testing.T) {
	if _, err := NewClient(ClientConfig{Addresses: []string{"127.0.0.1:7070", "no-port"}}, nil, nil); err == nil {
		t.Fatal("no error for an address without a port")
	}
}

// TestUnhealthyReplicaSendsAgentsAway: once a replica's Health fails (a
// failed disk buffer), the agent's stream there ends with Unavailable and
// its batches go to the healthy replica; nothing is acknowledged by the
// unhealthy one after that.
func TestUnhealthyReplicaSendsAgentsAway(t *testing.T) {
	mk := newChunkMaker(t)
	var sick [2]atomic.Bool
	health := func(i int) func() error {
		return func() error {
			if sick[i].Load() {
				return errors.New("buffer es: wal: failed: fsync: input/output error")
			}
			return nil
		}
	}
	srvs := []*testServer{
		startServer(t, &recSink{}, ServerConfig{Health: health(0)}),
		startServer(t, &recSink{}, ServerConfig{Health: health(1)}),
	}
	cfg := fastRetry
	cfg.BatchMaxEvents, cfg.ShutdownTimeout = 2, 5*time.Second
	cfg.Addresses = []string{srvs[0].addr, srvs[1].addr}
	tc := startClient(t, "", mk, cfg, 64)
	f := testFile("sick")
	chunks := mk.seqChunks(f, 20, 2)
	tc.send(chunks[:5]...)
	waitFor(t, "5 chunks committed", func() bool { return tc.com.count() == 5 })
	first := 0
	if srvs[1].sink.count() > 0 {
		first = 1
	}
	sick[first].Store(true)
	before := srvs[first].sink.count()
	tc.send(chunks[5:]...)
	waitFor(t, "every chunk committed", func() bool { return tc.com.count() == 20 })
	tc.com.check(t)
	if n := srvs[first].sink.count(); n != before {
		t.Errorf("the unhealthy replica took %d more batches", n-before)
	}
	if n := srvs[first].srv.NotReadyStreams.Load(); n < 1 {
		t.Errorf("NotReadyStreams %d, want at least 1", n)
	}
	if !strings.Contains(tc.logs.String(), "aggregator not ready: buffer es") {
		t.Error("the agent's log does not say why the stream ended")
	}
}
