package elasticsearch

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// codecBatch is n container lines of one enriched pod, as the sink gets
// them from enrichment.
func codecBatch(n int) *event.Batch {
	m := &event.Meta{ServiceName: "web", Environment: "prod", Cluster: "eu-1", NodeName: "node-1", OwnerKind: "Deployment", OwnerName: "web", ReplicaSet: "web-7d9f8c6b5",
		Labels: map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/version": "1.4.2", "pod-template-hash": "7d9f8c6b5", "team": "checkout"},
		Images: map[string]string{"app": "registry.example.com/shop/web:1.4.2"}}
	m.Seal()
	b := &event.Batch{Node: "node-1", Events: make([]*ferryv1.Event, n), Meta: make([]*event.Meta, n)}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()
	// One Kubernetes struct and one path for the pod's lines, as the wire
	// decoder gives them.
	k := &ferryv1.Kubernetes{Namespace: "shop", Pod: "web-7d9f8c6b5-x2x4z", PodUid: "8f1c2e0f-1b2c-4d5e-9f00-000000000001", Container: "app", ContainerId: "containerd://0000000000000000000000000000000000000000000000000000000000000001"}
	path := "/var/log/pods/shop_web-7d9f8c6b5-x2x4z_8f1c2e0f-1b2c-4d5e-9f00-000000000001/app/0.log"
	for i := range n {
		b.Events[i] = &ferryv1.Event{
			Id:           event.ID(nil, "node-1", "f", int64(i)*120),
			TimeUnixNano: t0 + int64(i)*13_000,
			Message:      []byte(`GET /api/v1/orders/` + strconv.Itoa(10000+i) + ` HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64)" 0.004`),
			Stream:       ferryv1.StreamName_STREAM_STDOUT,
			Source:       &ferryv1.Source{Path: path, Offset: int64(i) * 120, Input: "container-0"},
			Kubernetes:   k,
		}
		b.Meta[i] = m
	}
	return b
}

// perEvent reports ns/event for n events per iteration.
func perEvent(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/event")
}

// BenchmarkBuildItems is what a Write does before its items reach the
// flusher: every event's bulk lines (action line with data stream and _id,
// document) of a batch of 500 events, in buffers of writePool, given back
// as a Write does once answered ("fresh": new buffers each time, as before
// the pool).
func BenchmarkBuildItems(b *testing.B) {
	batch := codecBatch(500)
	w := newWaiter(context.Background(), len(batch.Events))
	now := time.Now()
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			wb := getWriteBufs()
			_ = wb.build(w, batch, now, false)
			wb.unref()
		}
		perEvent(b, len(batch.Events))
	})
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = buildItems(w, batch, now)
		}
		perEvent(b, len(batch.Events))
	})
}

// BenchmarkBulkBody is the body of one bulk request of 5,000 items (the
// default flush_events) from 10 Writes of 500, from their lines, written
// to a writer that discards it as the transport does (bodyReader.WriteTo).
func BenchmarkBulkBody(b *testing.B) {
	var items []*item
	for range 10 {
		batch := codecBatch(DefaultFlushEvents / 10)
		items = append(items, new(writeBufs).build(newWaiter(context.Background(), len(batch.Events)), batch, time.Now(), false)...)
	}
	var pool bodyPool
	size := 0
	b.ReportAllocs()
	for b.Loop() {
		body := pool.get()
		setBulkBody(body, items)
		r := body.reader()
		if _, err := r.(io.WriterTo).WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
		r.Close()
		size = body.size
		body.done()
	}
	b.SetBytes(int64(size))
	perEvent(b, len(items))
}

// BenchmarkBulkGzip is what compressing that body would cost (the sink
// does not: on the networks between an aggregator and its cluster the CPU
// is dearer than the bytes); it reports the compressed size.
func BenchmarkBulkGzip(b *testing.B) {
	batch := codecBatch(DefaultFlushEvents)
	var body []byte
	for _, it := range buildItems(newWaiter(context.Background(), len(batch.Events)), batch, time.Now()) {
		body = append(body, it.line...)
	}
	for _, level := range []int{gzip.BestSpeed, gzip.DefaultCompression} {
		b.Run(fmt.Sprint("level=", level), func(b *testing.B) {
			var out bytes.Buffer
			zw, _ := gzip.NewWriterLevel(io.Discard, level)
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				zw.Reset(&out)
				zw.Write(body)
				zw.Close()
			}
			b.SetBytes(int64(len(body)))
			b.ReportMetric(float64(out.Len())/float64(len(body)), "ratio")
			perEvent(b, DefaultFlushEvents)
		})
	}
}

// bulkResponse is Elasticsearch's answer (with bulkQuery's filter_path) to
// n creates, every dupEvery-th a 409 and every badEvery-th a 400 (0: none).
func bulkResponse(n, dupEvery, badEvery int) []byte {
	var out bytes.Buffer
	out.WriteString(`{"errors":` + strconv.FormatBool(dupEvery > 0 || badEvery > 0) + `,"items":[`)
	for i := range n {
		if i > 0 {
			out.WriteByte(',')
		}
		switch {
		case badEvery > 0 && i%badEvery == badEvery-1:
			out.WriteString(`{"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"[1:42] failed to parse field [http.response.status_code] of type [long] in document with id 'AAAAAAAAAAAAAAAAAAAAAA'. Preview of field's value: 'x'"}}}`)
		case dupEvery > 0 && i%dupEvery == dupEvery-1:
			out.WriteString(`{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[AAAAAAAAAAAAAAAAAAAAAA]: version conflict, document already exists (current version [1])"}}}`)
		default:
			out.WriteString(`{"create":{"status":201}}`)
		}
	}
	out.WriteString(`]}`)
	return out.Bytes()
}

// BenchmarkParseBulk is reading the answer to a bulk of 5,000 items: all
// created, 1 in 100 refused (dead-lettered), and every one a duplicate
// (a disk buffer replayed after a crash).
func BenchmarkParseBulk(b *testing.B) {
	const n = DefaultFlushEvents
	for _, bc := range []struct {
		name          string
		dup, bad      int
		wantDelivered int
	}{{"all_created", 0, 0, n}, {"some_errors", 0, 100, n - n/100}, {"all_duplicates", 1, 0, n}} {
		b.Run(bc.name, func(b *testing.B) {
			body := bulkResponse(n, bc.dup, bc.bad)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := parseBulk(body, n); err != nil {
					b.Fatal(err)
				}
			}
			perEvent(b, n)
		})
	}
}
