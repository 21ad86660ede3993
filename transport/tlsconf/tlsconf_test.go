package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ferrylogs/ferry/transport/tlsconf/tlstest"

	"github.com/ferrylogs/ferry/internal/testlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// opts returns Options that look at the files on every use, logging to a
// buffer.
func opts(t *testing.T) (Options, *testlog.Buffer) {
	lb := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", lb.String())
		}
	})
	return Options{Log: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), CheckInterval: -1}, lb
}

type result struct {
	state     tls.ConnectionState // client's view
	clientErr error
	serverErr error
	peerCerts int // certificates the server got from the client
	clientCN  string
}

// handshake runs one TLS handshake over loopback TCP between server and
// client configurations. The client then reads one byte the server sends
// after its handshake, so that a rejection of the client's certificate
// (which TLS 1.3 reports after the client's handshake) shows as clientErr.
func handshake(t *testing.T, server, client *tls.Config) result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var r result
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			r.serverErr = err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(conn, server)
		if r.serverErr = tc.Handshake(); r.serverErr == nil {
			cs := tc.ConnectionState()
			r.peerCerts = len(cs.PeerCertificates)
			if r.peerCerts > 0 {
				r.clientCN = cs.PeerCertificates[0].Subject.CommonName
			}
			tc.Write([]byte{1})
		}
	}()
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), client)
	if err != nil {
		r.clientErr = err
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		r.state = conn.ConnectionState()
		if _, err := conn.Read(make([]byte, 1)); err != nil {
			r.clientErr = err
		}
		conn.Close()
	}
	<-done
	return r
}

func serial(r result) *big.Int {
	if len(r.state.PeerCertificates) == 0 {
		return nil
	}
	return r.state.PeerCertificates[0].SerialNumber
}

func TestServerCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	first := ca.Server(t)
	certFile, keyFile := first.Write(t, dir, "server")
	o, logs := opts(t)
	srv, err := NewServer(ServerFiles{CertFile: certFile, KeyFile: keyFile}, o)
	if err != nil {
		t.Fatal(err)
	}
	caFile := ca.Write(t, dir, "ca")
	cli, err := NewClient(ClientFiles{CAFile: caFile}, o)
	if err != nil {
		t.Fatal(err)
	}
	r := handshake(t, srv.Config(), cli.Config("127.0.0.1"))
	if r.clientErr != nil || r.serverErr != nil || serial(r).Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("first handshake: %v / %v, serial %v", r.clientErr, r.serverErr, serial(r))
	}

	second := ca.Server(t)
	second.Write(t, dir, "server")
	r = handshake(t, srv.Config(), cli.Config("127.0.0.1"))
	if r.clientErr != nil || serial(r).Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after rotation: %v, serial %v, want %v", r.clientErr, serial(r), second.Cert.SerialNumber)
	}
	if logs.Count(`msg="reloaded server certificate"`) != 1 || logs.Count("serial="+second.Cert.SerialNumber.Text(16)) != 1 {
		t.Errorf("reload not logged with the new serial")
	}

	// A half-done rotation (new certificate, old key): the previous pair
	// stays, one warning however many handshakes.
	third := ca.Server(t)
	tlstest.WriteFile(t, certFile, third.CertPEM)
	for range 3 {
		r = handshake(t, srv.Config(), cli.Config("localhost"))
		if r.clientErr != nil || serial(r).Cmp(second.Cert.SerialNumber) != 0 {
			t.Fatalf("during a bad rotation: %v, serial %v, want the previous %v", r.clientErr, serial(r), second.Cert.SerialNumber)
		}
	}
	if n := logs.Count("cannot reload server certificate; keeping the previous one"); n != 1 {
		t.Errorf("%d warnings about the bad files, want 1", n)
	}
	if !strings.Contains(logs.String(), "private key does not match public key") {
		t.Errorf("the warning does not say what is wrong")
	}
	tlstest.WriteFile(t, keyFile, third.KeyPEM)
	r = handshake(t, srv.Config(), cli.Config("localhost"))
	if r.clientErr != nil || serial(r).Cmp(third.Cert.SerialNumber) != 0 {
		t.Fatalf("after completing the rotation: %v, serial %v", r.clientErr, serial(r))
	}

	// A file that disappears: the same.
	os.Remove(keyFile)
	r = handshake(t, srv.Config(), cli.Config("localhost"))
	if r.clientErr != nil || serial(r).Cmp(third.Cert.SerialNumber) != 0 {
		t.Fatalf("with the key gone: %v, serial %v", r.clientErr, serial(r))
	}
	if n := logs.Count("cannot reload server certificate"); n != 2 {
		t.Errorf("%d warnings, want 2", n)
	}
}

