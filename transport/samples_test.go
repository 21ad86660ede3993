package transport

import (
	"context"
	"errors"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
)

// sampleOf returns a metric sample of n events whose Done records it.
func sampleOf(name string, n int, done *doneLog) *event.Sample {
	s := &event.Sample{Done: func() { done.add(name) }}
	for i := range n {
		s.Events = append(s.Events, &ferryv1.Event{
			Id:           event.MetricID(nil, testNode, "system."+name, string(rune('a'+i)), 1),
			TimeUnixNano: 1,
			Kind:         ferryv1.Kind_KIND_METRIC,
			Fields:       map[string]*ferryv1.Value{"system.load.1": event.Float(float64(i))},
		})
	}
	return s
}

type doneLog struct {
	mu    sync.Mutex
	names []string
}

func (d *doneLog) add(n string) { d.mu.Lock(); d.names = append(d.names, n); d.mu.Unlock() }
func (d *doneLog) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.names...)
}

// runWithSamples runs a client over a chunk channel and a sample channel.
func runWithSamples(t *testing.T, addr string, mk *chunkMaker, cfg ClientConfig) (chan *tail.Chunk, chan *event.Sample, *recCommitter, *wireLog) {
	t.Helper()
	log, _ := newLogger(t, "client")
	w := newWireLog()
	cfg.Address, cfg.Node = addr, testNode
	cfg.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStreamInterceptor(w.interceptor())}
	com := &recCommitter{mk: mk, w: w}
	c, err := NewClient(cfg, com, log)
	if err != nil {
		t.Fatal(err)
	}
	in, samples := make(chan *tail.Chunk, 4), make(chan *event.Sample, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.RunWithSamples(ctx, in, samples) }()
	t.Cleanup(func() {
		cancel()
		<-done
		c.Close()
		for len(in) > 0 {
			(<-in).Release()
		}
	})
	return in, samples, com, w
}

// metricIDs returns the ids of the metric events written, by attempt.
func metricIDs(ws []sinkWrite) (first, again map[string]int) {
	first, again = map[string]int{}, map[string]int{}
	for _, w := range ws {
		for _, e := range w.events {
			if e.GetKind() != ferryv1.Kind_KIND_METRIC {
				continue
			}
			if w.attempt == 0 {
				first[string(e.GetId())]++
			} else {
				again[string(e.GetId())]++
			}
		}
	}
	return first, again
}

// TestSamplesShareTheStream: metric samples and lines travel on one
// stream; file offsets are committed as before; a sample larger than a
// batch is split and its Done runs once, after its last batch is acked.
func TestSamplesShareTheStream(t *testing.T) {
	sink := &recSink{}
	srv := startServer(t, sink, ServerConfig{})
	mk := newChunkMaker(t)
	in, samples, com, _ := runWithSamples(t, srv.addr, mk, ClientConfig{BatchMaxEvents: 4, MaxInflight: 2})
	var done doneLog
	f := testFile("a")
	in <- mk.chunk(f, 0, "one", "two")
	samples <- sampleOf("cpu", 3, &done)
	samples <- sampleOf("load", 10, &done) // three batches at most 4 events each
	waitFor(t, "both samples acknowledged", func() bool { return len(done.list()) == 2 })
	waitFor(t, "the file committed", func() bool { return com.count() == 1 })
	com.check(t)
	if got := done.list(); got[0] != "cpu" || got[1] != "load" {
		t.Errorf("Done order %v, want cpu then load", got)
	}
	first, again := metricIDs(sink.snapshot())
	if len(first) != 13 || len(again) != 0 {
		t.Errorf("%d distinct metric events written once, %d again; want 13 and 0", len(first), len(again))
	}
	for id, n := range first {
		if n != 1 {
			t.Errorf("metric event %x written %d times", id, n)
		}
	}
	logs := 0
	for _, w := range sink.snapshot() {
		if len(w.events) > 4 {
			t.Errorf("batch of %d events, max 4", len(w.events))
		}
		for _, e := range w.events {
			if e.GetKind() == ferryv1.Kind_KIND_LOG {
				logs++
			}
		}
	}
	if logs != 2 {
		t.Errorf("%d lines written, want 2", logs)
	}
}

