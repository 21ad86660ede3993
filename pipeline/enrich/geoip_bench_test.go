package enrich

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/test/geoipdb"
)

// benchAddrs are client addresses as a public site sees them: most
// located (with and without an ASN), some unknown to the databases, some
// private (proxies).
var benchAddrs = []string{
	"81.2.69.142", "81.2.69.143", "81.2.69.160", "81.2.69.192", "216.160.83.56", "216.160.83.58",
	"89.160.20.112", "89.160.20.115", "89.160.20.128", "89.160.20.200", "2001:218::1", "2001:218::2",
	"8.8.8.8", "1.1.1.1", "10.0.0.7", "192.168.1.20",
}

// benchGeoIP opens MaxMind's test databases (or, without them, ones
// built like them) with cacheSize.
func benchGeoIP(b *testing.B, cacheSize int) *GeoIP {
	city, asn, _, err := geoipdb.Databases(".", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return newGeoIP(b, GeoIPConfig{CityDB: city, ASNDB: asn, CacheSize: cacheSize})
}

// haproxyBatch is 500 HAProxy request events as the parser types them,
// source.ip taken in turn from benchAddrs.
func haproxyBatch() *event.Batch {
	b := &event.Batch{Node: "lb-1", Seq: 1}
	for i := range 500 {
		b.Events = append(b.Events, &ferryv1.Event{
			Id:           event.ID(nil, "lb-1", "haproxy", int64(i)),
			TimeUnixNano: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano(),
			Message:      []byte(`haproxy[1234]: 81.2.69.142:51234 [25/Nov/2026:10:00:00.123] fe~ be/s1 0/0/1/3/4 200 512 - - ---- 1/1/0/0/0 0/0 "GET /api/v1/orders/12345 HTTP/1.1"`),
			Source:       &ferryv1.Source{Input: "syslog-0", Offset: int64(i) * 200},
			Fields: map[string]*ferryv1.Value{
				"source.ip": event.Str(benchAddrs[i%len(benchAddrs)]), "source.port": event.Int(51234),
				"http.request.method": event.Str("GET"), "url.original": event.Str("/api/v1/orders/12345"), "url.path": event.Str("/api/v1/orders/12345"),
				"http.response.status_code": event.Int(200), "http.response.bytes": event.Int(512), "event.duration": event.Int(4_000_000),
				"haproxy.frontend_name": event.Str("fe~"), "haproxy.backend_name": event.Str("be"), "haproxy.server_name": event.Str("s1"),
				"data_stream.dataset": event.Str("haproxy.log"),
			},
		})
	}
	return b
}

// BenchmarkGeoIPLookups is lookups per second through the stage (field,
// address parsing, cache, databases) over a batch of 500 events: cold,
// every lookup missing the cache (a cache of one entry and 16 addresses in
// turn, so each lookup also inserts and evicts), and warm, every lookup a
// hit. Private addresses are not looked up and not counted.
func BenchmarkGeoIPLookups(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"cold", 1}, {"warm", 10000}} {
		b.Run(bc.name, func(b *testing.B) {
			g := benchGeoIP(b, bc.cache)
			batch := haproxyBatch()
			out := make([]*event.Addition, len(batch.Events))
			ctx := context.Background()
			g.AddTo(ctx, batch.Events, out) // warms the warm cache
			hits, misses := g.Hits.Load(), g.Misses.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(out)
				g.AddTo(ctx, batch.Events, out)
			}
			b.StopTimer()
			h, m := g.Hits.Load()-hits, g.Misses.Load()-misses
			if bc.name == "cold" && h != 0 || bc.name == "warm" && m != 0 {
				b.Fatalf("%s: %d hits, %d misses", bc.name, h, m)
			}
			b.ReportMetric(float64(h+m)/b.Elapsed().Seconds(), "lookups/s")
		})
	}
}

// BenchmarkHAProxyDocuments is enrichment plus every document and data
// stream of 500 HAProxy events, as the Elasticsearch sink makes them, with
// GeoIP (warm cache) and without; ns/event per event.
func BenchmarkHAProxyDocuments(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprint("geoip=", on), func(b *testing.B) {
			e := enricher(b)
			if on {
				e.PerEvent(benchGeoIP(b, 10000))
			}
			batch := haproxyBatch()
			ctx := context.Background()
			buf := make([]byte, 0, 1<<20)
			now := time.Now()
			_ = e.Enrich(ctx, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				out := e.Enrich(ctx, batch)
				buf = buf[:0]
				for i := range out.Events {
					buf = out.AppendDocument(buf, i, now)
					_ = out.DataStream(i)
				}
			}
			perEvent(b, len(batch.Events))
		})
	}
}

// BenchmarkEnrichedDocumentsWithGeoIP is BenchmarkEnrichedDocuments (500
// container lines without typed fields) with a GeoIP stage configured:
// it must cost (and allocate) nothing more.
func BenchmarkEnrichedDocumentsWithGeoIP(b *testing.B) {
	batch, e := benchBatch(), enricher(b).PerEvent(benchGeoIP(b, 10000))
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
