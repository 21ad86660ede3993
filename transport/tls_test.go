package transport

// Transport security over loopback with the real Client and Server:
// TLS, mutual TLS, bearer tokens, and files that change on disk.

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/transport/tlsconf"
	"github.com/ferrylogs/ferry/transport/tlsconf/tlstest"
)

// pki is a CA with a server certificate for 127.0.0.1 and localhost and a
// client certificate, another CA with a client certificate, and their files.
type pki struct {
	dir                   string
	ca, other             *tlstest.CA
	caFile, otherCAFile   string
	server                *tlstest.Leaf
	serverCert, serverKey string
	clientCert, clientKey string // signed by ca, CN agent-good
	otherCert, otherKey   string // signed by other, CN agent-other
}

func newPKI(t *testing.T) *pki {
	p := &pki{dir: t.TempDir(), ca: tlstest.NewCA(t, "ferry-ca"), other: tlstest.NewCA(t, "other-ca")}
	p.caFile = p.ca.Write(t, p.dir, "ca")
	p.otherCAFile = p.other.Write(t, p.dir, "other-ca")
	p.server = p.ca.Server(t)
	p.serverCert, p.serverKey = p.server.Write(t, p.dir, "server")
	p.clientCert, p.clientKey = p.ca.Client(t, "agent-good").Write(t, p.dir, "client")
	p.otherCert, p.otherKey = p.other.Client(t, "agent-other").Write(t, p.dir, "other-client")
	return p
}

// tlsOpts returns tlsconf options logging to a new test log; files are
// looked at on every use.
func tlsOpts(t *testing.T, name string) (tlsconf.Options, *logBuf) {
	log, lb := newLogger(t, name)
	return tlsconf.Options{Log: log, CheckInterval: -1}, lb
}

// peers records the TLS peer of every stream a server accepts.
type peers struct {
	mu    sync.Mutex
	infos []credentials.TLSInfo
	plain int
}

func (p *peers) interceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		pr, _ := peer.FromContext(ss.Context())
		p.mu.Lock()
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
			p.infos = append(p.infos, ti)
		} else {
			p.plain++
		}
		p.mu.Unlock()
		return handler(srv, ss)
	}
}

func (p *peers) clientNames() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, ti := range p.infos {
		name := "-"
		if certs := ti.State.PeerCertificates; len(certs) > 0 {
			name = certs[0].Subject.CommonName
		}
		out = append(out, name)
	}
	return out
}

// serverSerials records the serial of the aggregator's certificate of every
// stream a client opens.
type serverSerials struct {
	mu      sync.Mutex
	serials []*big.Int
}

func (s *serverSerials) interceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		if pr, ok := peer.FromContext(cs.Context()); ok {
			if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
				s.mu.Lock()
				s.serials = append(s.serials, ti.State.PeerCertificates[0].SerialNumber)
				s.mu.Unlock()
			}
		}
		return cs, nil
	}
}

func (s *serverSerials) list() []*big.Int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*big.Int(nil), s.serials...)
}

type tlsServer struct {
	*testServer
	peers *peers
	logs  *logBuf // tlsconf's log: reloads, handshakes, tokens
}

// startTLSServer serves over TLS with p's server certificate; clientCA
// turns on mutual TLS; tokens, if set, are required. logEvery, if set, is
// the tlsconf.Options.LogInterval of the server's handshake failures.
func startTLSServer(t *testing.T, p *pki, clientCA string, tokens *tlsconf.Tokens, logEvery ...time.Duration) *tlsServer {
	t.Helper()
	o, lb := tlsOpts(t, "server tls")
	if len(logEvery) > 0 {
		o.LogInterval = logEvery[0]
	}
	st, err := tlsconf.NewServer(tlsconf.ServerFiles{CertFile: p.serverCert, KeyFile: p.serverKey, ClientCAFile: clientCA}, o)
	if err != nil {
		t.Fatal(err)
	}
	pr := &peers{}
	opts := []grpc.ServerOption{grpc.Creds(st.Credentials()), grpc.ChainStreamInterceptor(pr.interceptor())}
	if tokens != nil {
		opts = append(opts, grpc.ChainStreamInterceptor(tokens.StreamInterceptor()), grpc.ChainUnaryInterceptor(tokens.UnaryInterceptor()))
	}
	return &tlsServer{testServer: startServer(t, &recSink{}, ServerConfig{}, opts...), peers: pr, logs: lb}
}

