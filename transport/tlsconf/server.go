package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc/credentials"
)

// ServerFiles are the PEM files of the aggregator's side.
type ServerFiles struct {
	CertFile string // the server's certificate chain (required)
	KeyFile  string // its private key (required)
	// ClientCAFile, when set, turns on mutual TLS: every client must
	// present a certificate signed by one of these CAs.
	ClientCAFile string
}

// Server is the aggregator's TLS material, reloaded from its files.
type Server struct {
	files ServerFiles
	cert  *watched[*tls.Certificate]
	cas   *watched[*x509.CertPool] // nil without ClientCAFile
	guard *guard                   // nil without ClientCAFile
	log   *slog.Logger
	lim   *limiter

	mu        sync.Mutex
	cfg       *tls.Config // for the material below
	cfgCert   *tls.Certificate
	cfgClient *x509.CertPool
}

// NewServer loads the files; it fails if any is missing or does not parse.
func NewServer(f ServerFiles, o Options) (*Server, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("tlsconf: server certificate and key files are required")
	}
	s := &Server{files: f, log: o.logger(), lim: newLimiter(o.logInterval())}
	var err error
	if s.cert, err = watchKeyPair("server certificate", f.CertFile, f.KeyFile, o); err != nil {
		return nil, err
	}
	if f.ClientCAFile != "" {
		if s.cas, err = watchPool("client CA", f.ClientCAFile, o); err != nil {
			return nil, err
		}
		s.guard = newGuard("client certificate", []string{f.ClientCAFile}, o, s.cas.look)
	}
	return s, nil
}

// MutualTLS reports whether clients must present a certificate.
func (s *Server) MutualTLS() bool { return s.cas != nil }

// Config returns a server tls.Config whose GetConfigForClient serves the
// current certificate and, with mutual TLS, requires and verifies a client
// certificate against the current client CAs.
func (s *Server) Config() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true,
		GetConfigForClient:     s.configForClient,
	}
}

func (s *Server) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	cert := s.cert.get()
	var cas *x509.CertPool
	if s.cas != nil {
		cas = s.cas.get()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil || s.cfgCert != cert || s.cfgClient != cas {
		cfg := &tls.Config{
			MinVersion:             tls.VersionTLS12,
			SessionTicketsDisabled: true,
			Certificates:           []tls.Certificate{*cert},
		}
		if cas != nil {
			cfg.ClientCAs, cfg.ClientAuth = cas, tls.RequireAndVerifyClientCert
		}
		s.cfg, s.cfgCert, s.cfgClient = cfg, cert, cas
	}
	return s.cfg, nil // read-only from here on: gRPC and crypto/tls copy it
}

// Credentials returns gRPC server credentials over Config that log failed
// handshakes with the peer's address (see Options.LogInterval).
func (s *Server) Credentials() credentials.TransportCredentials {
	return &serverCreds{TransportCredentials: credentials.NewTLS(s.Config()), s: s}
}

type serverCreds struct {
	credentials.TransportCredentials
	s *Server
}

func (c *serverCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		c.s.handshakeFailed(raw.RemoteAddr(), err)
	}
	return conn, info, err
}

func (c *serverCreds) Clone() credentials.TransportCredentials {
	return &serverCreds{TransportCredentials: c.TransportCredentials.Clone(), s: c.s}
}

func (s *Server) handshakeFailed(addr net.Addr, err error) {
	peer := addrString(addr)
	switch {
	case errors.Is(err, io.EOF):
		// Closed before saying anything: a TCP probe, a port scan.
		s.log.Debug("connection closed before the TLS handshake", "peer", peer)
		return
	case errors.Is(err, net.ErrClosed):
		s.log.Debug("TLS handshake cut short: connection closed here", "peer", peer)
		return
	}
	if ok, n := s.lim.note(hostOf(peer)); ok {
		attrs := []any{"peer", peer, "err", err, "failures", n}
		if h := serverHint(err); h != "" {
			attrs = append(attrs, "hint", h)
		}
		s.log.Warn("TLS handshake with agent failed", attrs...)
	}
}

func serverHint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "the agent does not use TLS: set aggregator.tls.enabled on it"
	case strings.Contains(msg, "client didn't provide a certificate"):
		return "mutual TLS: the agent must set aggregator.tls.cert_file and key_file"
	case strings.Contains(msg, "failed to verify certificate"):
		return "the agent's certificate is not signed by a CA in tls.client_ca_file, or has expired"
	case strings.Contains(msg, "remote error"):
		return "the agent rejected this aggregator's certificate: check the agent's aggregator.tls.ca_file and server_name"
	}
	return ""
}

func addrString(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	return a.String()
}

// hostOf returns the host of host:port, or s itself.
func hostOf(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
}
