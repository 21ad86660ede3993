//go:build unix

package wire

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// benchBatch is what an agent sends for container logs: 1,000 events of
// about 120 bytes from 20 pods, with their pods' metadata; the events of a
// pod come in runs of 50 (an agent batches its files' chunks).
func benchBatch() *ferryv1.Batch {
	b := &ferryv1.Batch{Seq: 1, Node: "node-1"}
	for p := range 20 {
		b.Pods = append(b.Pods, &ferryv1.Pod{Uid: fmt.Sprintf("uid-%d", p), Namespace: "prod", Name: fmt.Sprintf("web-%d", p),
			NodeName: "node-1", Labels: map[string]string{"app": "web", "pod-template-hash": "7d9f8"}, OwnerKind: "Deployment", OwnerName: "web",
			ContainerImages: map[string]string{"app": "nginx:1.27"}})
	}
	for i := range 1000 {
		p := i / 50
		b.Events = append(b.Events, &ferryv1.Event{Id: id16, TimeUnixNano: 1.7e18 + int64(i),
			Message: []byte(strings.Repeat("x", 100) + fmt.Sprintf(" line %06d", i)), Stream: ferryv1.StreamName_STREAM_STDOUT,
			Source: &ferryv1.Source{Path: fmt.Sprintf("/var/log/pods/prod_web-%d_uid-%d/app/0.log", p, p), Offset: int64(i) * 130,
				Input: "containers", FileId: "2049:1234567:9f86d081884c7d65"},
			Kubernetes: &ferryv1.Kubernetes{Namespace: "prod", Pod: fmt.Sprintf("web-%d", p), PodUid: fmt.Sprintf("uid-%d", p),
				Container: "app", ContainerId: "containerd://0123456789abcdef"}})
	}
	return b
}

// benchBatchFields is benchBatch with an HAProxy line's typed fields (40:
// 25 strings, 14 integers, a double) on every tenth event, as an agent
// that parses one HAProxy log beside its container logs sends them.
func benchBatchFields() *ferryv1.Batch {
	b := benchBatch()
	for i, e := range b.Events {
		if i%10 != 0 {
			continue
		}
		e.Fields = map[string]*ferryv1.Value{}
		for f := range 25 {
			e.Fields[fmt.Sprintf("haproxy.field_%02d", f)] = &ferryv1.Value{Kind: &ferryv1.Value_Str{Str: fmt.Sprintf("value-%d", i+f)}}
		}
		for f := range 14 {
			e.Fields[fmt.Sprintf("haproxy.count_%02d", f)] = &ferryv1.Value{Kind: &ferryv1.Value_Int{Int: int64(i * f)}}
		}
		e.Fields["haproxy.ratio"] = &ferryv1.Value{Kind: &ferryv1.Value_Double{Double: float64(i) / 7}}
	}
	return b
}

func benchDecode(b *testing.B, decode func([]byte) error) {
	benchDecodeOf(b, benchBatch(), decode)
}

func benchDecodeOf(b *testing.B, batch *ferryv1.Batch, decode func([]byte) error) {
	data, err := proto.Marshal(batch)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		if err := decode(data); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
	// The machine may be shared: CPU time (the process's, garbage
	// collection included) says more than the wall clock.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*1000), "cpu-ns/event")
}

// cpuTime returns the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecode compares the decoders on a batch of 1,000 events (allocs
// are per batch).
func BenchmarkDecode(b *testing.B) {
	b.Run("proto.Unmarshal", func(b *testing.B) {
		benchDecode(b, func(d []byte) error { return proto.Unmarshal(d, new(ferryv1.Batch)) })
	})
	b.Run("Decode", func(b *testing.B) {
		benchDecode(b, func(d []byte) error { _, err := Decode(d); return err })
	})
	b.Run("DecodeTrusted", func(b *testing.B) {
		benchDecode(b, func(d []byte) error { _, err := DecodeTrusted(d); return err })
	})
	b.Run("DecodeRawFields", func(b *testing.B) {
		benchDecode(b, func(d []byte) error { _, err := DecodeRawFields(d); return err })
	})
	b.Run("DecodeTrusted/fields", func(b *testing.B) {
		benchDecodeOf(b, benchBatchFields(), func(d []byte) error { _, err := DecodeTrusted(d); return err })
	})
	b.Run("Decode/fields", func(b *testing.B) {
		benchDecodeOf(b, benchBatchFields(), func(d []byte) error { _, err := Decode(d); return err })
	})
	b.Run("DecodeRawFields/fields", func(b *testing.B) {
		benchDecodeOf(b, benchBatchFields(), func(d []byte) error { _, err := DecodeRawFields(d); return err })
	})
	b.Run("DecodeTrustedRawFields/fields", func(b *testing.B) {
		benchDecodeOf(b, benchBatchFields(), func(d []byte) error { _, err := DecodeTrustedRawFields(d); return err })
	})
	b.Run("Scan", func(b *testing.B) {
		benchDecode(b, func(d []byte) error {
			_, err := Scan(d, func(int, *ferryv1.Event) error { return nil })
			return err
		})
	})
	b.Run("Scan/fields", func(b *testing.B) {
		benchDecodeOf(b, benchBatchFields(), func(d []byte) error {
			_, err := Scan(d, func(int, *ferryv1.Event) error { return nil })
			return err
		})
	})
}
