//go:build unix

package transport

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// BenchmarkReceive measures the server's receive path: batches of 1,000
// container log events (~120 B, source, kubernetes), already encoded, sent
// over loopback gRPC with 4 in flight, acked by a sink that keeps nothing;
// "decoded" for a sink that needs events (decoded by wire.Decode), "raw"
// for one that takes raw batches (a disk buffer: checked by wire.Scan,
// not decoded), "raw-kept" for one that takes raw batches but would keep
// them decoded (a disk buffer with room in its memory tail: decoded by
// wire.Decode, handed with the bytes). One op is one batch. cpu-ns/event is the CPU time of the
// whole process (the sending side too, which only writes bytes), garbage
// collection included: on a shared machine it says more than the wall
// clock.
func BenchmarkReceive(b *testing.B) {
	batch := &ferryv1.Batch{Seq: 1, Node: "node-1"}
	for i := range 1000 {
		p := i / 50
		batch.Events = append(batch.Events, &ferryv1.Event{Id: event.ID(nil, "node-1", "f", int64(i)), TimeUnixNano: 1.7e18 + int64(i),
			Message: []byte(strings.Repeat("x", 100) + fmt.Sprintf(" line %06d", i)), Stream: ferryv1.StreamName_STREAM_STDOUT,
			Source: &ferryv1.Source{Path: fmt.Sprintf("/var/log/pods/prod_web-%d_uid-%d/app/0.log", p, p), Offset: int64(i) * 130,
				Input: "containers", FileId: "2049:1234567:9f86d081884c7d65"},
			Kubernetes: &ferryv1.Kubernetes{Namespace: "prod", Pod: fmt.Sprintf("web-%d", p), PodUid: fmt.Sprintf("uid-%d", p),
				Container: "app", ContainerId: "containerd://0123456789abcdef"}})
	}
	for _, sink := range []struct {
		name string
		sink benchSink
	}{{"decoded", benchSink{}}, {"raw", benchSink{raw: true}}, {"raw-kept", benchSink{raw: true, keep: true}}} {
		b.Run(sink.name, func(b *testing.B) {
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			srv := NewServer(sink.sink, ServerConfig{EventLatency: benchObserver{}}, log)
			ts := &testServer{t: b, srv: srv, opts: []grpc.ServerOption{grpc.MaxRecvMsgSize(16 << 20)}}
			ts.serve("127.0.0.1:0")
			defer ts.stop()
			conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			st, err := conn.NewStream(ctx, &ferryv1.Ingest_ServiceDesc.Streams[0], ferryv1.Ingest_Stream_FullMethodName, grpc.ForceCodecV2(preEncoded{}))
			if err != nil {
				b.Fatal(err)
			}
			frames := make([][]byte, 8)
			for i := range frames {
				batch.Seq = uint64(i + 1)
				if frames[i], err = proto.Marshal(batch); err != nil {
					b.Fatal(err)
				}
			}
			acked := make(chan error, 1)
			go func() {
				for range b.N {
					var a ferryv1.Ack
					if err := st.RecvMsg(&a); err != nil || a.Code != ferryv1.Ack_CODE_OK {
						acked <- fmt.Errorf("ack %v: %v", &a, err)
						return
					}
				}
				acked <- nil
			}()
			b.SetBytes(int64(len(frames[0])))
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := range b.N {
				if err := st.SendMsg(frames[i%len(frames)]); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-acked; err != nil {
				b.Fatal(err)
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			b.ReportMetric(float64(b.N*len(batch.Events))/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*len(batch.Events)), "cpu-ns/event")
		})
	}
}

// cpuTime returns the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
