package enrich

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// benchBatch is 500 container lines of 5 pods, runs of 100 per pod, each
// pod with typical labels.
func benchBatch() *event.Batch {
	b := &event.Batch{Node: "node-1", Seq: 1}
	for p := range 5 {
		pod := &ferryv1.Pod{
			Uid: fmt.Sprint("uid-", p), Namespace: "shop-prod", Name: fmt.Sprintf("web%d-7d9f8c6b5-x2x4z", p), NodeName: "node-1",
			Labels: map[string]string{"app.kubernetes.io/name": fmt.Sprint("web", p), "app.kubernetes.io/version": "1.4.2",
				"app.kubernetes.io/part-of": "shop", "pod-template-hash": "7d9f8c6b5", "team": "checkout", "tier": "frontend"},
			NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "shop-prod", "environment": "prod"},
			OwnerKind:       "Deployment", OwnerName: fmt.Sprint("web", p),
			ContainerImages: map[string]string{"app": "registry.example.com/shop/web:1.4.2"},
		}
		b.Pods = append(b.Pods, pod)
		for i := range 100 {
			b.Events = append(b.Events, &ferryv1.Event{
				Id:           event.ID(nil, "node-1", pod.Name, int64(i)),
				TimeUnixNano: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano(),
				Message:      []byte(`GET /api/v1/orders/12345 HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64)" 0.004`),
				Stream:       ferryv1.StreamName_STREAM_STDOUT,
				Source:       &ferryv1.Source{Path: "/var/log/containers/" + pod.Name + "_shop-prod_app-abc.log", Offset: int64(i) * 100, Input: "container-0"},
				Kubernetes:   &ferryv1.Kubernetes{Namespace: "shop-prod", Pod: pod.Name, PodUid: pod.Uid, Container: "app", ContainerId: "abc"},
			})
		}
	}
	return b
}

func enricher(b testing.TB) *Enricher {
	return New(Kubernetes{Cluster: "eu-1"}, Service{}, rules(b))
}

// BenchmarkEnrich is the enrichment of a batch of 500 events (5 pods);
// ns/event and allocs/event are per event. "shared": a pod's events share
// one Kubernetes struct, as the wire decoder gives them; "distinct": each
// event has its own.
func BenchmarkEnrich(b *testing.B) {
	shared := benchBatch()
	for i, ev := range shared.Events {
		if i%100 > 0 {
			ev.Kubernetes = shared.Events[i-1].Kubernetes
		}
	}
	for _, bc := range []struct {
		name  string
		batch *event.Batch
	}{{"distinct", benchBatch()}, {"shared", shared}} {
		b.Run(bc.name, func(b *testing.B) {
			batch, e := bc.batch, enricher(b)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_ = e.Enrich(ctx, batch)
			}
			perEvent(b, len(batch.Events))
		})
	}
}

// BenchmarkEnrichedDocuments is enrichment plus every event's document and
// data stream, as the Elasticsearch sink makes them.
func BenchmarkEnrichedDocuments(b *testing.B) {
	batch, e := benchBatch(), enricher(b)
	ctx := context.Background()
	buf := make([]byte, 0, 1<<20)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		out := e.Enrich(ctx, batch)
		buf = buf[:0]
		for i := range out.Events {
			buf = out.AppendDocument(buf, i, now)
			_ = out.DataStream(i)
		}
	}
	perEvent(b, len(batch.Events))
}

// BenchmarkPlainDocuments is the same batch's documents and data streams
// without enrichment, for comparison.
func BenchmarkPlainDocuments(b *testing.B) {
	batch := benchBatch()
	buf := make([]byte, 0, 1<<20)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for i := range batch.Events {
			buf = batch.AppendDocument(buf, i, now)
			_ = batch.DataStream(i)
		}
	}
	perEvent(b, len(batch.Events))
}

func perEvent(b *testing.B, n int) {
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/event")
}
