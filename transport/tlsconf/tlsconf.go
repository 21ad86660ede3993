// Package tlsconf builds TLS configurations for Ferry's gRPC link from files,
// and reloads certificates, CAs and tokens when the files change on disk.
//
// The aggregator serves with Server.Credentials (grpc.Creds) and checks
// bearer tokens with Tokens' interceptors; the agent dials with
// Client.Credentials (grpc.WithTransportCredentials) and sends its token
// with Bearer (grpc.WithPerRPCCredentials).
//
// Reloading: files are looked at when their material is used (a TLS
// handshake, an RPC), at most once per Options.CheckInterval, by a stat of
// each file (identity, size, modification time); only a change loads them
// again. So a renamed-over file, a swapped Kubernetes secret symlink and an
// in-place rewrite are all picked up, by the next connection; connections
// already open keep what they negotiated. A load that fails (a half-written
// file, a key that does not match its certificate yet) keeps the previous
// material and logs one warning for that state of the files; the next
// change is tried again.
//
// Revocation: streams already open are checked again when the files they
// were let in by change. Tokens.StreamInterceptor (with a tokens file) and
// Server.StreamInterceptor (with mutual TLS) run a goroutine while streams
// are open, which learns of changes by fsnotify on the files' directories
// and by a look every CheckInterval, and ends a stream whose token is no
// longer in the file, or whose client certificate no longer verifies
// against the client CAs or has expired: its context is cancelled with an
// Unauthenticated status as the cause, which the handler returns. There is
// nothing to close: the goroutine ends with the last stream.
//
// Choices:
//   - TLS 1.2 at least. The server disables session tickets, so every
//     connection is verified against the current certificate and client CA
//     (a resumed session would skip that); the link's connections are
//     long-lived, resumption gains nothing.
//   - The client builds its tls.Config for each handshake (Client.Config):
//     RootCAs is the current CA pool and GetClientCertificate returns the
//     current certificate, so Go's own verification (chain and host name)
//     runs against reloaded material; no custom VerifyConnection is needed.
//   - A bearer token is never sent over a connection without TLS:
//     Bearer.RequireTransportSecurity is true, so gRPC refuses to create a
//     client that would (grpc.NewClient fails). Options.AllowTokenWithoutTLS
//     lifts that, for tests over loopback only.
//   - Failures (handshakes, rejected tokens) are logged per peer host: the
//     first of a burst, then at most once per Options.LogInterval while it
//     goes on, with a count. Token values are never logged.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Defaults of Options.
const (
	DefaultCheckInterval = time.Second
	DefaultLogInterval   = time.Minute
)

// Options are shared by the constructors of this package.
type Options struct {
	// Log receives reloads, failed reloads, handshake failures and rejected
	// tokens; nil discards them.
	Log *slog.Logger
	// CheckInterval is the least time between two looks at the files; 0
	// means DefaultCheckInterval, a negative value looks on every use.
	CheckInterval time.Duration
	// LogInterval spaces the lines about a burst of failures of one peer; 0
	// means DefaultLogInterval.
	LogInterval time.Duration
	// AllowTokenWithoutTLS lets a Bearer token go over a connection without
	// TLS. For tests over loopback only.
	AllowTokenWithoutTLS bool
}

func (o Options) checkInterval() time.Duration {
	if o.CheckInterval == 0 {
		return DefaultCheckInterval
	}
	return o.CheckInterval
}

func (o Options) logInterval() time.Duration {
	if o.LogInterval <= 0 {
		return DefaultLogInterval
	}
	return o.LogInterval
}

func (o Options) logger() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o.Log
}

// watchKeyPair loads certFile and keyFile, and again when they change.
func watchKeyPair(what, certFile, keyFile string, o Options) (*watched[*tls.Certificate], error) {
	log := o.logger()
	load := func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %s, key %s: %w", what, certFile, keyFile, err)
		}
		if c.Leaf == nil { // GODEBUG=x509keypairleaf=0
			if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return nil, fmt.Errorf("%s: certificate %s: %w", what, certFile, err)
			}
		}
		if now := time.Now(); now.After(c.Leaf.NotAfter) || now.Before(c.Leaf.NotBefore) {
			log.Warn(what+" is not valid now", "file", certFile, "not_before", c.Leaf.NotBefore, "not_after", c.Leaf.NotAfter)
		}
		return &c, nil
	}
	describe := func(c *tls.Certificate) []any {
		return []any{"serial", c.Leaf.SerialNumber.Text(16), "subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter}
	}
	return newWatched(what, []string{certFile, keyFile}, o, load, describe)
}

// watchPool loads the PEM certificates of file into a pool, and again when
// it changes.
func watchPool(what, file string, o Options) (*watched[*x509.CertPool], error) {
	load := func() (*x509.CertPool, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("%s: no PEM certificate found in %s", what, file)
		}
		return pool, nil
	}
	return newWatched(what, []string{file}, o, load, nil)
}
