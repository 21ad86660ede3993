package enrich_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/enrich"
	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/wal"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
	"github.com/ferrylogs/ferry/sinks/buffer"
)

// docs is a sink that keeps the documents it is given (with a fixed
// ingest time, so that two writes of one batch compare equal), or fails.
type docs struct {
	mu   sync.Mutex
	fail bool
	got  [][]byte
}

func (d *docs) Write(_ context.Context, b *event.Batch) (sinks.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return sinks.Result{}, errors.New("down")
	}
	for i := range b.Events {
		d.got = append(d.got, b.AppendDocument(nil, i, time.Unix(0, 0)))
	}
	return sinks.Result{Delivered: len(b.Events)}, nil
}

func (d *docs) Close(context.Context) error { return nil }

func (d *docs) n() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.got)
}

// TestReplayEnrichesIdentically: the disk buffer stores a batch as
// received, pods included; after a restart it replays it through the
// enrichment stage, and the documents are those the batch gives enriched
// directly: labels, environment and service included.
func TestReplayEnrichesIdentically(t *testing.T) {
	env, err := enrich.NewEnvironment("environment", `^(?:.+-)?(dev|staging|prod)$`, nil, "default")
	if err != nil {
		t.Fatal(err)
	}
	enr := enrich.New(enrich.Kubernetes{Cluster: "c"}, enrich.Service{}, env)
	b := &event.Batch{Node: "n", Seq: 1, Pods: []*ferryv1.Pod{{Uid: "u", Namespace: "shop", Name: "web-0",
		Labels: map[string]string{"app": "web", "team": "a.b"}, NamespaceLabels: map[string]string{"environment": "qa"},
		OwnerKind: "StatefulSet", OwnerName: "web", ContainerImages: map[string]string{"app": "web:1"}}}}
	for i := range 5 {
		b.Events = append(b.Events, &ferryv1.Event{Id: event.ID(nil, "n", "f", int64(i)), Message: []byte("x"),
			Kubernetes: &ferryv1.Kubernetes{Namespace: "shop", Pod: "web-0", PodUid: "u", Container: "app"}})
	}
	direct := enr.Enrich(context.Background(), b)
	var want [][]byte
	for i := range direct.Events {
		want = append(want, direct.AppendDocument(nil, i, time.Unix(0, 0)))
	}
	if !bytes.Contains(want[0], []byte(`"labels":{"app":"web","team":"a.b"}`)) || !bytes.Contains(want[0], []byte(`"environment":"qa"`)) {
		t.Fatalf("direct enrichment: %s", want[0])
	}

	dir := t.TempDir()
	open := func(d *docs) *buffer.Sink {
		s, err := buffer.New(enrich.NewSink(d, enr), buffer.Options{
			WAL:          wal.Options{Dir: dir, MaxBytes: 64 << 20, SegmentBytes: 1 << 20, Sync: wal.SyncAlways},
			RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond,
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	down := &docs{fail: true}
	s := open(down)
	if res, err := s.Write(context.Background(), b); err != nil || !res.OK() {
		t.Fatalf("Write = %+v, %v", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_ = s.Close(ctx) // the sink is down: the batch stays in the buffer
	cancel()

	up := &docs{}
	s = open(up) // replays
	deadline := time.Now().Add(10 * time.Second)
	for up.n() < len(want) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(up.got) != len(want) {
		t.Fatalf("replayed %d documents, want %d", len(up.got), len(want))
	}
	for i := range want {
		if !bytes.Equal(up.got[i], want[i]) {
			t.Errorf("document %d replayed:\n%s\nwant\n%s", i, up.got[i], want[i])
		}
	}
}
