package transport

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// TestConnLimiter: a gRPC server behind LimitListener with max 5 and a
// handshake timeout of 600 ms, one agent stream open. Ten idle TCP
// connections: four fit and are closed after the handshake timeout, six
// are closed at once; the agent's stream goes on meanwhile, and a new
// stream can open once the idle connections are gone.
func TestConnLimiter(t *testing.T) {
	const (
		maxConns = 5
		idle     = 10
		timeout  = 600 * time.Millisecond
	)
	log, logs := newLogger(t, "server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := LimitListener(ln, ConnLimits{Max: maxConns, HandshakeTimeout: timeout}, log)
	gs := grpc.NewServer(lim.ServerOptions()...)
	ferryv1.RegisterIngestServer(gs, NewServer(&recSink{}, ServerConfig{}, log))
	done := make(chan struct{})
	go func() { _ = gs.Serve(lim); close(done) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	addr := ln.Addr().String()

	agent := dialRaw(t, addr)
	ship := func(r *rawStream, seq uint64) {
		t.Helper()
		if err := r.st.Send(validBatch(seq, 3)); err != nil {
			t.Fatalf("send batch %d: %v", seq, err)
		}
		if a := r.recvAcks(t, 1)[seq]; a == nil || a.Code != ferryv1.Ack_CODE_OK {
			t.Fatalf("batch %d: ack %v", seq, a)
		}
	}
	ship(agent, 1)
	if n := lim.Open(); n != 1 {
		t.Fatalf("open connections %d, want 1 (the agent's)", n)
	}

	// Idle connections, each with a reader that records when it ended.
	type ended struct {
		i     int
		after time.Duration
	}
	endc := make(chan ended, idle)
	start := time.Now()
	for i := range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			// Reset before the dial returned: refused at accept.
			endc <- ended{i, time.Since(start)}
			t.Logf("idle connection %d: %v", i, err)
			waitFor(t, "the refusal counted", func() bool { return lim.Open()+int64(lim.Refused.Load()) == int64(1+i+1) })
			continue
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			_, _ = io.Copy(io.Discard, c) // until closed by the server
			endc <- ended{i, time.Since(start)}
		}()
		// Accept in dial order: the first ones fit.
		waitFor(t, "the connection accepted or refused", func() bool {
			return lim.Open()+int64(lim.Refused.Load()) == int64(1+i+1)
		})
	}
	if got, want := lim.Refused.Load(), uint64(idle-(maxConns-1)); got != want {
		t.Fatalf("refused %d connections, want %d", got, want)
	}
	// The agent's stream is served while the limit is reached.
	ship(agent, 2)

	var early, late int
	for range idle {
		select {
		case e := <-endc:
			if e.after < timeout-50*time.Millisecond {
				early++
			} else {
				late++
			}
		case <-time.After(10 * timeout):
			t.Fatalf("idle connections not closed: %d early, %d after the handshake timeout", early, late)
		}
	}
	if early != idle-(maxConns-1) || late != maxConns-1 {
		t.Fatalf("%d connections closed at once and %d after the handshake timeout, want %d and %d",
			early, late, idle-(maxConns-1), maxConns-1)
	}
	waitFor(t, "the handshake timeouts counted", func() bool { return lim.HandshakeTimeouts.Load() == maxConns-1 })
	waitFor(t, "only the agent's connection open", func() bool { return lim.Open() == 1 })

	// The agent's connection outlived the handshake timeout; a new one fits.
	ship(agent, 3)
	ship(dialRaw(t, addr), 4)
	for _, want := range []string{"connection limit reached", "did not complete the TLS and HTTP/2 handshakes"} {
		if !contains(logs.String(), want) {
			t.Errorf("server log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestDefaultMaxConnections(t *testing.T) {
	for _, c := range []struct {
		fds  uint64
		want int
	}{
		{0, MinMaxConnections},
		{256, MinMaxConnections},
		{320, MinMaxConnections},
		{1024, 768},
		{20000, 19744},
		{1 << 20, 1<<20 - 256},
	} {
		if got := DefaultMaxConnections(c.fds); got != c.want {
			t.Errorf("DefaultMaxConnections(%d) = %d, want %d", c.fds, got, c.want)
		}
	}
}

// TestConnLimiterUserTimeout: the limiter sets TCP_USER_TIMEOUT, which
// gRPC cannot set through its wrapper.
func TestConnLimiterUserTimeout(t *testing.T) {
	log, _ := newLogger(t, "server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := LimitListener(ln, ConnLimits{Max: 2, TCPUserTimeout: 20 * time.Second}, log)
	defer lim.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := lim.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	raw, err := sc.(*limitedConn).Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if got != 20000 {
		t.Fatalf("TCP_USER_TIMEOUT = %d ms, want 20000", got)
	}
}
