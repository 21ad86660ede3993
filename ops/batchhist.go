package ops

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// BatchHistogram is a Prometheus histogram that takes a batch of
// observations at once: each value is counted into its bucket locally and
// the batch's counts are merged under one lock, where a
// prometheus.Histogram pays atomic adds per value (measured at 8% of the
// aggregator's CPU when every event's latency was observed one by one).
// It exports exactly what a prometheus.Histogram with the same buckets
// would.
type BatchHistogram struct {
	desc  *prometheus.Desc
	upper []float64 // bucket upper bounds, ascending, without +Inf

	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

// maxBatchBuckets bounds the buckets of a BatchHistogram, so that one
// batch's counts fit in an array on the stack.
const maxBatchBuckets = 31

// NewBatchHistogram returns a histogram named name with the given bucket
// upper bounds (ascending, +Inf implied).
func NewBatchHistogram(name, help string, buckets []float64) *BatchHistogram {
	if len(buckets) > maxBatchBuckets {
		panic(fmt.Sprintf("histogram %s: %d buckets, at most %d", name, len(buckets), maxBatchBuckets))
	}
	for i := 1; i < len(buckets); i++ {
		if buckets[i] <= buckets[i-1] {
			panic(fmt.Sprintf("histogram %s: buckets not ascending at %d", name, i))
		}
	}
	return &BatchHistogram{
		desc:   prometheus.NewDesc(name, help, nil, nil),
		upper:  append([]float64(nil), buckets...),
		counts: make([]uint64, len(buckets)+1),
	}
}

// Observe adds one value.
func (h *BatchHistogram) Observe(v float64) {
	h.ObserveMany([]float64{v})
}

// ObserveMany adds every value of vs, merging them under one lock.
// NaN values are counted in the +Inf bucket, as prometheus.Histogram does.
func (h *BatchHistogram) ObserveMany(vs []float64) {
	if len(vs) == 0 {
		return
	}
	var local [maxBatchBuckets + 1]uint64
	var sum float64
	upper := h.upper
	for _, v := range vs {
		i := 0
		for i < len(upper) && !(v <= upper[i]) {
			i++
		}
		local[i]++
		sum += v
	}
	h.mu.Lock()
	for i := range h.counts {
		h.counts[i] += local[i]
	}
	h.sum += sum
	h.count += uint64(len(vs))
	h.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (h *BatchHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector.
func (h *BatchHistogram) Collect(ch chan<- prometheus.Metric) {
	cum := make(map[float64]uint64, len(h.upper))
	h.mu.Lock()
	var n uint64
	for i, u := range h.upper {
		n += h.counts[i]
		cum[u] = n
	}
	count, sum := h.count, h.sum
	h.mu.Unlock()
	ch <- prometheus.MustNewConstHistogram(h.desc, count, sum, cum)
}