// An in-place rewrite (same inode) is a change too.
func TestInPlaceRewrite(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	o, _ := opts(t)
	srv, err := NewServer(ServerFiles{CertFile: certFile, KeyFile: keyFile}, o)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewClient(ClientFiles{CAFile: ca.Write(t, dir, "ca")}, o)
	if err != nil {
		t.Fatal(err)
	}
	next := ca.Server(t)
	// Different modification time even on a coarse clock.
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{certFile, keyFile} {
		os.Chtimes(f, old, old)
	}
	if err := os.WriteFile(certFile, next.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, next.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	r := handshake(t, srv.Config(), cli.Config("127.0.0.1"))
	if r.clientErr != nil || serial(r).Cmp(next.Cert.SerialNumber) != 0 {
		t.Fatalf("after rewrite: %v, serial %v", r.clientErr, serial(r))
	}
}

// With a check interval, the files are not looked at more often.
func TestCheckInterval(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	first := ca.Server(t)
	certFile, keyFile := first.Write(t, dir, "server")
	o, _ := opts(t)
	o.CheckInterval = time.Hour
	srv, err := NewServer(ServerFiles{CertFile: certFile, KeyFile: keyFile}, o)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewClient(ClientFiles{CAFile: ca.Write(t, dir, "ca")}, o)
	if err != nil {
		t.Fatal(err)
	}
	ca.Server(t).Write(t, dir, "server")
	r := handshake(t, srv.Config(), cli.Config("127.0.0.1"))
	if r.clientErr != nil || serial(r).Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("within the interval: %v, serial %v, want the first", r.clientErr, serial(r))
	}
}

func TestClientReload(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := tlstest.NewCA(t, "ca1"), tlstest.NewCA(t, "ca2")
	certFile, keyFile := ca2.Server(t).Write(t, dir, "server")
	clientCAFile := ca1.Write(t, dir, "client-ca")
	o, logs := opts(t)
	srv, err := NewServer(ServerFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCAFile}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.MutualTLS() {
		t.Error("MutualTLS() = false with a client CA")
	}
	caFile := ca1.Write(t, dir, "ca") // not the server's CA yet
	ccert, ckey := ca1.Client(t, "agent-1").Write(t, dir, "client")
	cli, err := NewClient(ClientFiles{CAFile: caFile, CertFile: ccert, KeyFile: ckey}, o)
	if err != nil {
		t.Fatal(err)
	}
	r := handshake(t, srv.Config(), cli.Config("localhost"))
	if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), "x509: certificate signed by unknown authority") {
		t.Fatalf("wrong CA: client error %v", r.clientErr)
	}
	if hint := clientHint(r.clientErr); !strings.Contains(hint, "ca_file") {
		t.Errorf("hint %q", hint)
	}

	ca2.Write(t, dir, "ca")
	r = handshake(t, srv.Config(), cli.Config("localhost"))
	if r.clientErr != nil || r.serverErr != nil || r.clientCN != "agent-1" {
		t.Fatalf("after the CA file changed: %v / %v, client %q", r.clientErr, r.serverErr, r.clientCN)
	}
	if logs.Count("reloaded aggregator CA") != 1 {
		t.Error("CA reload not logged")
	}

	// A new client certificate is presented by the next handshake.
	ca1.Client(t, "agent-2").Write(t, dir, "client")
	r = handshake(t, srv.Config(), cli.Config("localhost"))
	if r.clientErr != nil || r.clientCN != "agent-2" {
		t.Fatalf("after the client certificate changed: %v, client %q", r.clientErr, r.clientCN)
	}

	// The server's client CA changes: agent-2 (ca1) is out, ca2 clients in.
	ca2.Write(t, dir, "client-ca")
	r = handshake(t, srv.Config(), cli.Config("localhost"))
	if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "x509: certificate signed by unknown authority") || r.clientErr == nil {
		t.Fatalf("client CA rotated away: server %v, client %v", r.serverErr, r.clientErr)
	}
	ca2.Client(t, "agent-3").Write(t, dir, "client")
	r = handshake(t, srv.Config(), cli.Config("localhost"))
	if r.clientErr != nil || r.clientCN != "agent-3" {
		t.Fatalf("client of the new CA: %v, client %q", r.clientErr, r.clientCN)
	}
}

