package transport

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/proto/ferry/v1/wire"
)

// tallyPool is gRPC's default pool, counting buffers out and back.
type tallyPool struct{ gets, puts atomic.Int64 }

func (p *tallyPool) Get(n int) *[]byte { p.gets.Add(1); return mem.DefaultBufferPool().Get(n) }
func (p *tallyPool) Put(b *[]byte)     { p.puts.Add(1); mem.DefaultBufferPool().Put(b) }

// TestCodecMarshalsBatches: the codec encodes a batch with package wire
// (what proto.Marshal gives, decoded), a large one into a buffer of the
// pool that goes back when gRPC frees it, a small one into its own; a
// batch with invalid UTF-8 in a string field fails, as proto.Marshal does,
// and takes no buffer; with a size hint it encodes in one pass, into a
// pooled buffer of that size, or one of its own if the batch outgrows it.
func TestCodecMarshalsBatches(t *testing.T) {
	kube := &ferryv1.Kubernetes{Namespace: "prod", Pod: "web", PodUid: "u-1", Container: "app"}
	fields := map[string]*ferryv1.Value{"env": {Kind: &ferryv1.Value_Str{Str: "prod"}}}
	batch := func(events int, msg string) *ferryv1.Batch {
		b := &ferryv1.Batch{Seq: 7, Node: "node-1"}
		for i := range events {
			b.Events = append(b.Events, &ferryv1.Event{Id: []byte("0123456789abcdef"), TimeUnixNano: int64(i + 1), Message: []byte(msg),
				Source: &ferryv1.Source{Path: "/var/log/a.log", Offset: int64(i) * 100, Input: "files"}, Kubernetes: kube, Fields: fields})
		}
		return b
	}
	for _, c := range []struct {
		name   string
		batch  *ferryv1.Batch
		pooled bool
		err    error
	}{
		{"small", batch(1, "hello"), false, nil},
		{"large", batch(200, strings.Repeat("x", 200)), true, nil},
		{"invalid UTF-8", func() *ferryv1.Batch { b := batch(200, "x"); b.Events[150].Source.Input = "\xff"; return b }(), false, wire.ErrInvalidUTF8},
	} {
		// Hints: none (sized first), too small for a pooled buffer, a
		// pooled buffer the large batch outgrows, room enough.
		for _, hint := range []int{0, 100, 2000, proto.Size(c.batch) + 10} {
			t.Run(fmt.Sprintf("%s/hint %d", c.name, hint), func(t *testing.T) {
				pool := &tallyPool{}
				data, err := marshalBatch(c.batch, nil, hint, pool)
				if c.err != nil {
					if !errors.Is(err, c.err) {
						t.Fatalf("marshal: %v, want %v", err, c.err)
					}
					if _, perr := proto.Marshal(c.batch); perr == nil {
						t.Fatal("proto.Marshal takes the batch")
					}
					if pool.gets.Load() != pool.puts.Load() {
						t.Fatalf("%d buffers taken, %d returned", pool.gets.Load(), pool.puts.Load())
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				var got ferryv1.Batch
				if err := proto.Unmarshal(data.Materialize(), &got); err != nil || !proto.Equal(&got, c.batch) {
					t.Fatalf("decoded %v (%v), want %v", &got, err, c.batch)
				}
				pooled := c.pooled
				if hint == 100 || hint == 2000 {
					pooled = hint == 2000
				}
				if n := pool.gets.Load(); (n == 1) != pooled {
					t.Fatalf("%d buffers taken from the pool, want pooled %v", n, pooled)
				}
				data.Free()
				if pool.puts.Load() != pool.gets.Load() {
					t.Fatalf("%d buffers taken, %d returned after Free", pool.gets.Load(), pool.puts.Load())
				}
			})
		}
	}
	// Through the registered codec too.
	b := batch(3, "via codec")
	data, err := codecOf(t).Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Free()
	var got ferryv1.Batch
	if err := codecOf(t).Unmarshal(data, &got); err != nil || !proto.Equal(&got, b) {
		t.Fatalf("round trip through the codec: %v, %v", &got, err)
	}
}
