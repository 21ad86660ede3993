package buffer

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/wal"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
)

// keeper records every batch it is given, as decoded.
type keeper struct {
	mu      sync.Mutex
	batches map[uint64]*event.Batch
}

func (k *keeper) Write(_ context.Context, b *event.Batch) (sinks.Result, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.batches == nil {
		k.batches = map[uint64]*event.Batch{}
	}
	k.batches[b.Seq] = b
	return sinks.Result{Delivered: len(b.Events)}, nil
}
func (k *keeper) Close(context.Context) error { return nil }
func (k *keeper) get(seq uint64) *event.Batch {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.batches[seq]
}

// fullBatch is a batch with pods, sources, kubernetes and typed fields.
func fullBatch(seq uint64, n int) *ferryv1.Batch {
	b := &ferryv1.Batch{Seq: seq, Node: "n1", Pods: []*ferryv1.Pod{{Uid: "u1", Namespace: "prod", Name: "web",
		Labels: map[string]string{"app": "web"}, ContainerImages: map[string]string{"app": "nginx"}}}}
	for i := range n {
		b.Events = append(b.Events, &ferryv1.Event{
			Id: event.ID(nil, "n1", "file", int64(seq)*1000+int64(i)), TimeUnixNano: int64(i) + 1,
			Message:    []byte(fmt.Sprintf("line %d é", i)),
			Source:     &ferryv1.Source{Path: "/var/log/containers/web.log", Offset: int64(i) * 10, FileId: "1:2:3"},
			Kubernetes: &ferryv1.Kubernetes{Namespace: "prod", Pod: "web", PodUid: "u1", Container: "app"},
			Fields:     map[string]*ferryv1.Value{"source.ip": event.Str("10.0.0.1"), "n": event.Int(int64(i))},
		})
	}
	return b
}

