//go:build unix

package buffer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/wal"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/proto/ferry/v1/wire"
	"github.com/ferrylogs/ferry/sinks"
)

// countSink counts the events delivered.
type countSink struct{ n atomic.Int64 }

func (c *countSink) Write(_ context.Context, b *event.Batch) (sinks.Result, error) {
	c.n.Add(int64(len(b.Events)))
	return sinks.Result{Delivered: len(b.Events)}, nil
}
func (c *countSink) Close(context.Context) error { return nil }

// doneSink signals each batch delivered.
type doneSink struct{ done chan struct{} }

func (d *doneSink) Write(_ context.Context, b *event.Batch) (sinks.Result, error) {
	d.done <- struct{}{}
	return sinks.Result{Delivered: len(b.Events)}, nil
}
func (d *doneSink) Close(context.Context) error { return nil }

// BenchmarkBuffer measures the buffer's own work per event, on batches of
// 1,000 container log events (~120 B, source, kubernetes, 20 pods): Append
// is Write of the bytes as received (what the aggregator does now) or of
// a decoded batch (encoded again, as before); Replay is the delivery of
// stored batches to a sink that only counts, decode included. The WAL syncs
// never (the disk is not measured). One op is one batch.
func BenchmarkBuffer(b *testing.B) {
	src := fullBatchBench()
	data, err := proto.Marshal(src)
	if err != nil {
		b.Fatal(err)
	}
	events := len(src.Events)
	newBuf := func(b *testing.B, inner sinks.Sink) *Sink {
		s, err := New(inner, Options{
			WAL: wal.Options{Dir: b.TempDir(), MaxBytes: 1 << 40, SegmentBytes: 64 << 20, Sync: wal.SyncNever},
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	var cpu0 time.Duration
	start := func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 = cpuTime()
	}
	// CPU time (of the process, garbage collection included) says more
	// than the wall clock on a shared machine.
	report := func(b *testing.B) {
		cpu := cpuTime() - cpu0
		b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*events), "cpu-ns/event")
	}
	for _, c := range []struct {
		name string
		eb   *event.Batch
	}{
		{"Append/raw", &event.Batch{Seq: src.Seq, Node: src.Node, Raw: data}},
		{"Append/decoded", &event.Batch{Seq: src.Seq, Node: src.Node, Events: src.Events, Pods: src.Pods}},
	} {
		b.Run(c.name, func(b *testing.B) {
			hung := &recorder{block: make(chan struct{})}
			s := newBuf(b, hung)
			defer func() {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				_ = s.Close(ctx)
			}()
			b.SetBytes(int64(len(data)))
			start(b)
			for b.Loop() {
				if _, err := s.Write(context.Background(), c.eb); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
	}
	// Deliver: Write and delivery at once, as the aggregator runs, each
	// batch delivered from the memory tail or read back from its file.
	for _, c := range []struct {
		name   string
		memory int64
	}{{"Deliver/memory", 0}, {"Deliver/file", -1}} {
		b.Run(c.name, func(b *testing.B) {
			cs := &countSink{}
			s, err := New(cs, Options{
				WAL:         wal.Options{Dir: b.TempDir(), MaxBytes: 1 << 40, SegmentBytes: 64 << 20, Sync: wal.SyncNever},
				MemoryBytes: c.memory,
			}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			eb := &event.Batch{Seq: src.Seq, Node: src.Node, Raw: data}
			b.SetBytes(int64(len(data)))
			start(b)
			n := 0
			for b.Loop() {
				if _, err := s.Write(context.Background(), eb); err != nil {
					b.Fatal(err)
				}
				n++
			}
			for cs.n.Load() < int64(n*events) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			report(b)
			_ = s.Close(context.Background())
		})
	}
	// Path: what a batch costs from the receiver's check to the sink,
	// with a delivery that keeps up (4 batches at most in flight): checked
	// by wire.Scan, written as bytes and decoded when delivered, from the
	// memory tail or read back from the file (a delivery that is behind);
	// or decoded by the receiver (wire.Decode) and delivered from the
	// memory tail as decoded (KeepsDecoded).
	for _, c := range []struct {
		name   string
		memory int64
		decode bool
	}{{"Path/scan+memory", 0, false}, {"Path/decode+kept", 0, true}, {"Path/scan+file", -1, false}} {
		b.Run(c.name, func(b *testing.B) {
			ds := &doneSink{done: make(chan struct{}, 1<<20)}
			s, err := New(ds, Options{
				WAL:         wal.Options{Dir: b.TempDir(), MaxBytes: 1 << 40, SegmentBytes: 64 << 20, Sync: wal.SyncNever},
				MemoryBytes: c.memory,
			}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			start(b)
			n := 0
			for b.Loop() {
				if n >= 4 {
					<-ds.done
				}
				var eb *event.Batch
				if c.decode && s.KeepsDecoded(len(data)) {
					wb, err := wire.Decode(data)
					if err != nil {
						b.Fatal(err)
					}
					eb = &event.Batch{Seq: wb.Seq, Node: wb.Node, Events: wb.Events, Pods: wb.Pods, Raw: data}
				} else {
					sum, err := wire.Scan(data, func(int, *ferryv1.Event) error { return nil })
					if err != nil {
						b.Fatal(err)
					}
					eb = &event.Batch{Seq: sum.Seq, Node: sum.Node, Raw: data}
				}
				if _, err := s.Write(context.Background(), eb); err != nil {
					b.Fatal(err)
				}
				n++
			}
			for range min(n, 4) {
				<-ds.done
			}
			b.StopTimer()
			report(b)
			_ = s.Close(context.Background())
		})
	}
	b.Run("Replay", func(b *testing.B) {
		dir := b.TempDir()
		opts := Options{WAL: wal.Options{Dir: dir, MaxBytes: 1 << 40, SegmentBytes: 64 << 20, Sync: wal.SyncNever}}
		w, err := wal.Open(opts.WAL)
		if err != nil {
			b.Fatal(err)
		}
		for range b.N {
			if _, err := w.Append(context.Background(), data); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		cs := &countSink{}
		b.SetBytes(int64(len(data)))
		start(b)
		s, err := New(cs, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		for cs.n.Load() < int64(b.N*events) {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		report(b)
		_ = s.Close(context.Background())
	})
}

// fullBatchBench is a batch as an agent sends container logs: 1,000 events
// from 20 pods, in runs of 50.
func fullBatchBench() *ferryv1.Batch {
	b := &ferryv1.Batch{Seq: 1, Node: "node-1"}
	for p := range 20 {
		b.Pods = append(b.Pods, &ferryv1.Pod{Uid: fmt.Sprintf("uid-%d", p), Namespace: "prod", Name: fmt.Sprintf("web-%d", p),
			Labels: map[string]string{"app": "web"}, OwnerKind: "Deployment", OwnerName: "web"})
	}
	for i := range 1000 {
		p := i / 50 // runs of one pod's lines, as an agent batches them
		b.Events = append(b.Events, &ferryv1.Event{Id: event.ID(nil, "node-1", "f", int64(i)), TimeUnixNano: 1.7e18 + int64(i),
			Message: []byte(strings.Repeat("x", 100) + fmt.Sprintf(" line %06d", i)), Stream: ferryv1.StreamName_STREAM_STDOUT,
			Source: &ferryv1.Source{Path: fmt.Sprintf("/var/log/pods/prod_web-%d_uid-%d/app/0.log", p, p), Offset: int64(i) * 130,
				Input: "containers", FileId: "2049:1234567:9f86d081884c7d65"},
			Kubernetes: &ferryv1.Kubernetes{Namespace: "prod", Pod: fmt.Sprintf("web-%d", p), PodUid: fmt.Sprintf("uid-%d", p),
				Container: "app", ContainerId: "containerd://0123456789abcdef"}})
	}
	return b
}

// cpuTime returns the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
