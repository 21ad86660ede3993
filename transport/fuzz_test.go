package transport

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// FuzzBatchDecode feeds arbitrary bytes through what the aggregator does
// with a frame: decode it as a Batch, validate it, and for a valid batch
// build every event's document. Nothing may panic; a batch that passes
// validation must have well-formed ids.
func FuzzBatchDecode(f *testing.F) {
	good := &ferryv1.Batch{Seq: 1, Node: "n", Events: []*ferryv1.Event{{
		Id: event.ID(nil, "n", "f", 0), Message: []byte("hello"), TimeUnixNano: 1,
		Source:     &ferryv1.Source{Path: "/p", Offset: 3},
		Kubernetes: &ferryv1.Kubernetes{Namespace: "ns", Pod: "p"},
		Fields:     map[string]*ferryv1.Value{"a": event.Int(1), "b": event.Str("x")},
	}}}
	data, err := proto.Marshal(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte{})
	f.Add([]byte{0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	srv := NewServer(discardSink{}, ServerConfig{MaxMessageBytes: 1 << 20}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var b ferryv1.Batch
		if err := proto.Unmarshal(frame, &b); err != nil {
			return // gRPC answers a frame it cannot decode with an error status
		}
		if err := srv.validate(&b); err != nil {
			return
		}
		for _, e := range b.Events {
			if len(e.Id) != event.IDLen {
				t.Fatalf("validated event with a %d-byte id", len(e.Id))
			}
			_ = event.AppendDocument(nil, b.Node, e, time.Unix(0, 0))
		}
	})
}
