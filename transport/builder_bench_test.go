package transport

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/parse"
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

// BenchmarkBuildEncode measures the agent's work per event from a chunk to
// the bytes gRPC sends, in the e2e benchmark's mix: ten container files
// (CRI lines of ~120 bytes, Kubernetes coordinates, the input's fields)
// for one HAProxy file (rsyslog lines, the haproxy parser), chunks of 64
// lines taken in turn, batches of the default size built, sealed,
// encoded by the codec (into gRPC's buffer pool) and reset. One op is one
// event; the haproxy sub-benchmark is HAProxy lines alone.
func BenchmarkBuildEncode(b *testing.B) {
	const perChunk = 64
	node := "ip-10-0-1-17.eu-west-1.compute.internal"
	fields := map[string]*ferryv1.Value{"data_stream.dataset": {Kind: &ferryv1.Value_Str{Str: "kubernetes.container"}}, "service.environment": {Kind: &ferryv1.Value_Str{Str: "prod"}}}
	hapFields := map[string]*ferryv1.Value{"data_stream.dataset": {Kind: &ferryv1.Value_Str{Str: "haproxy.log"}}, "service.environment": {Kind: &ferryv1.Value_Str{Str: "prod"}}}
	var cri []*tail.Chunk
	for i := range 10 {
		f := &tail.File{ID: fmt.Sprintf("fd00-%07d-89abcdef", i), Path: fmt.Sprintf("/var/log/pods/shop_orders-%d_6f1c/app/0.log", i), Input: "containers", Fields: fields,
			Kube: &ferryv1.Kubernetes{Namespace: "shop", Pod: fmt.Sprintf("orders-%d", i), PodUid: "6f1c2a9e-0d4b-4c1e-9a57-3d2b8e7f4c10", Container: "app", ContainerId: "containerd://4f8e2c"}}
		msgs := make([]string, perChunk)
		for j := range msgs {
			msgs[j] = fmt.Sprintf("level=info caller=handler.go:87 msg=\"GET /api/v1/orders/%07d 200\" dur=1.23ms pad=%030d", j, j)
		}
		cri = append(cri, chunkOf(f, msgs...))
	}
	hapFile := &tail.File{ID: "fd00-7654321-0f86d081", Path: "/var/log/haproxy/haproxy.log", Input: "haproxy", Fields: hapFields}
	hmsgs := make([]string, perChunk)
	for j := range hmsgs {
		hmsgs[j] = fmt.Sprintf(`Nov 30 11:25:44 lb1 haproxy[4242]: 81.2.69.%d:%d [30/Nov/2026:11:25:44.%03d] fe_bench be_app/app%d 0/0/1/%d/%d %d %d - - ---- 3/2/1/1/0 0/0 "GET /bench?seq=%d&stamp=1764501944%09d HTTP/1.1"`,
			j%250, 40000+j, j, j%3+1, j%40, j%40+1, []int{200, 200, 200, 404, 502}[j%5], 512+j, j, j)
	}
	hap := chunkOf(hapFile, hmsgs...)
	hp := parse.NewHAProxyParser(time.UTC)
	run := func(b *testing.B, chunks []*tail.Chunk) {
		bd := newBuilder(2048, 1<<20)
		bd.parsers = map[string]Parser{"haproxy": hp.Refine}
		bd.releasers = map[string]func(map[string]*ferryv1.Value){"haproxy": hp.Release}
		bd.appenders = map[string]FieldAppender{"haproxy": hp}
		ovh := map[*tail.File]int{}
		for _, c := range chunks {
			ovh[c.File] = overhead(c.File)
		}
		seq := uint64(0)
		flush := func() {
			seq++
			p := bd.seal(node, seq)
			data, err := rawCodec{}.Marshal(p.wireMsg())
			if err != nil {
				b.Fatal(err)
			}
			data.Free()
			bd.reset()
		}
		events := 0
		b.ReportAllocs()
		for b.Loop() {
			for _, c := range chunks {
				for next := 0; next < len(c.Recs); {
					next = bd.add(node, c, next, ovh[c.File])
					if bd.ready() {
						flush()
					}
				}
				events += len(c.Recs)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
	}
	b.Run("mix", func(b *testing.B) { run(b, append(cri[:len(cri):len(cri)], hap)) })
	b.Run("cri", func(b *testing.B) { run(b, cri) })
	b.Run("haproxy", func(b *testing.B) { run(b, []*tail.Chunk{hap}) })
}
