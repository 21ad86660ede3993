package transport

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats"
)

// ConnLimits bound the connections of the aggregator's gRPC listener.
type ConnLimits struct {
	// Max is the most connections open at once, counted from their accept
	// to their close. A connection accepted beyond it is closed at once
	// (reset) and counted in Refused; connections already open are not
	// touched, so agents that are connected keep shipping. Zero means
	// DefaultMaxConnections(1024).
	Max int
	// HandshakeTimeout closes a connection that has not completed its TLS
	// and HTTP/2 handshakes (gRPC's connection preface and first settings)
	// this long after its accept, such as a TCP connection that sends
	// nothing; counted in HandshakeTimeouts. Zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// TCPUserTimeout, if set, is set as TCP_USER_TIMEOUT on every accepted
	// connection: gRPC sets its keepalive timeout there on a *net.TCPConn
	// only, which the limiter's wrapper hides from it.
	TCPUserTimeout time.Duration
	// TLS says that the connections carry TLS: gRPC then reads through
	// crypto/tls, which keeps the record it decrypted itself, so
	// ServerOptions gives gRPC no read buffer of its own (32 KiB per
	// connection for as long as it is open). Plaintext connections need
	// none either: they offer gRPC reads from a pool (ReadOnReady).
	TLS bool
}

// Defaults of ConnLimits.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	// ConnReserve is the part of the file descriptor limit that
	// DefaultMaxConnections keeps for everything but agents' connections:
	// the health and metrics server and its clients, sink files and
	// connections to Elasticsearch, the disk buffer's segments, logs.
	ConnReserve = 256
	// MinMaxConnections is the least DefaultMaxConnections returns.
	MinMaxConnections = 64
)

// DefaultMaxConnections returns the connection limit for a process whose
// soft limit of open files is fdLimit: fdLimit - ConnReserve, at least
// MinMaxConnections.
func DefaultMaxConnections(fdLimit uint64) int {
	if fdLimit <= ConnReserve+MinMaxConnections {
		return MinMaxConnections
	}
	return int(min(fdLimit-ConnReserve, 1<<30))
}

// ConnLimiter is a net.Listener that enforces ConnLimits. Serve gRPC with
// it and with ServerOptions, which tell it when a connection completed its
// handshakes: without them every connection would be closed after
// HandshakeTimeout.
type ConnLimiter struct {
	net.Listener
	cfg  ConnLimits
	log  *slog.Logger
	open atomic.Int64

	mu      sync.Mutex
	pending map[string]*limitedConn // by remote address, until established

	// Refused counts connections closed at accept because Max were open.
	Refused atomic.Uint64
	// HandshakeTimeouts counts connections closed because they did not
	// complete their handshakes within HandshakeTimeout.
	HandshakeTimeouts atomic.Uint64

	refusedLog, timeoutLog everyLog
}

// LimitListener returns ln limited by cfg; log receives the refusals and
// handshake timeouts, at most once a minute each with their count.
func LimitListener(ln net.Listener, cfg ConnLimits, log *slog.Logger) *ConnLimiter {
	if cfg.Max <= 0 {
		cfg.Max = DefaultMaxConnections(1024)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	return &ConnLimiter{
		Listener:   ln,
		cfg:        cfg,
		log:        log,
		pending:    map[string]*limitedConn{},
		refusedLog: everyLog{every: time.Minute},
		timeoutLog: everyLog{every: time.Minute},
	}
}

// Open returns the number of connections open.
func (l *ConnLimiter) Open() int64 { return l.open.Load() }

// Max returns the connection limit in force.
func (l *ConnLimiter) Max() int { return l.cfg.Max }

// ServerOptions are the gRPC server options that go with the limiter: a
// stats handler that marks connections as established, and gRPC's own
// connection timeout, a little above HandshakeTimeout, as a second line;
// with TLS, no read buffer of gRPC's own (see ConnLimits.TLS).
func (l *ConnLimiter) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.StatsHandler(connStats{l}),
		grpc.ConnectionTimeout(l.cfg.HandshakeTimeout + time.Second),
	}
	if l.cfg.TLS {
		opts = append(opts, grpc.ReadBufferSize(0))
	}
	return opts
}

// Accept returns the next connection within the limit; connections beyond
// it are closed and counted here and never returned.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > int64(l.cfg.Max) {
			l.open.Add(-1)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset: no FIN_WAIT or TIME_WAIT left here
			}
			c.Close()
			l.Refused.Add(1)
			if ok, n := l.refusedLog.note(); ok {
				l.log.Warn("connection limit reached: closing new connections at once; connections already open are served",
					"max_connections", l.cfg.Max, "refused", n, "last_peer", c.RemoteAddr().String())
			}
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok && l.cfg.TCPUserTimeout > 0 {
			setUserTimeout(tc, l.cfg.TCPUserTimeout)
		}
		lc := &limitedConn{Conn: c, l: l, key: c.RemoteAddr().String()}
		if tc, ok := c.(*net.TCPConn); ok {
			if raw, err := tc.SyscallConn(); err == nil {
				lc.raw = raw
				lc.doRead = lc.readFD
			}
		}
		l.mu.Lock()
		l.pending[lc.key] = lc
		l.mu.Unlock()
		lc.timer.Store(time.AfterFunc(l.cfg.HandshakeTimeout, lc.expire))
		return lc, nil
	}
}

