package elasticsearch

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/ferrylogs/ferry/pipeline/event"
)

// fakeBulkServer answers every _bulk request with one 201 per action line,
// in the shape bulkQuery asks for: a stand-in for Elasticsearch that costs
// little CPU, to measure the sink's own.
func fakeBulkServer(tb testing.TB) *httptest.Server {
	tb.Helper()
	var pool sync.Pool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf, _ := pool.Get().(*bytes.Buffer)
		if buf == nil {
			buf = new(bytes.Buffer)
		}
		defer pool.Put(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n := bytes.Count(buf.Bytes(), []byte("\n")) / 2
		out := make([]byte, 0, len(allCreated)+n*len(`{"create":{"status":201}},`)+2)
		out = append(out, allCreated...)
		for i := range n {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"create":{"status":201}}`...)
		}
		out = append(out, "]}"...)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		_, _ = w.Write(out)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// BenchmarkSinkWrite is the sink's whole path for a batch, from Write to
// the answer parsed: documents and action lines rendered, packed into a
// bulk request, sent over loopback to a server that reads the body and
// answers 201 for every item (fakeBulkServer), and the answer read. One op
// is a round of `writers` concurrent Writes of `batch` events (codecBatch:
// enriched container lines of one pod). cpu-ns/event is the process's CPU
// (the fake server's included) per event.
func BenchmarkSinkWrite(b *testing.B) {
	srv := fakeBulkServer(b)
	for _, bc := range []struct{ writers, batch int }{{1, 500}, {4, 1000}} {
		b.Run(fmt.Sprintf("writers=%d/batch=%d", bc.writers, bc.batch), func(b *testing.B) {
			cfg := testConfig()
			cfg.URLs = []string{srv.URL}
			cfg.SetupTemplates = false
			s, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			batches := make([]*event.Batch, bc.writers)
			for w := range batches {
				batches[w] = codecBatch(bc.batch)
			}
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := cpuNow()
			for b.Loop() {
				var wg sync.WaitGroup
				for _, eb := range batches {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := s.Write(ctx, eb)
						if err != nil || res.Delivered != len(eb.Events) {
							b.Errorf("Write: %+v, %v", res, err)
						}
					}()
				}
				wg.Wait()
			}
			n := float64(b.N * bc.writers * bc.batch)
			b.ReportMetric(float64(cpuNow()-cpu0)/n, "cpu-ns/event")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
		})
	}
}
