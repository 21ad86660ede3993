package tlsconf

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Status messages of streams ended because their credentials stopped
// passing.
const (
	MsgRevokedToken    = "bearer token revoked: no longer in the aggregator's tokens"
	MsgClientCertLapse = "client certificate no longer accepted"
)

// guard ends open streams whose credentials stop passing: when the files
// the credentials are checked against change (a token removed from the
// tokens file, a client CA replaced), it checks every open stream again,
// and when a stream's credential expires by itself (a client certificate's
// NotAfter), that stream. It runs one goroutine while streams are open, and
// none otherwise; it learns of changes from fsnotify on the files'
// directories and, as a fallback, by looking at the files every interval.
//
// A stream that no longer passes has its context cancelled with a gRPC
// status (Unauthenticated) as the cause: the handler must end the stream
// and return that cause (transport.Server does, after the acks of the
// batches it is writing).
type guard struct {
	what     string // "bearer token", "client certificate": for logs
	log      *slog.Logger
	interval time.Duration
	dirs     []string
	// look looks at the files (now, when force is set) and returns the
	// generation of the material: a new one means check every stream.
	look func(force bool) uint64

	mu      sync.Mutex
	streams map[*guarded]struct{}
	stop    chan struct{} // closed to stop the loop; nil while none runs

	// Ended counts the streams ended by the guard.
	ended atomic.Uint64
}

// guarded is an open stream and how to check it.
type guarded struct {
	peer, method string
	// check returns nil while the stream's credential passes at now, else
	// why not (a gRPC status).
	check   func(now time.Time) error
	expires time.Time // zero: never by itself
	cancel  context.CancelCauseFunc
}

func newGuard(what string, files []string, o Options, look func(bool) uint64) *guard {
	g := &guard{what: what, log: o.logger(), interval: o.checkInterval(), look: look, streams: map[*guarded]struct{}{}}
	if g.interval <= 0 {
		g.interval = 100 * time.Millisecond
	}
	seen := map[string]bool{}
	for _, f := range files {
		if d := filepath.Dir(f); !seen[d] {
			seen[d] = true
			g.dirs = append(g.dirs, d)
		}
	}
	return g
}

// serve runs handler on ss under the guard: check says whether the stream
// still passes, expires when it stops passing by itself.
func (g *guard) serve(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler,
	check func(time.Time) error, expires time.Time) error {
	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	gs := &guarded{peer: "unknown", method: info.FullMethod, check: check, expires: expires, cancel: cancel}
	if p, ok := peer.FromContext(ctx); ok {
		gs.peer = addrString(p.Addr)
	}
	g.add(gs)
	defer g.remove(gs)
	// Registered first, checked second: a change that the loop saw before
	// the registration is in the material checked here, one after it
	// makes the loop check this stream again.
	if err := check(time.Now()); err != nil {
		return err
	}
	return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

// ctxStream is a ServerStream with the guard's context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func (g *guard) add(gs *guarded) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.streams[gs] = struct{}{}
	if g.stop == nil {
		g.stop = make(chan struct{})
		go g.loop(g.stop)
	}
}

func (g *guard) remove(gs *guarded) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.streams, gs)
	if len(g.streams) == 0 && g.stop != nil {
		close(g.stop)
		g.stop = nil
	}
}

func (g *guard) loop(stop chan struct{}) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		g.log.Debug("cannot watch the "+g.what+" files; looking at them every interval", "interval", g.interval, "err", err)
	} else {
		defer w.Close()
		for _, d := range g.dirs {
			if err := w.Add(d); err != nil {
				g.log.Debug("cannot watch a directory; looking at its files every interval", "dir", d, "err", err)
			}
		}
		events, errs = w.Events, w.Errors
	}
	t := time.NewTicker(g.interval)
	defer t.Stop()
	gen := g.look(false)
	for {
		force := false
		select {
		case <-stop:
			return
		case <-events:
			force = true
		case <-errs:
			force = true
		case <-t.C:
		}
		next := g.look(force)
		g.recheck(time.Now(), next != gen)
		gen = next
	}
}

// recheck checks the streams whose credential expired by now, or every
// stream when all is set, and ends those that no longer pass.
func (g *guard) recheck(now time.Time, all bool) {
	var due []*guarded
	g.mu.Lock()
	for gs := range g.streams {
		if all || !gs.expires.IsZero() && !now.Before(gs.expires) {
			due = append(due, gs)
		}
	}
	g.mu.Unlock()
	for _, gs := range due {
		err := gs.check(now)
		if err == nil {
			continue
		}
		g.mu.Lock()
		_, open := g.streams[gs]
		delete(g.streams, gs) // remove, at the handler's return, stops the loop if need be
		g.mu.Unlock()
		if !open {
			continue
		}
		g.ended.Add(1)
		g.log.Warn("ending a stream: its "+g.what+" is no longer accepted", "peer", gs.peer, "method", gs.method, "reason", status.Convert(err).Message())
		gs.cancel(err)
	}
}

// accepts reports whether sum is the digest of an accepted token. Every
// accepted token is compared, in constant time.
func (t *Tokens) accepts(sum [sha256.Size]byte) bool {
	match := 0
	for _, s := range t.fixed {
		match |= subtle.ConstantTimeCompare(sum[:], s[:])
	}
	if t.file != nil {
		for _, s := range t.file.get() {
			match |= subtle.ConstantTimeCompare(sum[:], s[:])
		}
	}
	return match == 1
}

// StreamsEnded returns the number of streams ended because their token was
// removed from the tokens file.
func (t *Tokens) StreamsEnded() uint64 {
	if t.guard == nil {
		return 0
	}
	return t.guard.ended.Load()
}

// StreamInterceptor checks the client certificate of every stream (mutual
// TLS) against the client CAs as they are now, and again whenever the
// client CA file changes and when the certificate expires: a stream whose
// certificate no longer verifies has its context cancelled with an
// Unauthenticated status as the cause (see transport.Server), and the
// aggregator logs it. Without mutual TLS it passes streams through.
func (s *Server) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if s.guard == nil {
			return handler(srv, ss)
		}
		p, _ := peer.FromContext(ss.Context())
		var chain []*x509.Certificate
		if p != nil {
			if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
				chain = ti.State.PeerCertificates
			}
		}
		if len(chain) == 0 {
			return status.Error(codes.Unauthenticated, "mutual TLS: no client certificate")
		}
		inter := x509.NewCertPool()
		expires := chain[0].NotAfter
		for _, c := range chain[1:] {
			inter.AddCert(c)
			if c.NotAfter.Before(expires) {
				expires = c.NotAfter
			}
		}
		check := func(now time.Time) error {
			_, err := chain[0].Verify(x509.VerifyOptions{
				Roots:         s.cas.get(),
				Intermediates: inter,
				CurrentTime:   now,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			})
			if err != nil {
				return status.Errorf(codes.Unauthenticated, "%s: %v", MsgClientCertLapse, err)
			}
			return nil
		}
		// Expired at NotAfter: the next look after it ends the stream.
		return s.guard.serve(srv, ss, info, handler, check, expires.Add(time.Nanosecond))
	}
}

// StreamsEnded returns the number of streams ended because their client
// certificate stopped verifying.
func (s *Server) StreamsEnded() uint64 {
	if s.guard == nil {
		return 0
	}
	return s.guard.ended.Load()
}
