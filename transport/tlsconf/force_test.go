package tlsconf

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferrylogs/ferry/transport/tlsconf/tlstest"
)

// Reload (SIGHUP) reads the files now, not after the check interval.
func TestForcedReload(t *testing.T) {
	dir := t.TempDir()
	o, logs := opts(t)
	o.CheckInterval = time.Hour

	ca := tlstest.NewCA(t, "ca")
	first := ca.Server(t)
	certFile, keyFile := first.Write(t, dir, "server")
	srv, err := NewServer(ServerFiles{CertFile: certFile, KeyFile: keyFile}, o)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewClient(ClientFiles{CAFile: ca.Write(t, dir, "ca")}, o)
	if err != nil {
		t.Fatal(err)
	}
	second := ca.Server(t)
	second.Write(t, dir, "server")
	if r := handshake(t, srv.Config(), cli.Config("127.0.0.1")); r.clientErr != nil || serial(r).Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("before Reload: %v, serial %v, want the first (hour-long check interval)", r.clientErr, serial(r))
	}
	srv.Reload()
	cli.Reload()
	if r := handshake(t, srv.Config(), cli.Config("127.0.0.1")); r.clientErr != nil || serial(r).Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after Reload: %v, serial %v, want the second", r.clientErr, serial(r))
	}

	file := filepath.Join(dir, "tokens")
	tlstest.WriteFile(t, file, []byte("token-1\n"))
	toks, err := NewTokens(nil, file, o)
	if err != nil {
		t.Fatal(err)
	}
	call := func(tok string) error {
		_, err := toks.UnaryInterceptor()(incoming("10.0.0.1", "authorization", "Bearer "+tok), nil,
			&grpc.UnaryServerInfo{FullMethod: "/ferry.v1.Ingest/Test"}, func(context.Context, any) (any, error) { return nil, nil })
		return err
	}
	tlstest.WriteFile(t, file, []byte("token-2\n"))
	if err := call("token-1"); err != nil {
		t.Fatalf("before Reload: %v, want token-1 still accepted", err)
	}
	toks.Reload()
	if err := call("token-1"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("after Reload: token-1: %v, want Unauthenticated", err)
	}
	if err := call("token-2"); err != nil {
		t.Errorf("after Reload: token-2: %v", err)
	}

	tokFile := filepath.Join(dir, "token")
	tlstest.WriteFile(t, tokFile, []byte("token-a\n"))
	b, err := NewBearer("", tokFile, o)
	if err != nil {
		t.Fatal(err)
	}
	tlstest.WriteFile(t, tokFile, []byte("token-b\n"))
	b.Reload()
	if md, _ := b.GetRequestMetadata(context.Background()); md["authorization"] != "Bearer token-b" {
		t.Errorf("after Reload: %v, want token-b", md)
	}

	// A broken file at Reload keeps what was loaded, with a warning.
	tlstest.WriteFile(t, tokFile, []byte("\n"))
	b.Reload()
	if md, _ := b.GetRequestMetadata(context.Background()); md["authorization"] != "Bearer token-b" {
		t.Errorf("after Reload of an empty file: %v, want token-b kept", md)
	}
	if logs.Count("cannot reload bearer token") != 1 {
		t.Errorf("want one warning about the empty token file")
	}
}
