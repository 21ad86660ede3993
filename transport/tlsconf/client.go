package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"
)

// ClientFiles are the agent's TLS settings.
type ClientFiles struct {
	// CAFile holds the CAs that sign the aggregator's certificate; empty
	// means the system's roots.
	CAFile string
	// CertFile and KeyFile are the agent's certificate and key, for
	// mutual TLS; both or neither.
	CertFile, KeyFile string
	// ServerName is the name the aggregator's certificate must be valid
	// for; empty means the host of the address dialed.
	ServerName string
	// InsecureSkipVerify accepts any server certificate. For tests.
	InsecureSkipVerify bool
}

// Client is the agent's TLS material, reloaded from its files.
type Client struct {
	files ClientFiles
	cas   *watched[*x509.CertPool]   // nil without CAFile
	cert  *watched[*tls.Certificate] // nil without CertFile
	log   *slog.Logger
	lim   *limiter
}

// NewClient loads the files; it fails if any is missing or does not parse.
func NewClient(f ClientFiles, o Options) (*Client, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("tlsconf: client certificate and key files go together")
	}
	c := &Client{files: f, log: o.logger(), lim: newLimiter(o.logInterval())}
	var err error
	if f.CAFile != "" {
		if c.cas, err = watchPool("aggregator CA", f.CAFile, o); err != nil {
			return nil, err
		}
	}
	if f.CertFile != "" {
		if c.cert, err = watchKeyPair("client certificate", f.CertFile, f.KeyFile, o); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Config returns a tls.Config for one handshake with a server that must
// prove it is serverName (ClientFiles.ServerName, when set, wins): RootCAs
// is the current CA pool and GetClientCertificate returns the current
// certificate. Build one per connection, so that each sees reloaded files.
func (c *Client) Config(serverName string) *tls.Config {
	if c.files.ServerName != "" {
		serverName = c.files.ServerName
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         serverName,
		InsecureSkipVerify: c.files.InsecureSkipVerify,
	}
	if c.cas != nil {
		cfg.RootCAs = c.cas.get()
	}
	if c.cert != nil {
		cert := c.cert.get()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	return cfg
}

// Credentials returns gRPC client credentials that make a Config for each
// connection and log failed handshakes with a hint (see
// Options.LogInterval). The error itself reaches gRPC unchanged.
func (c *Client) Credentials() credentials.TransportCredentials {
	return &clientCreds{c: c, serverName: c.files.ServerName}
}

type clientCreds struct {
	c          *Client
	serverName string
}

func (cc *clientCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	name := cc.serverName
	if name == "" {
		name = hostOf(authority)
	}
	cfg := cc.c.Config(name)
	var asked atomic.Bool // the server asked for a client certificate
	getCert := cfg.GetClientCertificate
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked.Store(true)
		if getCert == nil {
			return &tls.Certificate{}, nil // none
		}
		return getCert(cri)
	}
	conn, info, err := credentials.NewTLS(cfg).ClientHandshake(ctx, name, raw)
	if err == nil && asked.Load() {
		if ti, ok := info.(credentials.TLSInfo); ok && ti.State.Version >= tls.VersionTLS13 {
			conn, err = awaitVerdict(ctx, conn, getCert != nil)
		}
	}
	if err != nil && ctx.Err() == nil {
		cc.c.handshakeFailed(raw.RemoteAddr(), name, err)
	}
	if err != nil {
		return nil, nil, err
	}
	return conn, info, nil
}

// verdictWait bounds the wait for the server's first bytes after a TLS 1.3
// handshake with a client certificate (a variable for tests).
var verdictWait = 3 * time.Second

// awaitVerdict waits for the server's first bytes after a TLS 1.3 handshake
// in which it asked for a client certificate. In TLS 1.3 the client's
// handshake ends before the server has checked the certificate: a
// rejection arrives as an alert on the first read, which gRPC would report
// as "error reading server preface" or, as often, as a broken pipe on its
// first write. Reading here turns it into a handshake error that says what
// happened. A gRPC server sends its settings at once; whatever was read is
// handed on. A server silent for verdictWait is taken to have accepted.
func awaitVerdict(ctx context.Context, conn net.Conn, hadCert bool) (net.Conn, error) {
	deadline := time.Now().Add(verdictWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if !stop() { // cancelled: the deadline may still be moved
		conn.Close()
		return nil, ctx.Err()
	}
	conn.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case n > 0 || err == nil:
		return &prefixConn{Conn: conn, buf: buf[:n]}, nil
	case errors.As(err, &ne) && ne.Timeout():
		return conn, nil
	}
	conn.Close()
	if !hadCert {
		return nil, fmt.Errorf("tls: the aggregator requires a client certificate and none is configured: %w", err)
	}
	return nil, fmt.Errorf("tls: the aggregator rejected the client certificate: %w", err)
}

// prefixConn reads buf before the rest of Conn.
type prefixConn struct {
	net.Conn
	buf []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// SyscallConn passes on the socket, for gRPC's channelz.
func (c *prefixConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("tlsconf: no syscall.Conn")
}

func (cc *clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("tlsconf: client credentials cannot serve")
}

func (cc *clientCreds) Info() credentials.ProtocolInfo {
	// A ServerName here also becomes the :authority of requests.
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2", ServerName: cc.serverName}
}

func (cc *clientCreds) Clone() credentials.TransportCredentials {
	clone := *cc
	return &clone
}

// OverrideServerName implements a deprecated method of
// credentials.TransportCredentials.
func (cc *clientCreds) OverrideServerName(name string) error {
	cc.serverName = name
	return nil
}

func (c *Client) handshakeFailed(addr net.Addr, serverName string, err error) {
	peer := addrString(addr)
	if ok, n := c.lim.note(hostOf(peer)); ok {
		attrs := []any{"address", peer, "server_name", serverName, "err", err, "failures", n}
		if h := clientHint(err); h != "" {
			attrs = append(attrs, "hint", h)
		}
		c.log.Warn("TLS handshake with aggregator failed", attrs...)
	}
}

func clientHint(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &unknown):
		return "the aggregator's certificate is not signed by a CA in aggregator.tls.ca_file (or the system roots when it is not set)"
	case errors.As(err, &hostname):
		return "the aggregator's certificate is not valid for this name: set aggregator.tls.server_name, or fix the certificate's subject alternative names"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the aggregator's certificate has expired or is not valid yet"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "the aggregator does not use TLS: set tls.enabled on it, or disable aggregator.tls here"
	case strings.Contains(msg, "requires a client certificate"):
		return "the aggregator uses mutual TLS: set aggregator.tls.cert_file and key_file"
	case strings.Contains(msg, "remote error"):
		return "the aggregator rejected this agent: check aggregator.tls.cert_file and key_file against its tls.client_ca_file"
	}
	return ""
}
