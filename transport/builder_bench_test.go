package transport

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// BenchmarkBuilder measures batch building alone: chunks of 512 events of
// ~110 bytes (as tail makes them of ~120-byte CRI lines) copied into
// batches of the default size (2048 events, 1 MiB), sealed and reset, the
// window's builders reused as the client reuses them. One op is one event;
// heap/builder is the memory a builder holds once it has built a batch.
func BenchmarkBuilder(b *testing.B) {
	const perChunk, maxEvents, maxBytes = 512, 2048, 1 << 20
	f := &tail.File{ID: "fe00-1-0123456789abcdef", Path: "/var/log/pods/ns_pod_uid/c/0.log", Input: "container-0",
		Kube: &ferryv1.Kubernetes{Namespace: "ns", Pod: "pod", Container: "c"}}
	msgs := make([]string, perChunk)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("level=info caller=handler.go:87 msg=\"GET /api/v1/orders/%07d 200\" dur=1.23ms pad=%040d", i, i)
	}
	c := chunkOf(f, msgs...)
	ovh := overhead(f)
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	bd := newBuilder(maxEvents, maxBytes)
	runtime.ReadMemStats(&ms1)
	heap := ms1.TotalAlloc - ms0.TotalAlloc
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n == 0 {
			next := 0
			for next < len(c.Recs) {
				next = bd.add("node-1", c, next, ovh)
				if bd.ready() {
					p := bd.seal("node-1", 1)
					if p.events == 0 {
						b.Fatal("empty batch")
					}
					bd.reset()
				}
			}
		}
		n = (n + 1) % perChunk
	}
	b.ReportMetric(float64(heap+uint64(cap(bd.arena)-min(maxBytes, preallocBytes))), "heap/builder")
}