// TestRawBatches: a batch handed as its wire bytes only (what the receiver
// does for a buffer, see TakesRaw) is stored as those very bytes, not
// encoded again, counts its events, and is delivered decoded, equal to
// what was sent; so is a batch with both (bytes used) and one without
// bytes (encoded). (The caller must not modify the bytes once written: the
// buffer may deliver from them, see Options.MemoryBytes.)
func TestRawBatches(t *testing.T) {
	dir := t.TempDir()
	hung := &recorder{block: make(chan struct{})}
	s := open(t, dir, hung, 64<<20)
	if !s.TakesRaw() {
		t.Fatal("buffer does not take raw batches")
	}
	sent := map[uint64]*ferryv1.Batch{}
	var raws [][]byte // as given
	for seq := uint64(1); seq <= 3; seq++ {
		b := fullBatch(seq, int(seq)*5)
		sent[seq] = b
		// Map order makes encodings differ from one Marshal to the next:
		// the record must be this one.
		data, err := proto.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		// A field this version does not know: a batch encoded again
		// from its decoded form would not have it.
		data = protowire.AppendVarint(protowire.AppendTag(data, 99, protowire.VarintType), 7)
		eb := &event.Batch{Node: b.Node, Seq: b.Seq}
		switch seq {
		case 1: // raw only
			eb.Raw = data
		case 2: // raw and decoded
			eb.Raw, eb.Events, eb.Pods = data, b.Events, b.Pods
		case 3: // decoded only
			eb.Events, eb.Pods = b.Events, b.Pods
			data = nil
		}
		raws = append(raws, bytes.Clone(data))
		res, err := s.Write(context.Background(), eb)
		if err != nil || res.Delivered != len(b.Events) {
			t.Fatalf("batch %d: Write = %+v, %v; want %d delivered", seq, res, err, len(b.Events))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The records, read back: the raw ones are the bytes given.
	w, err := wal.Open(wal.Options{Dir: dir, MaxBytes: 64 << 20, MaxRecordBytes: 32 << 20, SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		_, rec, err := w.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got ferryv1.Batch
		if err := proto.Unmarshal(rec, &got); err != nil {
			t.Fatalf("record %d: %v", seq, err)
		}
		got.ProtoReflect().SetUnknown(nil)
		if !proto.Equal(&got, sent[seq]) {
			t.Fatalf("record %d decodes to %v", seq, &got)
		}
		if seq < 3 && !bytes.Equal(rec, raws[seq-1]) {
			t.Fatalf("record %d is not the bytes given", seq)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	k := &keeper{}
	s2 := open(t, dir, k, 64<<20)
	defer s2.Close(context.Background())
	waitFor(t, "three batches delivered", func() bool { return k.get(1) != nil && k.get(2) != nil && k.get(3) != nil })
	for seq := uint64(1); seq <= 3; seq++ {
		b := k.get(seq)
		for i, e := range b.Events {
			// Read back from disk, typed fields come encoded (see
			// wire.DecodeTrustedRawFields): the same once decoded.
			if e.Fields != nil || !event.HasFields(e) {
				t.Fatalf("batch %d event %d: fields %v, encoded %v; want them encoded", seq, i, e.Fields, event.HasFields(e))
			}
			event.MaterializeFields(e)
		}
		got := &ferryv1.Batch{Seq: b.Seq, Node: b.Node, Events: b.Events, Pods: b.Pods}
		if !proto.Equal(got, sent[seq]) {
			t.Errorf("batch %d delivered as %v, want %v", seq, got, sent[seq])
		}
		var fromRaw ferryv1.Batch
		err := proto.Unmarshal(b.Raw, &fromRaw)
		fromRaw.ProtoReflect().SetUnknown(nil)
		if err != nil || !proto.Equal(&fromRaw, sent[seq]) {
			t.Errorf("batch %d delivered with Raw %v (%v)", seq, &fromRaw, err)
		}
	}
}

// TestRawBatchMalformed: raw bytes whose top level does not parse are
// refused for good, not stored.
func TestRawBatchMalformed(t *testing.T) {
	s := open(t, t.TempDir(), &recorder{}, 64<<20)
	defer s.Close(context.Background())
	_, err := s.Write(context.Background(), &event.Batch{Seq: 1, Node: "n", Raw: []byte{0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f}})
	if !sinks.IsPermanent(err) || !strings.Contains(err.Error(), "raw batch") {
		t.Fatalf("Write of malformed raw bytes: %v, want a permanent error", err)
	}
	if st := s.Stats(); st.PendingRecords != 0 {
		t.Fatalf("%d records stored", st.PendingRecords)
	}
}

// TestKeptDecodedBatches: a batch written with its bytes and its decoded
// events (what the receiver hands when KeepsDecoded says yes) is delivered
// from the memory tail as those very events, not decoded again; a batch of
// bytes only is decoded from them; KeepsDecoded says yes while the memory
// tail has room for about twice the bytes, and no without a memory tail.
func TestKeptDecodedBatches(t *testing.T) {
	dir := t.TempDir()
	k := &keeper{}
	s := openMemory(t, dir, k, 64<<20, 1<<20)
	if !s.KeepsDecoded(100<<10) || s.KeepsDecoded(600<<10) {
		t.Fatalf("KeepsDecoded with 1 MiB of room: %v for 100 KiB, %v for 600 KiB; want true, false", s.KeepsDecoded(100<<10), s.KeepsDecoded(600<<10))
	}
	sent := map[uint64]*ferryv1.Batch{}
	for seq := uint64(1); seq <= 2; seq++ {
		b := fullBatch(seq, 20)
		sent[seq] = b
		data, err := proto.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		eb := &event.Batch{Node: b.Node, Seq: b.Seq, Raw: data}
		if seq == 1 {
			eb.Events, eb.Pods = b.Events, b.Pods
		}
		if _, err := s.Write(context.Background(), eb); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two batches delivered", func() bool { return k.get(1) != nil && k.get(2) != nil })
	for seq := uint64(1); seq <= 2; seq++ {
		b := k.get(seq)
		materialize(b.Events)
		if got := (&ferryv1.Batch{Seq: b.Seq, Node: b.Node, Events: b.Events, Pods: b.Pods}); !proto.Equal(got, sent[seq]) {
			t.Errorf("batch %d delivered as %v, want %v", seq, got, sent[seq])
		}
		if b.Raw == nil {
			t.Errorf("batch %d delivered without its bytes", seq)
		}
		same := &b.Events[0].Id[0] == &sent[seq].Events[0].Id[0] // the written event, not a decoded copy
		if same != (seq == 1) {
			t.Errorf("batch %d: delivered events are the written ones: %v, want %v", seq, same, seq == 1)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := openMemory(t, t.TempDir(), &keeper{}, 64<<20, -1); s.KeepsDecoded(1) {
		t.Error("KeepsDecoded without a memory tail")
	} else {
		s.Close(context.Background())
	}
}

// materialize decodes the typed fields a batch read back from disk
// carries encoded (wire.DecodeTrustedRawFields), for proto.Equal.
func materialize(events []*ferryv1.Event) {
	for _, e := range events {
		event.MaterializeFields(e)
	}
}