// tlsDial returns dial options for a client with files (and a bearer
// token, if bearer is set), and tlsconf's log.
func tlsDial(t *testing.T, files tlsconf.ClientFiles, bearer *tlsconf.Bearer) ([]grpc.DialOption, *logBuf) {
	t.Helper()
	o, lb := tlsOpts(t, "client tls")
	c, err := tlsconf.NewClient(files, o)
	if err != nil {
		t.Fatal(err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(c.Credentials())}
	if bearer != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer))
	}
	return opts, lb
}

// fastRetry makes a failing client try again soon, and give up soon on
// what it could not deliver when the test ends.
var fastRetry = ClientConfig{BatchTimeout: 10 * time.Millisecond, BackoffInitial: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, ShutdownTimeout: 200 * time.Millisecond}

// shipOne sends one chunk through tc and waits for its commit.
func shipOne(t *testing.T, tc *testClient, mk *chunkMaker, name string) {
	t.Helper()
	before := tc.com.count()
	tc.send(mk.chunk(testFile(name), 0, name+" one", name+" two"))
	waitFor(t, "commit of "+name, func() bool { return tc.com.count() > before })
	tc.com.check(t)
}

// logLine returns the first line of logs holding all of subs.
func logLine(logs *logBuf, subs ...string) string {
	for _, line := range strings.Split(logs.String(), "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return line
		}
	}
	return ""
}

func waitLog(t *testing.T, what string, logs *logBuf, subs ...string) string {
	t.Helper()
	var line string
	waitFor(t, what, func() bool { line = logLine(logs, subs...); return line != "" })
	return line
}

// TestTLS: events arrive over TLS, and the server sees a TLS peer.
func TestTLS(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, p, "", nil)
	mk := newChunkMaker(t)
	dial, _ := tlsDial(t, tlsconf.ClientFiles{CAFile: p.caFile}, nil)
	tc := startClient(t, srv.addr, mk, fastRetry, 4, dial...)
	shipOne(t, tc, mk, "tls")
	if got := srv.sink.count(); got == 0 {
		t.Fatal("no sink write")
	}
	if names := srv.peers.clientNames(); len(names) != 1 || srv.peers.plain != 0 {
		t.Errorf("server saw TLS streams %v and %d plain ones, want one TLS stream", names, srv.peers.plain)
	}
	// By name too: the certificate is for localhost.
	dial, _ = tlsDial(t, tlsconf.ClientFiles{CAFile: p.caFile}, nil)
	tc2 := startClient(t, "localhost:"+port(srv.addr), mk, fastRetry, 4, dial...)
	shipOne(t, tc2, mk, "by-name")
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// TestTLSWrongCA: a client that does not trust the server's CA never
// connects, and both sides say why.
func TestTLSWrongCA(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, p, "", nil)
	mk := newChunkMaker(t)
	dial, tlsLog := tlsDial(t, tlsconf.ClientFiles{CAFile: p.otherCAFile}, nil)
	tc := startClient(t, srv.addr, mk, fastRetry, 4, dial...)
	tc.send(mk.chunk(testFile("never"), 0, "never delivered"))

	// The client's own line about the stream carries the x509 error.
	line := waitLog(t, "client log about the stream", tc.logs, "cannot open stream to aggregator")
	for _, want := range []string{"authentication handshake failed", "x509: certificate signed by unknown authority", srv.addr} {
		if !strings.Contains(line, want) {
			t.Errorf("client log line lacks %q: %s", want, line)
		}
	}
	// tlsconf's line names the TLS handshake and hints at the fix.
	line = waitLog(t, "client tls log", tlsLog, "TLS handshake with aggregator failed")
	if !strings.Contains(line, "x509: certificate signed by unknown authority") || !strings.Contains(line, "aggregator.tls.ca_file") {
		t.Errorf("client tls line: %s", line)
	}
	// The server logs the failure with the peer's address.
	line = waitLog(t, "server tls log", srv.logs, "TLS handshake with agent failed")
	if !strings.Contains(line, "peer=127.0.0.1:") || !strings.Contains(line, "remote error: tls: ") || !strings.Contains(line, "ca_file") {
		t.Errorf("server tls line: %s", line)
	}
	if tc.c.Connected() || srv.sink.count() != 0 {
		t.Errorf("connected %v, %d sink writes; want none", tc.c.Connected(), srv.sink.count())
	}
}

