package event

import (
	"testing"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// benchEvent is a typical container log line.
func benchEvent() *ferryv1.Event {
	return &ferryv1.Event{
		Id:           ID(nil, "node-1", "f", 7),
		TimeUnixNano: time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC).UnixNano(),
		Message:      []byte(`GET /api/v1/orders/12345 HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64)" 0.004`),
		Stream:       ferryv1.StreamName_STREAM_STDOUT,
		Source:       &ferryv1.Source{Path: "/var/log/containers/web-7d9f8c6b5-x2x4z_shop-prod_app-abc.log", Offset: 4242, Input: "container-0"},
		Kubernetes:   &ferryv1.Kubernetes{Namespace: "shop-prod", Pod: "web-7d9f8c6b5-x2x4z", PodUid: "u-1", Container: "app", ContainerId: "abc"},
	}
}

// BenchmarkAppendDocument is the document of one container line without
// enrichment, as every sink writes it.
func BenchmarkAppendDocument(b *testing.B) {
	ev := benchEvent()
	now := time.Now()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendDocument(buf[:0], "node-1", ev, now)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDataStream is the routing of one container line.
func BenchmarkDataStream(b *testing.B) {
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		_ = DataStream(ev)
	}
}

func benchMeta() *Meta {
	m := &Meta{ServiceName: "web", Environment: "prod", Cluster: "eu-1", NodeName: "node-1", OwnerKind: "Deployment", OwnerName: "web", ReplicaSet: "web-7d9f8c6b5",
		Labels: map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/version": "1.4.2",
			"app.kubernetes.io/part-of": "shop", "pod-template-hash": "7d9f8c6b5", "team": "checkout", "tier": "frontend"},
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "shop-prod", "environment": "prod"},
		Images:          map[string]string{"app": "registry.example.com/shop/web:1.4.2"}}
	m.Seal()
	return m
}

// BenchmarkAppendDocumentEnriched is BenchmarkAppendDocument with the
// enrichment of a pod with six labels, two namespace labels and an image.
func BenchmarkAppendDocumentEnriched(b *testing.B) {
	batch := &Batch{Node: "node-1", Events: []*ferryv1.Event{benchEvent()}, Meta: []*Meta{benchMeta()}}
	now := time.Now()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = batch.AppendDocument(buf[:0], 0, now)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDataStreamEnriched is the routing of an enriched container line.
func BenchmarkDataStreamEnriched(b *testing.B) {
	batch := &Batch{Node: "node-1", Events: []*ferryv1.Event{benchEvent()}, Meta: []*Meta{benchMeta()}}
	b.ReportAllocs()
	for b.Loop() {
		_ = batch.DataStream(0)
	}
}

// BenchmarkSeal is the encoding of one pod's enrichment, once per pod per
// batch.
func BenchmarkSeal(b *testing.B) {
	m := benchMeta()
	b.ReportAllocs()
	for b.Loop() {
		m.k8s, m.top, m.images = nil, nil, nil
		m.Seal()
	}
}
