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

// haproxyEvent is a parsed HAProxy request log line with its typed fields,
// as pipeline/parse makes it.
func haproxyEvent() *ferryv1.Event {
	return &ferryv1.Event{
		Id:           ID(nil, "lb-1", "haproxy", 4200),
		TimeUnixNano: time.Date(2026, 11, 25, 10, 0, 0, 123000000, time.UTC).UnixNano(),
		Message:      []byte(`haproxy[1234]: 81.2.69.142:51234 [25/Nov/2026:10:00:00.123] fe~ be/s1 0/0/1/3/4 200 512 - - ---- 1/1/0/0/0 0/0 "GET /api/v1/orders/12345 HTTP/1.1"`),
		Source:       &ferryv1.Source{Input: "syslog-0", Offset: 4200},
		Fields: map[string]*ferryv1.Value{
			"source.ip": Str("81.2.69.142"), "source.port": Int(51234),
			"http.request.method": Str("GET"), "url.original": Str("/api/v1/orders/12345"), "url.path": Str("/api/v1/orders/12345"),
			"http.version": Str("1.1"), "http.response.status_code": Int(200), "http.response.bytes": Int(512),
			"event.duration": Int(4_000_000), "event.outcome": Str("success"),
			"haproxy.frontend_name": Str("fe~"), "haproxy.backend_name": Str("be"), "haproxy.server_name": Str("s1"),
			"haproxy.total_waiting_time_ms": Int(0), "haproxy.connection_wait_time_ms": Int(1),
			"haproxy.server_response_time_ms": Int(3), "haproxy.termination_state": Str("----"),
			"data_stream.dataset": Str("haproxy.log"),
		},
	}
}

// geoAddition is what GeoIP adds to an event from 81.2.69.142.
func geoAddition() *Addition {
	return NewAddition([]string{"source.geo", "source.as"}, []byte(`,"source.geo":{"continent_code":"EU","country_iso_code":"GB","country_name":"United Kingdom","city_name":"London","location":{"lat":51.5142,"lon":-0.0931},"timezone":"Europe/London"},"source.as":{"number":20712,"organization":{"name":"Andrews & Arnold Ltd"}}`))
}

// metricEvent is one node CPU sample.
func metricEvent() *ferryv1.Event {
	ts := time.Date(2026, 11, 25, 10, 0, 10, 0, time.UTC).UnixNano()
	return &ferryv1.Event{
		Id: MetricID(nil, "node-1", "system.cpu", "", ts), TimeUnixNano: ts, Kind: ferryv1.Kind_KIND_METRIC,
		Fields: map[string]*ferryv1.Value{
			"data_stream.dataset": Str("system.cpu"), "system.cpu.cores": Int(8),
			"system.cpu.total.pct": Float(1.25), "system.cpu.total.norm.pct": Float(0.15625),
			"system.cpu.user.pct": Float(0.9), "system.cpu.system.pct": Float(0.3), "system.cpu.iowait.pct": Float(0.05),
			"system.cpu.idle.pct": Float(6.75),
		},
	}
}

// BenchmarkDocuments is the document of one event per kind, as a sink
// writes it after enrichment: a container log line of an enriched pod, an
// HAProxy request with typed fields and its GeoIP addition, a node metric.
func BenchmarkDocuments(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch *Batch
	}{
		{"container", &Batch{Node: "node-1", Events: []*ferryv1.Event{benchEvent()}, Meta: []*Meta{benchMeta()}}},
		{"haproxy_geoip", &Batch{Node: "lb-1", Events: []*ferryv1.Event{haproxyEvent()}, Added: []*Addition{geoAddition()}}},
		{"metric", &Batch{Node: "node-1", Events: []*ferryv1.Event{metricEvent()}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			now := time.Now()
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = bc.batch.AppendDocument(buf[:0], 0, now)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkAppendString is the JSON string of a typical message, of one
// with a few characters to escape, and of one in another script.
func BenchmarkAppendString(b *testing.B) {
	for _, bc := range []struct{ name, s string }{
		{"ascii", `GET /api/v1/orders/12345 HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64)" 0.004 upstream=10.0.3.7:8080 request_id=8b1c2e0f`},
		{"escapes", "{\"level\":\"info\",\"msg\":\"order placed\",\"path\":\"C:\\\\shop\\\\orders\",\"id\":12345}\tdone\r\n"},
		{"utf8", `Заказ 12345 оформлен: 3 товара, сумма 4 560 ₽ — доставка завтра 注文を受け付けました`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := []byte(bc.s)
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				buf = appendBytes(buf[:0], s)
			}
		})
	}
}

// BenchmarkAppendTime is @timestamp of events a few microseconds apart.
func BenchmarkAppendTime(b *testing.B) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()
	buf := make([]byte, 0, 64)
	i := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		i++
		buf = appendTime(buf[:0], time.Unix(0, t0+i*7919))
	}
}