// TestTLSPlaintextMismatch: a TLS client against a plaintext server and a
// plaintext client against a TLS server both fail with clear lines.
func TestTLSPlaintextMismatch(t *testing.T) {
	p := newPKI(t)
	mk := newChunkMaker(t)

	plain := startServer(t, &recSink{}, ServerConfig{})
	dial, tlsLog := tlsDial(t, tlsconf.ClientFiles{CAFile: p.caFile}, nil)
	tc := startClient(t, plain.addr, mk, fastRetry, 4, dial...)
	line := waitLog(t, "client tls log", tlsLog, "TLS handshake with aggregator failed")
	if !strings.Contains(line, "first record does not look like a TLS handshake") || !strings.Contains(line, "does not use TLS") {
		t.Errorf("TLS client, plaintext server: %s", line)
	}
	if line := waitLog(t, "client log", tc.logs, "cannot open stream to aggregator"); !strings.Contains(line, "first record does not look like a TLS handshake") {
		t.Errorf("client log line: %s", line)
	}

	srv := startTLSServer(t, p, "", nil)
	startClient(t, srv.addr, mk, fastRetry, 4) // plaintext
	line = waitLog(t, "server tls log", srv.logs, "TLS handshake with agent failed")
	if !strings.Contains(line, "first record does not look like a TLS handshake") || !strings.Contains(line, "the agent does not use TLS") {
		t.Errorf("plaintext client, TLS server: %s", line)
	}
}

// TestMutualTLS: with a client CA, clients without a certificate or with
// one of another CA are rejected; a good one ships its events.
func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	// All clients come from 127.0.0.1: log every failure, not one per burst.
	srv := startTLSServer(t, p, p.caFile, nil, time.Nanosecond)
	mk := newChunkMaker(t)

	// In TLS 1.3 the server checks the client's certificate after the
	// client's handshake is over; tlsconf waits for the verdict, so the
	// client's lines say the certificate was refused (not "broken pipe").
	t.Run("no certificate", func(t *testing.T) {
		dial, tlsLog := tlsDial(t, tlsconf.ClientFiles{CAFile: p.caFile}, nil)
		tc := startClient(t, srv.addr, mk, fastRetry, 4, dial...)
		line := waitLog(t, "client log", tc.logs, "cannot open stream to aggregator")
		for _, want := range []string{"authentication handshake failed", "the aggregator requires a client certificate and none is configured", "certificate required"} {
			if !strings.Contains(line, want) {
				t.Errorf("client line lacks %q: %s", want, line)
			}
		}
		line = waitLog(t, "client tls log", tlsLog, "TLS handshake with aggregator failed")
		if !strings.Contains(line, "set aggregator.tls.cert_file and key_file") {
			t.Errorf("client tls line without a hint: %s", line)
		}
		line = waitLog(t, "server tls log", srv.logs, "TLS handshake with agent failed", "client didn't provide a certificate")
		if !strings.Contains(line, "cert_file") {
			t.Errorf("server line without a hint: %s", line)
		}
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		dial, tlsLog := tlsDial(t, tlsconf.ClientFiles{CAFile: p.caFile, CertFile: p.otherCert, KeyFile: p.otherKey}, nil)
		tc := startClient(t, srv.addr, mk, fastRetry, 4, dial...)
		line := waitLog(t, "client log", tc.logs, "cannot open stream to aggregator")
		for _, want := range []string{"authentication handshake failed", "the aggregator rejected the client certificate", "remote error: tls: unknown certificate authority"} {
			if !strings.Contains(line, want) {
				t.Errorf("client line lacks %q: %s", want, line)
			}
		}
		line = waitLog(t, "client tls log", tlsLog, "TLS handshake with aggregator failed")
		if !strings.Contains(line, "client_ca_file") {
			t.Errorf("client tls line without a hint: %s", line)
		}
		waitLog(t, "server tls log", srv.logs, "TLS handshake with agent failed", "x509: certificate signed by unknown authority")
	})
	if srv.sink.count() != 0 || len(srv.peers.clientNames()) != 0 {
		t.Fatalf("rejected clients got through: %d writes, streams %v", srv.sink.count(), srv.peers.clientNames())
	}
	t.Run("good certificate", func(t *testing.T) {
		dial, tlsLog := tlsDial(t, tlsconf.ClientFiles{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}, nil)
		tc := startClient(t, srv.addr, mk, fastRetry, 4, dial...)
		shipOne(t, tc, mk, "mtls")
		if names := srv.peers.clientNames(); len(names) != 1 || names[0] != "agent-good" {
			t.Errorf("server saw clients %v, want [agent-good]", names)
		}
		if tlsLog.String() != "" || strings.Contains(tc.logs.String(), "WARN") {
			t.Errorf("warnings from a good client:\n%s%s", tlsLog.String(), tc.logs.String())
		}
	})
}

