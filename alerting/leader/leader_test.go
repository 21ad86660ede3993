package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/test/harness"
)

// Two evaluators share one Lease on the real API server: exactly one
// leads; when it stops, the other takes over.
func TestOneLeaderTakesOver(t *testing.T) {
	api := harness.SharedKube(t)
	var b [4]byte
	rand.Read(b[:])
	lease := "ferry-alerting-test-" + hex.EncodeToString(b[:])
	cfg := func(id string) config.LeaderElection {
		return config.LeaderElection{Enabled: "true", Kubeconfig: api.Kubeconfig, Namespace: "default", Lease: lease, Identity: id,
			LeaseDuration: config.Duration(3 * time.Second), RenewDeadline: config.Duration(2 * time.Second), RetryPeriod: config.Duration(200 * time.Millisecond)}
	}
	var mu sync.Mutex
	leading := map[string]bool{}
	var history []string
	lead := func(id string) func(context.Context) {
		return func(ctx context.Context) {
			mu.Lock()
			leading[id] = true
			history = append(history, id)
			mu.Unlock()
			<-ctx.Done()
			mu.Lock()
			leading[id] = false
			mu.Unlock()
		}
	}
	log := slog.New(slog.DiscardHandler)
	ctxs := map[string]context.CancelFunc{}
	done := map[string]chan struct{}{}
	for _, id := range []string{"a", "b"} {
		ctx, cancel := context.WithCancel(context.Background())
		finished := make(chan struct{})
		ctxs[id], done[id] = cancel, finished
		go func() {
			defer close(finished)
			if err := Run(ctx, cfg(id), log, lead(id)); err != nil {
				t.Error(err)
			}
		}()
	}
	t.Cleanup(func() {
		for id, c := range ctxs {
			c()
			<-done[id]
		}
	})
	leader := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var ids []string
		for id, on := range leading {
			if on {
				ids = append(ids, id)
			}
		}
		return ids
	}
	harness.WaitFor(t, 20*time.Second, "one leader", func() bool { return len(leader()) == 1 })
	first := leader()[0]
	// It stays the only one while it renews.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if l := leader(); len(l) != 1 || l[0] != first {
			t.Fatalf("leaders %v, want %s alone", l, first)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctxs[first]()
	<-done[first]
	other := map[string]string{"a": "b", "b": "a"}[first]
	harness.WaitFor(t, 20*time.Second, "the other to take over", func() bool {
		l := leader()
		return len(l) == 1 && l[0] == other
	})
	mu.Lock()
	defer mu.Unlock()
	if len(history) != 2 {
		t.Errorf("leadership history %v, want %s then %s", history, first, other)
	}
}

func TestOffRunsAlone(t *testing.T) {
	called := false
	err := Run(context.Background(), config.LeaderElection{Enabled: "false"}, slog.New(slog.DiscardHandler), func(context.Context) { called = true })
	if err != nil || !called {
		t.Fatalf("called %v, err %v", called, err)
	}
	// auto without a cluster or kubeconfig: alone too.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	called = false
	err = Run(context.Background(), config.LeaderElection{Enabled: "auto"}, slog.New(slog.DiscardHandler), func(context.Context) { called = true })
	if err != nil || !called {
		t.Fatalf("auto: called %v, err %v", called, err)
	}
}

func TestCheckRequiresKubernetesWhenEnabled(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if err := Check(config.LeaderElection{Enabled: "true"}); err == nil {
		t.Error("enabled true outside a cluster without kubeconfig: no error")
	}
	if err := Check(config.LeaderElection{Enabled: "auto"}); err != nil {
		t.Errorf("auto: %v", err)
	}
}
