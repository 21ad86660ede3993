package ndjson_test

import (
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks/ndjson"
)

// BenchmarkWrite is one Write of 500 container lines of an enriched pod:
// their documents and one write call (to io.Discard).
func BenchmarkWrite(b *testing.B) {
	m := &event.Meta{ServiceName: "web", Environment: "prod", Cluster: "eu-1", NodeName: "node-1", OwnerKind: "Deployment", OwnerName: "web",
		Labels: map[string]string{"app.kubernetes.io/name": "web", "team": "checkout"}, Images: map[string]string{"app": "registry.example.com/shop/web:1.4.2"}}
	m.Seal()
	const n = 500
	batch := &event.Batch{Node: "node-1", Events: make([]*ferryv1.Event, n), Meta: make([]*event.Meta, n)}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()
	for i := range n {
		batch.Events[i] = &ferryv1.Event{
			Id:           event.ID(nil, "node-1", "f", int64(i)*120),
			TimeUnixNano: t0 + int64(i)*13_000,
			Message:      []byte(`GET /api/v1/orders/` + strconv.Itoa(10000+i) + ` HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64)" 0.004`),
			Stream:       ferryv1.StreamName_STREAM_STDOUT,
			Source:       &ferryv1.Source{Path: "/var/log/containers/web-7d9f8c6b5-x2x4z_shop_app-abc.log", Offset: int64(i) * 120, Input: "container-0"},
			Kubernetes:   &ferryv1.Kubernetes{Namespace: "shop", Pod: "web-7d9f8c6b5-x2x4z", PodUid: "u-1", Container: "app", ContainerId: "abc"},
		}
		batch.Meta[i] = m
	}
	s := ndjson.NewWriter("bench", io.Discard)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
}
