//go:build unix

package wire

import (
	"testing"

	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// benchEncode runs encode on batch, reporting CPU per event.
func benchEncode(b *testing.B, batch *ferryv1.Batch, encode func(*ferryv1.Batch) ([]byte, error)) {
	data, err := encode(batch)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := encode(batch); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch.Events)), "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*len(batch.Events)), "cpu-ns/event")
}

// BenchmarkEncode compares AppendBatch with proto.Marshal (as gRPC's codec
// calls it: Size, then MarshalAppend into a buffer of that size) on the
// agent's two kinds of batch of 500 events: container lines with
// Kubernetes metadata, and HAProxy requests with their parsed fields
// (allocs are per batch).
func BenchmarkEncode(b *testing.B) {
	for _, c := range []struct {
		name  string
		batch *ferryv1.Batch
	}{{"cri-kube", criBatch(500)}, {"haproxy", haproxyBatch(500)}} {
		buf := make([]byte, 0, Size(c.batch))
		b.Run(c.name+"/proto.Marshal", func(b *testing.B) {
			benchEncode(b, c.batch, func(x *ferryv1.Batch) ([]byte, error) {
				proto.Size(x)
				return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf[:0], x)
			})
		})
		b.Run(c.name+"/AppendBatch", func(b *testing.B) {
			benchEncode(b, c.batch, func(x *ferryv1.Batch) ([]byte, error) { return AppendBatch(buf[:0], x) })
		})
	}
}