func TestMutualTLSRejects(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	o, _ := opts(t)
	srv, err := NewServer(ServerFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.Write(t, dir, "ca")}, o)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")

	none, err := NewClient(ClientFiles{CAFile: caFile}, o)
	if err != nil {
		t.Fatal(err)
	}
	r := handshake(t, srv.Config(), none.Config("127.0.0.1"))
	if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "client didn't provide a certificate") || r.clientErr == nil {
		t.Errorf("without a certificate: server %v, client %v", r.serverErr, r.clientErr)
	}

	oc, ok := other.Client(t, "intruder").Write(t, dir, "intruder")
	stranger, err := NewClient(ClientFiles{CAFile: caFile, CertFile: oc, KeyFile: ok}, o)
	if err != nil {
		t.Fatal(err)
	}
	r = handshake(t, srv.Config(), stranger.Config("127.0.0.1"))
	if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "certificate signed by unknown authority") || r.clientErr == nil {
		t.Errorf("certificate of another CA: server %v, client %v", r.serverErr, r.clientErr)
	}

	// Wrong name: the server certificate is for 127.0.0.1, ::1 and localhost.
	gc, gk := ca.Client(t, "agent").Write(t, dir, "agent")
	good, err := NewClient(ClientFiles{CAFile: caFile, CertFile: gc, KeyFile: gk}, o)
	if err != nil {
		t.Fatal(err)
	}
	r = handshake(t, srv.Config(), good.Config("aggregator.example"))
	if r.clientErr == nil || !strings.Contains(clientHint(r.clientErr), "server_name") {
		t.Errorf("wrong name: client %v", r.clientErr)
	}
	named, err := NewClient(ClientFiles{CAFile: caFile, CertFile: gc, KeyFile: gk, ServerName: "localhost"}, o)
	if err != nil {
		t.Fatal(err)
	}
	if r = handshake(t, srv.Config(), named.Config("aggregator.example")); r.clientErr != nil || r.clientCN != "agent" {
		t.Errorf("ServerName wins over the dialed name: %v", r.clientErr)
	}
	skip, err := NewClient(ClientFiles{CertFile: gc, KeyFile: gk, InsecureSkipVerify: true}, o)
	if err != nil {
		t.Fatal(err)
	}
	if r = handshake(t, srv.Config(), skip.Config("aggregator.example")); r.clientErr != nil {
		t.Errorf("insecure_skip_verify: %v", r.clientErr)
	}
}

func TestConstructorErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	_, otherKey := ca.Server(t).Write(t, dir, "other")
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem\n"), 0o600)
	o, _ := opts(t)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"no key", second(NewServer(ServerFiles{CertFile: certFile}, o)), "certificate and key files are required"},
		{"mismatch", second(NewServer(ServerFiles{CertFile: certFile, KeyFile: otherKey}, o)), "private key does not match public key"},
		{"missing", second(NewServer(ServerFiles{CertFile: filepath.Join(dir, "nope.pem"), KeyFile: keyFile}, o)), "no such file"},
		{"bad client CA", second(NewServer(ServerFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: garbage}, o)), "client CA: no PEM certificate found in " + garbage},
		{"client half pair", second(NewClient(ClientFiles{CertFile: certFile}, o)), "go together"},
		{"bad CA", second(NewClient(ClientFiles{CAFile: garbage}, o)), "aggregator CA: no PEM certificate found"},
		{"bearer none", second(NewBearer("", "", o)), "either"},
		{"bearer both", second(NewBearer("t", garbage, o)), "either"},
		{"bearer space", second(NewBearer("a b", "", o)), "printable ASCII without spaces"},
		{"bearer file missing", second(NewBearer("", filepath.Join(dir, "nope"), o)), "no such file"},
		{"tokens none", second(NewTokens(nil, "", o)), "no bearer token"},
		{"tokens bad", second(NewTokens([]string{"ok", "tab\there"}, "", o)), "bearer token 1: a token must be printable"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestParseTokens(t *testing.T) {
	got, err := ParseTokens([]byte("# agents\n\n  tok-1  \r\ntok-2\n# old: tok-0\n"))
	if err != nil || strings.Join(got, ",") != "tok-1,tok-2" {
		t.Errorf("got %q, %v", got, err)
	}
	_, err = ParseTokens([]byte("ok\nsecret with space\n"))
	if err == nil || err.Error() != "line 2: a token must be printable ASCII without spaces" {
		t.Errorf("error %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Error("the error quotes the token")
	}
}

// incoming returns a server-side context of an RPC from addr with
// metadata md.
func incoming(addr string, kv ...string) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(addr), Port: 40000}})
	return metadata.NewIncomingContext(ctx, metadata.Pairs(kv...))
}

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	tlstest.WriteFile(t, file, []byte("# agents\nfile-token-1\nfile-token-2\n"))
	o, logs := opts(t)
	toks, err := NewTokens([]string{"fixed-token"}, file, o)
	if err != nil {
		t.Fatal(err)
	}
	unary := toks.UnaryInterceptor()
	call := func(ctx context.Context) error {
		_, err := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/ferry.v1.Ingest/Test"}, func(context.Context, any) (any, error) { return "ok", nil })
		return err
	}
	check := func(name string, ctx context.Context, wantMsg string) {
		t.Helper()
		err := call(ctx)
		switch {
		case wantMsg == "" && err != nil:
			t.Errorf("%s: %v, want OK", name, err)
		case wantMsg != "" && (status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != wantMsg):
			t.Errorf("%s: %v, want Unauthenticated: %s", name, err, wantMsg)
		}
	}
	check("no metadata", peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1)}}), MsgMissingToken)
	check("missing", incoming("10.0.0.1"), MsgMissingToken)
	check("basic auth", incoming("10.0.0.1", "authorization", "Basic dXNlcjpwYXNz"), MsgMissingToken)
	check("empty bearer", incoming("10.0.0.1", "authorization", "Bearer "), MsgMissingToken)
	check("wrong", incoming("10.0.0.1", "authorization", "Bearer not-a-token"), MsgInvalidToken)
	check("prefix", incoming("10.0.0.1", "authorization", "Bearer fixed-toke"), MsgInvalidToken)
	check("fixed", incoming("10.0.0.1", "authorization", "Bearer fixed-token"), "")
	check("lowercase scheme", incoming("10.0.0.1", "authorization", "bearer file-token-2"), "")
	check("file", incoming("10.0.0.2", "authorization", "Bearer file-token-1"), "")

	// Six failures from 10.0.0.1 above, one burst: one line. Another host:
	// its own line.
	if n := logs.Count("rejected an RPC"); n != 1 {
		t.Errorf("%d lines about rejected RPCs, want 1", n)
	}
	check("other host", incoming("10.0.0.3", "authorization", "Bearer nope"), MsgInvalidToken)
	if n := logs.Count("peer=10.0.0.3:40000"); n != 1 {
		t.Errorf("%d lines for the second host, want 1", n)
	}

	// The file changes: the new token is in, the old one out.
	tlstest.WriteFile(t, file, []byte("file-token-3\n"))
	check("new file token", incoming("10.0.0.2", "authorization", "Bearer file-token-3"), "")
	check("old file token", incoming("10.0.0.2", "authorization", "Bearer file-token-1"), MsgInvalidToken)
	check("fixed stays", incoming("10.0.0.2", "authorization", "Bearer fixed-token"), "")
	if logs.Count("reloaded bearer tokens") != 1 || logs.Count("tokens=1") != 1 {
		t.Error("reload not logged with the token count")
	}

	// An emptied file keeps the previous tokens, with one warning.
	tlstest.WriteFile(t, file, []byte("# nothing yet\n"))
	for range 3 {
		check("kept token", incoming("10.0.0.2", "authorization", "Bearer file-token-3"), "")
	}
	if n := logs.Count("cannot reload bearer tokens; keeping the previous one"); n != 1 {
		t.Errorf("%d warnings about the empty file, want 1", n)
	}

	// Streams too.
	stream := toks.StreamInterceptor()
	err = stream(nil, &fakeStream{ctx: incoming("10.0.0.4")}, &grpc.StreamServerInfo{FullMethod: "/ferry.v1.Ingest/Stream"}, func(any, grpc.ServerStream) error { return nil })
	if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != MsgMissingToken {
		t.Errorf("stream without token: %v", err)
	}
	err = stream(nil, &fakeStream{ctx: incoming("10.0.0.4", "authorization", "Bearer file-token-3")}, &grpc.StreamServerInfo{FullMethod: "/ferry.v1.Ingest/Stream"}, func(any, grpc.ServerStream) error { return nil })
	if err != nil {
		t.Errorf("stream with token: %v", err)
	}

	for _, secret := range []string{"fixed-token", "file-token", "not-a-token", "nope", "dXNlcjpwYXNz"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log shows a token (%s)", secret)
		}
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func TestBearer(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	tlstest.WriteFile(t, file, []byte("token-1\n"))
	o, logs := opts(t)
	b, err := NewBearer("", file, o)
	if err != nil {
		t.Fatal(err)
	}
	md, err := b.GetRequestMetadata(context.Background())
	if err != nil || md["authorization"] != "Bearer token-1" {
		t.Errorf("metadata %v, %v", md, err)
	}
	tlstest.WriteFile(t, file, []byte("token-2"))
	if md, _ = b.GetRequestMetadata(context.Background()); md["authorization"] != "Bearer token-2" {
		t.Errorf("after the file changed: %v", md)
	}
	tlstest.WriteFile(t, file, []byte("\n"))
	if md, _ = b.GetRequestMetadata(context.Background()); md["authorization"] != "Bearer token-2" {
		t.Errorf("after the file was emptied: %v, want the previous token", md)
	}
	if logs.Count("cannot reload bearer token") != 1 || strings.Contains(logs.String(), "token-2") {
		t.Errorf("empty token file: want one warning without the token")
	}

	fixed, err := NewBearer("fixed", "", o)
	if err != nil {
		t.Fatal(err)
	}
	if md, _ = fixed.GetRequestMetadata(context.Background()); md["authorization"] != "Bearer fixed" {
		t.Errorf("fixed: %v", md)
	}
	if !fixed.RequireTransportSecurity() {
		t.Error("RequireTransportSecurity() = false by default")
	}
	// gRPC refuses to send the token without TLS...
	_, err = grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(fixed))
	if err == nil || !strings.Contains(err.Error(), "transport level security") {
		t.Errorf("grpc.NewClient with a token and no TLS: %v", err)
	}
	// ...unless allowed.
	o.AllowTokenWithoutTLS = true
	loose, err := NewBearer("fixed", "", o)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(loose))
	if err != nil {
		t.Fatalf("allowed without TLS: %v", err)
	}
	conn.Close()
}

