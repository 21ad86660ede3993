package elasticsearch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
)

// BenchmarkBulk measures events/s into the real Elasticsearch. One iteration
// is one round of `writers` concurrent Writes (like that many agents) of
// `batch` events each; every event is new (no 409s).
func BenchmarkBulk(b *testing.B) {
	const writers = 4
	for _, batch := range []int{500, 2000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			cfg := testConfig()
			cfg.RetryInitial, cfg.RetryMax = 0, 0 // defaults
			cfg.FlushInterval = 20 * time.Millisecond
			s, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			ns := uniqueNS(b)
			// Create the data stream outside the timing.
			if _, err := s.Write(context.Background(), makeBatch(ns, -1, 1)); err != nil {
				b.Fatal(err)
			}
			var elapsed time.Duration
			events := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				batches := make([]*event.Batch, writers)
				for w := range batches {
					batches[w] = makeBatch(ns, (i*writers+w)*batch, batch)
				}
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for _, eb := range batches {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := s.Write(context.Background(), eb)
						if err != nil || !res.OK() || res.Delivered != len(eb.Events) {
							b.Errorf("Write: %v %+v", err, res)
						}
					}()
				}
				wg.Wait()
				elapsed += time.Since(start)
				events += writers * batch
			}
			b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
		})
	}
}
