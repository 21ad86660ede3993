package transport

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// FuzzBatchDecode feeds arbitrary bytes through what the aggregator does
// with a frame: decode it as a Batch (Server.decode), validate it, and for
// a valid batch build every event's document. Nothing may panic; the
// server takes exactly the frames proto.Unmarshal takes; a server whose
// sink takes raw batches (checked by wire.Scan, not decoded) judges every
// frame as one that decodes it, and so does one whose sink takes raw
// batches decoded (KeepsDecoded); a batch that passes validation must have
// well-formed ids.
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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := NewServer(discardSink{}, ServerConfig{MaxMessageBytes: 1 << 20}, log)
	rawSrv := NewServer(benchSink{raw: true}, ServerConfig{MaxMessageBytes: 1 << 20, EventLatency: benchObserver{}}, log)
	keptSrv := NewServer(benchSink{raw: true, keep: true}, ServerConfig{MaxMessageBytes: 1 << 20}, log)
	f.Fuzz(func(t *testing.T, frame []byte) {
		var b ferryv1.Batch
		perr := proto.Unmarshal(frame, &b)
		r, err := srv.decode(frame)
		rr, rerr := rawSrv.decode(frame)
		kr, kerr := keptSrv.decode(frame)
		if (perr == nil) != (err == nil) || (err == nil) != (rerr == nil) || (err == nil) != (kerr == nil) {
			t.Fatalf("proto.Unmarshal: %v; decode: %v; raw decode: %v; kept decode: %v", perr, err, rerr, kerr)
		}
		if err != nil {
			return // gRPC answers a frame it cannot decode with an error status
		}
		if fmt.Sprint(r.invalid) != fmt.Sprint(kr.invalid) || r.events != kr.events || len(kr.batch.Events) != r.events || kr.batch.Raw == nil {
			t.Fatalf("decoded: %v, %d events; kept: %v, %d events (%d decoded)", r.invalid, r.events, kr.invalid, kr.events, len(kr.batch.Events))
		}
		if (r.invalid == nil) != (rr.invalid == nil) || r.events != rr.events || r.batch.Seq != rr.batch.Seq || r.batch.Node != rr.batch.Node {
			t.Fatalf("decoded: %v, %d events; raw: %v, %d events", r.invalid, r.events, rr.invalid, rr.events)
		}
		if r.invalid != nil {
			if r.invalid.Error() != rr.invalid.Error() {
				t.Fatalf("decoded refused with %v, raw with %v", r.invalid, rr.invalid)
			}
			return
		}
		if len(rr.times) != rr.events {
			t.Fatalf("raw: %d times for %d events", len(rr.times), rr.events)
		}
		for _, e := range r.batch.Events {
			if len(e.Id) != event.IDLen {
				t.Fatalf("validated event with a %d-byte id", len(e.Id))
			}
			_ = event.AppendDocument(nil, r.batch.Node, e, time.Unix(0, 0))
		}
	})
}