func TestLimiter(t *testing.T) {
	l := newLimiter(time.Minute)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	var logged []int
	note := func(key string, after time.Duration) {
		now = now.Add(after)
		if ok, n := l.note(key); ok {
			logged = append(logged, n)
		}
	}
	note("a", 0) // first of a burst
	note("a", time.Second)
	note("a", time.Second)
	note("b", 0) // another key: its own burst
	if fmt.Sprint(logged) != "[1 1]" {
		t.Fatalf("logged %v", logged)
	}
	// The burst of a goes on past the window: at 60s, one line with the
	// count of failures since the first line (at 1s, ..., 60s).
	for range 60 {
		note("a", time.Second)
	}
	if fmt.Sprint(logged) != "[1 1 60]" {
		t.Fatalf("logged %v, want a line counting 60 failures", logged)
	}
	// A quiet spell longer than the window ends the burst.
	note("a", time.Minute+time.Second)
	if fmt.Sprint(logged) != "[1 1 60 1]" {
		t.Fatalf("logged %v, want a new burst", logged)
	}

	// Too many keys at once share one burst.
	big := newLimiter(time.Hour)
	lines := 0
	for i := range maxBursts + 100 {
		if ok, _ := big.note(net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).String()); ok {
			lines++
		}
	}
	if lines != maxBursts+1 || len(big.bursts) != maxBursts+1 {
		t.Errorf("%d lines, %d keys; want %d of each", lines, len(big.bursts), maxBursts+1)
	}
}