// dialTLSRaw opens a bare stream over TLS with per-RPC credentials.
func dialTLSRaw(t *testing.T, addr string, files tlsconf.ClientFiles, bearer *tlsconf.Bearer) *rawStream {
	t.Helper()
	dial, _ := tlsDial(t, files, bearer)
	conn, err := grpc.NewClient(addr, dial...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := ferryv1.NewIngestClient(conn).Stream(ctx)
	if err != nil {
		cancel()
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); conn.Close() })
	return &rawStream{conn: conn, st: st}
}

// tryToken sends one batch with token ("" for none) and returns the error
// of its ack.
func tryToken(t *testing.T, addr string, files tlsconf.ClientFiles, token string) error {
	t.Helper()
	var b *tlsconf.Bearer
	if token != "" {
		var err error
		if b, err = tlsconf.NewBearer(token, "", tlsconf.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	r := dialTLSRaw(t, addr, files, b)
	// A rejected stream may be over before the send: then Send returns
	// io.EOF and Recv the status.
	if err := r.st.Send(validBatch(1, 1)); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("send: %v", err)
	}
	a, err := r.st.Recv()
	if err == nil && a.Code != ferryv1.Ack_CODE_OK {
		t.Fatalf("ack %v", a)
	}
	return err
}

func wantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || (msg != "" && status.Convert(err).Message() != msg) {
		t.Errorf("%s: %v, want %v %q", what, err, code, msg)
	}
}

