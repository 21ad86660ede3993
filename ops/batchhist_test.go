package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestBatchHistogramMatchesPrometheus: the same values, observed one by
// one into a prometheus.Histogram and in batches into a BatchHistogram,
// export the same count, sum and cumulative buckets.
func TestBatchHistogramMatchesPrometheus(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var random []float64
	for range 5000 {
		random = append(random, r.ExpFloat64()*2)
	}
	cases := []struct {
		name   string
		values []float64
	}{
		{"empty", nil},
		{"on the bounds", append([]float64{}, LatencyBuckets...)},
		{"below, above, negative, NaN, +Inf", []float64{0, -1, 1e9, math.Inf(1), math.NaN(), 0.0049999}},
		{"random", random},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Help: "h", Buckets: LatencyBuckets})
			got := NewBatchHistogram("x", "h", LatencyBuckets)
			for _, v := range c.values {
				want.Observe(v)
			}
			for i := 0; i < len(c.values); i += 7 { // batches of 7, the last shorter
				got.ObserveMany(c.values[i:min(i+7, len(c.values))])
			}
			w, g := collect(t, want), collect(t, got)
			if w.GetSampleCount() != g.GetSampleCount() {
				t.Fatalf("count %d, want %d", g.GetSampleCount(), w.GetSampleCount())
			}
			ws, gs := w.GetSampleSum(), g.GetSampleSum()
			if !(math.IsNaN(ws) && math.IsNaN(gs)) && math.Abs(ws-gs) > 1e-9*math.Max(1, math.Abs(ws)) {
				t.Fatalf("sum %v, want %v", gs, ws)
			}
			if len(w.Bucket) != len(g.Bucket) {
				t.Fatalf("%d buckets, want %d", len(g.Bucket), len(w.Bucket))
			}
			for i := range w.Bucket {
				if w.Bucket[i].GetUpperBound() != g.Bucket[i].GetUpperBound() || w.Bucket[i].GetCumulativeCount() != g.Bucket[i].GetCumulativeCount() {
					t.Fatalf("bucket %d: le=%v count %d, want le=%v count %d", i, g.Bucket[i].GetUpperBound(), g.Bucket[i].GetCumulativeCount(),
						w.Bucket[i].GetUpperBound(), w.Bucket[i].GetCumulativeCount())
				}
			}
		})
	}
}

func collect(t *testing.T, c prometheus.Collector) *dto.Histogram {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram()
}

// BenchmarkHistogramObserve: a batch of 500 latencies, one by one into a
// prometheus.Histogram against at once into a BatchHistogram.
func BenchmarkHistogramObserve(b *testing.B) {
	vs := make([]float64, 500)
	for i := range vs {
		vs[i] = float64(i%300) / 100
	}
	b.Run("prometheus", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Help: "h", Buckets: LatencyBuckets})
		for b.Loop() {
			for _, v := range vs {
				h.Observe(v)
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		h := NewBatchHistogram("x", "h", LatencyBuckets)
		for b.Loop() {
			h.ObserveMany(vs)
		}
	})
}
