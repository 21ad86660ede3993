package transport

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/proto/ferry/v1/wire"
)

// TestBatchBytes compares the estimate with the heap a received batch
// really holds (the codec's copy of its bytes, decoded by wire.Decode), for
// events of several shapes.
func TestBatchBytes(t *testing.T) {
	cases := []struct {
		name         string
		msg, fields  int
		source, kube bool
		events       int
	}{
		{name: "tiny bare events", msg: 5, events: 4000},
		{name: "tiny events with source", msg: 5, source: true, events: 4000},
		{name: "100 B events from a pod", msg: 100, source: true, kube: true, events: 4000},
		{name: "100 B events with 3 fields", msg: 100, source: true, kube: true, fields: 3, events: 4000},
		{name: "1 KiB events", msg: 1 << 10, source: true, kube: true, events: 1000},
		{name: "100 KiB events", msg: 100 << 10, source: true, kube: true, events: 20},
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for _, tt := range cases {
		b := &ferryv1.Batch{Seq: 1, Node: testNode}
		for i := range tt.events {
			e := &ferryv1.Event{Id: make([]byte, 16), TimeUnixNano: 1, Message: []byte(strings.Repeat("m", tt.msg)), Kind: ferryv1.Kind_KIND_LOG}
			if tt.source {
				e.Source = &ferryv1.Source{Path: "/var/log/pods/shop_web-1_0123-4567/app/0.log", Offset: int64(i) * 200, Input: "containers", FileId: "801-123456-0f0f0f0f"}
			}
			if tt.kube {
				e.Kubernetes = &ferryv1.Kubernetes{Namespace: "shop", Pod: "web-1-7d9f8c-x2x4q", PodUid: "01234567-89ab-cdef-0123-456789abcdef", Container: "app", ContainerId: strings.Repeat("ab", 32)}
			}
			for j := range tt.fields {
				if e.Fields == nil {
					e.Fields = map[string]*ferryv1.Value{}
				}
				e.Fields[fmt.Sprintf("labels.name%d", j)] = &ferryv1.Value{Kind: &ferryv1.Value_Str{Str: "value"}}
			}
			b.Events = append(b.Events, e)
		}
		enc, err := proto.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		b = nil
		// Goroutines of the tests before may still free or allocate
		// meanwhile: measure up to 3 times.
		var used, est int64
		var ratio float64
		for range 3 {
			before := heap()
			raw := bytes.Clone(enc) // what the codec makes
			got, err := wire.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			used = int64(heap()) - int64(before)
			est = decodedBytes(len(raw), got)
			runtime.KeepAlive(got)
			ratio = float64(est) / float64(used)
			if used > 0 && ratio >= 0.85 && ratio <= 1.4 {
				break
			}
		}
		t.Logf("%s: %d events, encoded %d B, heap %d B, estimate %d B (%.2f)", tt.name, tt.events, len(enc), used, est, ratio)
		if used <= 0 || ratio < 0.85 || ratio > 1.4 {
			t.Errorf("%s: estimate %d B for %d B of heap (%.2f), want within 0.85..1.4", tt.name, est, used, ratio)
		}
		runtime.KeepAlive(enc) // else freed during the measure
	}
}