func TestHandshakeEOFIsQuiet(t *testing.T) {
	o, logs := opts(t)
	o.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	srv, err := NewServer(ServerFiles{CertFile: certFile, KeyFile: keyFile}, o)
	if err != nil {
		t.Fatal(err)
	}
	srv.handshakeFailed(&net.TCPAddr{IP: net.IPv4(10, 1, 1, 1), Port: 1}, io.EOF)
	srv.handshakeFailed(&net.TCPAddr{IP: net.IPv4(10, 1, 1, 1), Port: 2}, wrapEOF{})
	if logs.String() != "" {
		t.Errorf("a connection closed before the handshake is logged: %s", logs.String())
	}
	srv.handshakeFailed(&net.TCPAddr{IP: net.IPv4(10, 1, 1, 1), Port: 3}, errors.New("tls: first record does not look like a TLS handshake"))
	if logs.Count("TLS handshake with agent failed") != 1 || logs.Count("the agent does not use TLS") != 1 {
		t.Errorf("a plaintext agent is not logged with a hint: %s", logs.String())
	}
}

type wrapEOF struct{}

func (wrapEOF) Error() string { return "read: EOF" }
func (wrapEOF) Unwrap() error { return io.EOF }

// TestAwaitVerdict: after a TLS 1.3 handshake in which the server asked for
// a client certificate, Credentials waits for the server's first bytes, so
// that a rejection is a handshake error; bytes it read are handed on, and a
// silent server is taken to have accepted.
func TestAwaitVerdict(t *testing.T) {
	defer func(d time.Duration) { verdictWait = d }(verdictWait)
	verdictWait = 200 * time.Millisecond
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "ca"), tlstest.NewCA(t, "other")
	srvLeaf := ca.Server(t)
	srvCert, err := tls.X509KeyPair(srvLeaf.CertPEM, srvLeaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cc, ck := ca.Client(t, "agent").Write(t, dir, "client")
	o, logs := opts(t)
	cli, err := NewClient(ClientFiles{CAFile: ca.Write(t, dir, "ca"), CertFile: cc, KeyFile: ck}, o)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(other.Cert)

	for _, tc := range []struct {
		name   string
		auth   tls.ClientAuthType
		cas    *x509.CertPool
		send   string // after the handshake
		err    string // wanted from ClientHandshake
		read   string // wanted from the conn
		silent bool
	}{
		{name: "accepted, server speaks first", auth: tls.RequireAnyClientCert, send: "settings", read: "settings"},
		{name: "accepted, server silent", auth: tls.RequireAnyClientCert, silent: true},
		{name: "rejected", auth: tls.RequireAndVerifyClientCert, cas: pool, err: "tls: the aggregator rejected the client certificate: remote error: tls: unknown certificate authority"},
		{name: "no certificate asked", auth: tls.NoClientCert, send: "hi", read: "hi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			release := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				sc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tc.auth, ClientCAs: tc.cas, NextProtos: []string{"h2"}})
				if sc.Handshake() != nil {
					return
				}
				if tc.send != "" {
					sc.Write([]byte(tc.send))
				}
				<-release
			}()
			defer func() { close(release); <-done }()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			conn, _, err := cli.Credentials().ClientHandshake(ctx, ln.Addr().String(), raw)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				if !strings.Contains(logs.String(), "the aggregator rejected this agent") {
					t.Errorf("no hint logged")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.silent && time.Since(start) < verdictWait {
				t.Errorf("returned after %v, before the verdict wait", time.Since(start))
			}
			if tc.read != "" {
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 64)
				n, err := io.ReadAtLeast(conn, buf, len(tc.read))
				if err != nil || string(buf[:n]) != tc.read {
					t.Errorf("read %q, %v; want %q", buf[:n], err, tc.read)
				}
			}
		})
	}
}