// TestSampleRetriedKeepsIDs: a sample whose batch the aggregator asks to
// retry is not Done until it is acknowledged, and is sent again with the
// same ids (so a sink deduping by id stores it once).
func TestSampleRetriedKeepsIDs(t *testing.T) {
	var mu sync.Mutex
	failures := 1
	sink := &recSink{hook: func(ctx context.Context, b *event.Batch, attempt int) (sinks.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			return sinks.Result{}, errors.New("destination down")
		}
		return sinks.Result{Delivered: len(b.Events)}, nil
	}}
	srv := startServer(t, sink, ServerConfig{})
	_, samples, _, w := runWithSamples(t, srv.addr, newChunkMaker(t), ClientConfig{})
	var done doneLog
	samples <- sampleOf("cpu", 3, &done)
	waitFor(t, "the sample acknowledged", func() bool { return len(done.list()) == 1 })
	if code, ok := w.finalAck(1); !ok || code != ferryv1.Ack_CODE_OK {
		t.Fatalf("batch 1: final ack %v %v", code, ok)
	}
	if n := len(w.acksOf(1)); n < 2 {
		t.Fatalf("batch 1 got %d acks, want a retry first", n)
	}
	first, again := metricIDs(sink.snapshot())
	if len(first) != 3 || len(again) != 3 {
		t.Fatalf("ids: %d first, %d again; want 3 and 3", len(first), len(again))
	}
	for id := range again {
		if first[id] != 1 {
			t.Errorf("re-sent id %x not among the first attempt's", id)
		}
	}
	if got := done.list(); len(got) != 1 {
		t.Errorf("Done ran %d times", len(got))
	}
}

// TestSampleCarriesPods: a batch carries the Kubernetes metadata of the
// pods of its metric events once each, as it does for lines; a pod
// without metadata and a node metric add none.
func TestSampleCarriesPods(t *testing.T) {
	podA := &ferryv1.Pod{Uid: "uid-a", Namespace: "shop", Name: "web-1", Labels: map[string]string{"app": "web"}}
	pods := &fakePods{pods: map[string]*ferryv1.Pod{"uid-a": podA}}
	s := &session{c: &Client{cfg: ClientConfig{Node: testNode, Pods: pods, MaxInflight: 8, BatchMaxEvents: 100, BatchMaxBytes: 1 << 20}}, ctx: context.Background()}
	s.cur = s.newBuilder()
	s.nextSeq = 1
	smp := sampleOf("cpu", 1, &doneLog{}) // a node metric
	for _, k := range []*ferryv1.Kubernetes{
		{PodUid: "uid-a"}, {PodUid: "uid-a", ContainerId: "c1"}, {PodUid: "uid-a", ContainerId: "c2"}, {PodUid: "uid-gone", ContainerId: "c3"},
	} {
		ev := sampleOf("x", 1, &doneLog{}).Events[0]
		ev.Id, ev.Kubernetes = event.MetricID(nil, testNode, "kubernetes.container", k.PodUid+"/"+k.ContainerId, 1), k
		smp.Events = append(smp.Events, ev)
	}
	s.pendS, s.pendSAt = smp, 0
	s.fill(true)
	if len(s.queue) != 1 {
		t.Fatalf("%d batches, want 1", len(s.queue))
	}
	p := s.queue[0]
	raw, err := proto.Marshal(p.msg)
	if err != nil {
		t.Fatal(err)
	}
	var onWire ferryv1.Batch
	if err := proto.Unmarshal(raw, &onWire); err != nil {
		t.Fatal(err)
	}
	if len(onWire.Pods) != 1 || !proto.Equal(onWire.Pods[0], podA) {
		t.Fatalf("pods %v, want pod uid-a once", onWire.Pods)
	}
	if len(onWire.Events) != 5 {
		t.Errorf("%d events, want 5", len(onWire.Events))
	}
	if est, n := p.b.bytes, proto.Size(p.msg); est < n {
		t.Errorf("estimated %d bytes, encoded %d: the pod's size is not counted", est, n)
	}
}