// established marks the connection from addr as past its handshakes.
func (l *ConnLimiter) established(addr net.Addr) {
	if addr == nil {
		return
	}
	l.mu.Lock()
	lc := l.pending[addr.String()]
	delete(l.pending, addr.String())
	l.mu.Unlock()
	if lc != nil && lc.state.CompareAndSwap(connPending, connEstablished) {
		lc.stopTimer()
	}
}

func (l *ConnLimiter) forget(lc *limitedConn) {
	l.mu.Lock()
	if l.pending[lc.key] == lc {
		delete(l.pending, lc.key)
	}
	l.mu.Unlock()
}

const (
	connPending int32 = iota
	connEstablished
	connExpired
	connClosed // closed before established or expired
)

// limitedConn counts as open until its first Close.
type limitedConn struct {
	net.Conn
	l     *ConnLimiter
	key   string
	timer atomic.Pointer[time.Timer] // the handshake timeout
	state atomic.Int32
	once  sync.Once

	// raw is the TCP connection's, for ReadOnReady; nil for other
	// connections. The read's arguments and results live here so that a
	// read allocates nothing (gRPC reads from one goroutine at a time).
	raw    syscall.RawConn
	doRead func(fd uintptr) bool
	rdSize int
	rdPool mem.BufferPool
	rdBuf  *[]byte
	rdN    int
	rdErr  error
}

// ReadOnReady lets gRPC read without a buffer pinned to the connection
// while it is idle: it waits until the socket is readable, then takes a
// buffer of size bytes from pool and reads into it (the optional
// interface of gRPC's internal/transport/readyreader, which gRPC uses on
// a bare *net.TCPConn only and so not on this wrapper). Without it gRPC
// keeps a 32 KiB bufio.Reader per connection for its whole life: the
// largest part of an idle agent's memory in the aggregator.
func (c *limitedConn) ReadOnReady(size int, pool mem.BufferPool) (*[]byte, int, error) {
	if c.raw == nil {
		buf := pool.Get(size)
		n, err := c.Conn.Read(*buf)
		if n == 0 {
			pool.Put(buf)
			return nil, 0, err
		}
		return buf, n, nil // an error comes again with the next read
	}
	c.rdSize, c.rdPool = size, pool
	err := c.raw.Read(c.doRead)
	buf, n, rerr := c.rdBuf, c.rdN, c.rdErr
	c.rdPool, c.rdBuf, c.rdN, c.rdErr = nil, nil, 0, nil
	if err != nil {
		if buf != nil {
			pool.Put(buf)
		}
		return nil, 0, err
	}
	if rerr != nil {
		return nil, 0, rerr
	}
	if n == 0 { // read(2) returns 0 at the end of the stream
		pool.Put(buf)
		return nil, 0, io.EOF
	}
	return buf, n, nil
}

// readFD is ReadOnReady's read, called by RawConn.Read when the socket is
// readable; false asks it to wait for readability again.
func (c *limitedConn) readFD(fd uintptr) bool {
	c.rdBuf = c.rdPool.Get(c.rdSize)
	for {
		c.rdN, c.rdErr = syscall.Read(int(fd), *c.rdBuf)
		if c.rdErr != syscall.EINTR {
			break
		}
	}
	if c.rdErr != nil {
		c.rdPool.Put(c.rdBuf)
		c.rdBuf, c.rdN = nil, 0
	}
	return c.rdErr != syscall.EAGAIN && c.rdErr != syscall.EWOULDBLOCK
}

func (c *limitedConn) stopTimer() {
	if t := c.timer.Load(); t != nil {
		t.Stop()
	}
}

func (c *limitedConn) expire() {
	if !c.state.CompareAndSwap(connPending, connExpired) {
		return
	}
	c.l.HandshakeTimeouts.Add(1)
	if ok, n := c.l.timeoutLog.note(); ok {
		c.l.log.Warn("closing connections that did not complete the TLS and HTTP/2 handshakes in time",
			"handshake_timeout", c.l.cfg.HandshakeTimeout, "closed", n, "last_peer", c.key)
	}
	c.Close()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.state.CompareAndSwap(connPending, connClosed)
		c.stopTimer()
		c.l.forget(c)
		c.l.open.Add(-1)
	})
	return err
}

// connStats is the grpc stats.Handler that learns when a connection is
// established: gRPC tags a connection once its handshakes are complete.
type connStats struct{ l *ConnLimiter }

func (s connStats) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	s.l.established(info.RemoteAddr)
	return ctx
}

func (connStats) HandleConn(context.Context, stats.ConnStats) {}

func (connStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (connStats) HandleRPC(context.Context, stats.RPCStats) {}

// everyLog decides which of a stream of like events to log: the first,
// then at most one per every, with the number of events it stands for.
type everyLog struct {
	every time.Duration

	mu     sync.Mutex
	logged time.Time
	n      int
}

func (e *everyLog) note() (bool, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	now := time.Now()
	if !e.logged.IsZero() && now.Sub(e.logged) < e.every {
		return false, 0
	}
	n := e.n
	e.logged, e.n = now, 0
	return true, n
}

// setUserTimeout sets TCP_USER_TIMEOUT on c; a failure leaves it unset
// (gRPC's keepalive pings still find a dead peer).
func setUserTimeout(c *net.TCPConn, d time.Duration) {
	if runtime.GOOS != "linux" {
		return
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d/time.Millisecond))
	})
}

// tcpUserTimeout is TCP_USER_TIMEOUT (Linux; linux/tcp.h).
const tcpUserTimeout = 0x12