// TestBearerToken: the server requires a token from its tokens file; the
// file changes on disk and the new set applies to the next streams.
func TestBearerToken(t *testing.T) {
	p := newPKI(t)
	tokFile := filepath.Join(p.dir, "tokens")
	tlstest.WriteFile(t, tokFile, []byte("# agents\ntoken-a\n"))
	o, tokLog := tlsOpts(t, "tokens")
	tokens, err := tlsconf.NewTokens(nil, tokFile, o)
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLSServer(t, p, "", tokens)
	files := tlsconf.ClientFiles{CAFile: p.caFile}

	wantStatus(t, "no token", tryToken(t, srv.addr, files, ""), codes.Unauthenticated, tlsconf.MsgMissingToken)
	wantStatus(t, "wrong token", tryToken(t, srv.addr, files, "token-x"), codes.Unauthenticated, tlsconf.MsgInvalidToken)
	wantStatus(t, "right token", tryToken(t, srv.addr, files, "token-a"), codes.OK, "")
	if n := strings.Count(tokLog.String(), "rejected an RPC"); n != 1 {
		t.Errorf("%d lines about rejected RPCs from one peer, want 1:\n%s", n, tokLog.String())
	}
	if line := logLine(tokLog, "rejected an RPC: missing bearer token"); !strings.Contains(line, "peer=127.0.0.1:") {
		t.Errorf("rejection line without the peer: %q", line)
	}

	// The real client, with a wrong token: its log says why.
	mk := newChunkMaker(t)
	wrong, err := tlsconf.NewBearer("token-x", "", tlsconf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dial, _ := tlsDial(t, files, wrong)
	bad := startClient(t, srv.addr, mk, fastRetry, 4, dial...)
	bad.send(mk.chunk(testFile("denied"), 0, "denied"))
	waitLog(t, "client log", bad.logs, "to aggregator", "code = Unauthenticated", "invalid bearer token")

	// With the token from a file, events arrive.
	clientTok := filepath.Join(p.dir, "agent-token")
	tlstest.WriteFile(t, clientTok, []byte("token-a\n"))
	right, err := tlsconf.NewBearer("", clientTok, tlsconf.Options{CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	dial, _ = tlsDial(t, files, right)
	good := startClient(t, srv.addr, mk, fastRetry, 4, dial...)
	shipOne(t, good, mk, "token-a")

	// Rotate: token-b in, token-a out.
	tlstest.WriteFile(t, tokFile, []byte("token-b\n"))
	wantStatus(t, "new token", tryToken(t, srv.addr, files, "token-b"), codes.OK, "")
	wantStatus(t, "old token", tryToken(t, srv.addr, files, "token-a"), codes.Unauthenticated, tlsconf.MsgInvalidToken)
	if logLine(tokLog, "reloaded bearer tokens", "tokens=1") == "" {
		t.Errorf("reload not logged")
	}
	// The client's stream opened before the rotation goes on; its next
	// stream needs the new token, which it reads from its own file.
	tlstest.WriteFile(t, clientTok, []byte("token-b\n"))
	srv.stop()
	srv.serve(srv.addr)
	shipOne(t, good, mk, "token-b")

	for _, secret := range []string{"token-a", "token-b", "token-x"} {
		for name, logs := range map[string]*logBuf{"tokens": tokLog, "server": srv.logs, "good client": good.logs, "bad client": bad.logs} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("%s log shows a token", name)
			}
		}
	}
}

// TestCertificateRotation: new certificate files on disk are served to the
// next connection, without a restart; open connections go on.
func TestCertificateRotation(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, p, "", nil)
	mk := newChunkMaker(t)

	first := &serverSerials{}
	dial, _ := tlsDial(t, tlsconf.ClientFiles{CAFile: p.caFile}, nil)
	tc1 := startClient(t, srv.addr, mk, fastRetry, 4, append(dial, grpc.WithChainStreamInterceptor(first.interceptor()))...)
	shipOne(t, tc1, mk, "before")

	next := p.ca.Server(t)
	if next.Cert.SerialNumber.Cmp(p.server.Cert.SerialNumber) == 0 {
		t.Fatal("same serial")
	}
	next.Write(t, p.dir, "server")

	second := &serverSerials{}
	dial, _ = tlsDial(t, tlsconf.ClientFiles{CAFile: p.caFile}, nil)
	tc2 := startClient(t, srv.addr, mk, fastRetry, 4, append(dial, grpc.WithChainStreamInterceptor(second.interceptor()))...)
	shipOne(t, tc2, mk, "after")
	shipOne(t, tc1, mk, "old-connection")

	wantSerials := func(who string, got []*big.Int, want *x509.Certificate) {
		t.Helper()
		if len(got) != 1 || got[0].Cmp(want.SerialNumber) != 0 {
			t.Errorf("%s saw serials %v, want [%v]", who, got, want.SerialNumber)
		}
	}
	wantSerials("first client", first.list(), p.server.Cert)
	wantSerials("second client", second.list(), next.Cert)
	if logLine(srv.logs, "reloaded server certificate", "serial="+next.Cert.SerialNumber.Text(16)) == "" {
		t.Errorf("reload not logged")
	}
}

// Bearer tokens need TLS: gRPC refuses the client otherwise.
func TestBearerRequiresTLS(t *testing.T) {
	b, err := tlsconf.NewBearer("t", "", tlsconf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewClient(ClientConfig{Address: "127.0.0.1:1", DialOptions: []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(b),
	}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "transport level security") {
		t.Errorf("NewClient: %v, want a refusal", err)
	}
}
