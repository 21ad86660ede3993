package tlsconf

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ferrylogs/ferry/transport/tlsconf/tlstest"
)

// openStream runs the tokens' stream interceptor with token over a handler
// that waits for its context to end and returns the cause, as
// transport.Server does. The returned channel gets the interceptor's
// result.
func openStream(tok *Tokens, token string) (context.CancelFunc, <-chan error) {
	ctx, cancel := context.WithCancel(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token)))
	done := make(chan error, 1)
	go func() {
		done <- tok.StreamInterceptor()(nil, &fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: "/ferry.v1.Ingest/Stream"},
			func(_ any, ss grpc.ServerStream) error {
				<-ss.Context().Done()
				return context.Cause(ss.Context())
			})
	}()
	return cancel, done
}

// TestTokenGuard: with a check interval of an hour, fsnotify alone makes
// the guard see a token removed from the file: the stream of that token
// ends with MsgRevokedToken, another token's stream goes on, and the
// guard's goroutine ends with the last stream (goleak).
func TestTokenGuard(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tokens")
	tlstest.WriteFile(t, file, []byte("token-a\ntoken-b\n"))
	o, logs := opts(t)
	o.CheckInterval = time.Hour
	tok, err := NewTokens(nil, file, o)
	if err != nil {
		t.Fatal(err)
	}
	cancelA, doneA := openStream(tok, "token-a")
	defer cancelA()
	cancelB, doneB := openStream(tok, "token-b")
	waitGuarded := func(n int) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			tok.guard.mu.Lock()
			got := len(tok.guard.streams)
			tok.guard.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d streams under guard, want %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitGuarded(2)

	start := time.Now()
	tlstest.WriteFile(t, file, []byte("token-b\n"))
	select {
	case err := <-doneA:
		if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != MsgRevokedToken {
			t.Fatalf("revoked stream ended with %v, want Unauthenticated %q", err, MsgRevokedToken)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("revoked after %v", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of the removed token is still open")
	}
	if tok.StreamsEnded() != 1 || logs.Count("ending a stream: its bearer token is no longer accepted") != 1 {
		t.Errorf("StreamsEnded %d, log:\n%s", tok.StreamsEnded(), logs.String())
	}
	if logs.Count("token-a") != 0 {
		t.Errorf("the log holds the token")
	}
	select {
	case err := <-doneB:
		t.Fatalf("the stream of a token still accepted ended: %v", err)
	default:
	}
	waitGuarded(1)

	// The agent went: its stream ends as it would, and the guard stops.
	cancelB()
	if err := <-doneB; !errors.Is(err, context.Canceled) {
		t.Fatalf("stream B: %v, want Canceled", err)
	}
	waitGuarded(0)
	tok.guard.mu.Lock()
	running := tok.guard.stop != nil
	tok.guard.mu.Unlock()
	if running {
		t.Fatal("the guard still runs without streams")
	}
	// A removed token cannot open a new stream either.
	_, done := openStream(tok, "token-a")
	if err := <-done; status.Code(err) != codes.Unauthenticated {
		t.Fatalf("new stream with the removed token: %v", err)
	}
}
