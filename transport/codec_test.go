package transport

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/proto/ferry/v1/wire"
	"github.com/ferrylogs/ferry/sinks"
)

// rawRecSink takes raw batches, as a disk buffer does, and records them;
// with keep, it asks for them decoded (KeepsDecoded), as a disk buffer
// with room in its memory tail does.
type rawRecSink struct {
	keep   bool
	mu     sync.Mutex
	writes []*event.Batch
}

func (s *rawRecSink) Write(_ context.Context, b *event.Batch) (sinks.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Raw belongs to the batch: the server reuses the bytes of a batch it
	// only scanned once Write returned.
	c := *b
	c.Raw = bytes.Clone(b.Raw)
	s.writes = append(s.writes, &c)
	return sinks.Result{}, nil
}
func (s *rawRecSink) Close(context.Context) error { return nil }
func (s *rawRecSink) TakesRaw() bool              { return true }
func (s *rawRecSink) KeepsDecoded(int) bool       { return s.keep }

func (s *rawRecSink) snapshot() []*event.Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*event.Batch(nil), s.writes...)
}

// countObserver counts observations.
type countObserver struct {
	mu sync.Mutex
	n  int
}

func (o *countObserver) Observe(float64) { o.mu.Lock(); o.n++; o.mu.Unlock() }

func (o *countObserver) count() int { o.mu.Lock(); defer o.mu.Unlock(); return o.n }

// TestCodecRegistered: the package's codec is gRPC's proto codec, and
// passes every other message to the one it replaced.
func TestCodecRegistered(t *testing.T) {
	if err := usesRawCodec(); err != nil {
		t.Fatal(err)
	}
	in := &ferryv1.Ack{Seq: 3, Code: ferryv1.Ack_CODE_OK, Message: "é"}
	data, err := codecOf(t).Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out := new(ferryv1.Ack)
	if err := codecOf(t).Unmarshal(data, out); err != nil || !proto.Equal(in, out) {
		t.Fatalf("round trip through the codec: %v, %v", out, err)
	}
	var raw rawBatch
	if err := codecOf(t).Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(in)
	if string(raw) != string(want) {
		t.Fatalf("raw bytes %x, want %x", raw, want)
	}
}

func codecOf(t *testing.T) rawCodec {
	t.Helper()
	c, err := rawCodecRegistered()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestServerRawPath runs TestServerRejectsMalformed's batches through a
// server whose sink takes raw batches: the same acks, and the sink gets
// the bytes the agent sent, undecoded; or, when the sink would keep the
// decoded batch (KeepsDecoded), the bytes and the events they decode to.
func TestServerRawPath(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) { testServerRawPath(t, keep) })
	}
}

func testServerRawPath(t *testing.T, keep bool) {
	sink := &rawRecSink{keep: keep}
	lat := &countObserver{}
	srv := startHostileServer(t, sink, ServerConfig{MaxMessageBytes: 1024, EventLatency: lat}, 1<<20)
	if !srv.srv.raw {
		t.Fatal("server does not see that its sink takes raw batches")
	}
	raw := dialRaw(t, srv.addr)
	mut := func(b *ferryv1.Batch, f func(*ferryv1.Batch)) *ferryv1.Batch { f(b); return b }
	timed := func(b *ferryv1.Batch) {
		for _, e := range b.Events {
			e.TimeUnixNano = time.Now().Add(-time.Second).UnixNano()
		}
	}
	cases := []struct {
		name  string
		batch *ferryv1.Batch
		code  ferryv1.Ack_Code
		msg   string
	}{
		{"valid", mut(validBatch(1, 2), func(b *ferryv1.Batch) {
			timed(b)
			b.Events[1].Fields = map[string]*ferryv1.Value{"source.ip": event.Str("81.2.69.142"), "http.response.status_code": event.Int(200)}
		}), ferryv1.Ack_CODE_OK, ""},
		{"seq 0", mut(validBatch(0, 1), func(*ferryv1.Batch) {}), ferryv1.Ack_CODE_PERMANENT, "without sequence number"},
		{"no node", mut(validBatch(3, 1), func(b *ferryv1.Batch) { b.Node = "" }), ferryv1.Ack_CODE_PERMANENT, "without node name"},
		{"3-byte id", mut(validBatch(4, 3), func(b *ferryv1.Batch) { b.Events[2].Id = []byte{1, 2, 3} }), ferryv1.Ack_CODE_PERMANENT, "event 2: id of 3 bytes, want 16"},
		{"no id", mut(validBatch(5, 1), func(b *ferryv1.Batch) { b.Events[0].Id = nil }), ferryv1.Ack_CODE_PERMANENT, "event 0: id of 0 bytes"},
		{"message too long", mut(validBatch(6, 1), func(b *ferryv1.Batch) { b.Events[0].Message = make([]byte, 2000) }), ferryv1.Ack_CODE_PERMANENT, "message of 2000 bytes exceeds 1024"},
		{"valid after", mut(validBatch(7, 3), timed), ferryv1.Ack_CODE_OK, ""},
	}
	for _, tt := range cases {
		if err := raw.st.Send(tt.batch); err != nil {
			t.Fatal(err)
		}
	}
	acks := raw.recvAcks(t, len(cases))
	for _, tt := range cases {
		a := acks[tt.batch.Seq]
		if a == nil {
			t.Errorf("%s: no ack", tt.name)
			continue
		}
		if a.Code != tt.code || !contains(a.Message, tt.msg) {
			t.Errorf("%s: ack %v %q, want %v with %q", tt.name, a.Code, a.Message, tt.code, tt.msg)
		}
	}
	writes := sink.snapshot()
	slices.SortFunc(writes, func(a, b *event.Batch) int { return cmp.Compare(a.Seq, b.Seq) })
	if len(writes) != 2 {
		t.Fatalf("sink got %d batches, want 2", len(writes))
	}
	for i, want := range []*ferryv1.Batch{cases[0].batch, cases[6].batch} {
		w := writes[i]
		if keep {
			// Typed fields come encoded (as the disk buffer reads them
			// back), the same fields once materialized.
			var evs []*ferryv1.Event
			for j, e := range w.Events {
				if e.Fields != nil {
					t.Errorf("batch %d event %d: typed fields decoded into a map", i, j)
				}
				c := proto.CloneOf(e)
				event.MaterializeFields(c)
				evs = append(evs, c)
			}
			if got := (&ferryv1.Batch{Seq: w.Seq, Node: w.Node, Events: evs, Pods: w.Pods}); !proto.Equal(got, want) {
				t.Errorf("batch %d: sink got %v decoded, want %v", i, got, want)
			}
		} else if w.Events != nil || w.Pods != nil || w.Seq != want.Seq || w.Node != want.Node {
			t.Errorf("batch %d: sink got seq %d node %q, %d events decoded; want seq %d node %q, none decoded", i, w.Seq, w.Node, len(w.Events), want.Seq, want.Node)
		}
		var got ferryv1.Batch
		if err := proto.Unmarshal(w.Raw, &got); err != nil || !proto.Equal(&got, want) {
			t.Errorf("batch %d: raw bytes decode to %v (%v), want %v", i, &got, err, want)
		}
	}
	if n := srv.srv.BatchesFailed.Load(); n != 5 {
		t.Errorf("BatchesFailed %d, want 5", n)
	}
	if n := srv.srv.EventsAcked.Load(); n != 5 {
		t.Errorf("EventsAcked %d, want 5", n)
	}
	if n := lat.count(); n != 5 {
		t.Errorf("event latency observed %d times, want 5 (once per acked event)", n)
	}
	if srv.srv.BytesInFlight() != 0 {
		t.Errorf("%d bytes in flight after every ack", srv.srv.BytesInFlight())
	}
}

// TestServerUndecodable: bytes that are no Batch (here, a node name of
// invalid UTF-8, which proto.Unmarshal refuses) end the stream with
// Internal, as when gRPC decoded batches itself, whether the sink takes
// raw batches or not; nothing reaches the sink.
func TestServerUndecodable(t *testing.T) {
	good, err := proto.Marshal(validBatch(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	bad := protowire.AppendBytes(protowire.AppendTag(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 2), 2, protowire.BytesType), []byte{0xff, 'n'})
	if _, err := wire.Decode(bad); !errors.Is(err, wire.ErrInvalidUTF8) {
		t.Fatalf("test batch: %v, want invalid UTF-8", err)
	}
	for _, mode := range []string{"decoded", "raw", "raw-kept"} {
		t.Run(mode, func(t *testing.T) {
			var sink sinks.Sink = &recSink{}
			if mode != "decoded" {
				sink = &rawRecSink{keep: mode == "raw-kept"}
			}
			srv := startHostileServer(t, sink, ServerConfig{}, 1<<20)
			conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			st, err := conn.NewStream(context.Background(), &ferryv1.Ingest_ServiceDesc.Streams[0], ferryv1.Ingest_Stream_FullMethodName, grpc.ForceCodecV2(preEncoded{}))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.SendMsg(good); err != nil {
				t.Fatal(err)
			}
			var a ferryv1.Ack
			if err := st.RecvMsg(&a); err != nil || a.Code != ferryv1.Ack_CODE_OK {
				t.Fatalf("good batch: %v %v", &a, err)
			}
			if err := st.SendMsg(bad); err != nil {
				t.Fatal(err)
			}
			err = st.RecvMsg(&a)
			if status.Code(err) != codes.Internal || !contains(err.Error(), "invalid UTF-8") {
				t.Fatalf("after the bad batch: %v, want Internal naming invalid UTF-8", err)
			}
			if n := srv.srv.BatchesAcked.Load(); n != 1 {
				t.Errorf("%d batches acked, want 1", n)
			}
		})
	}
}

// benchSink takes every batch; raw says whether it takes raw batches (as
// a disk buffer does), keep whether it wants them decoded all the same
// (KeepsDecoded, as a disk buffer with room in its memory tail).
type benchSink struct{ raw, keep bool }

func (benchSink) Write(_ context.Context, b *event.Batch) (sinks.Result, error) {
	return sinks.Result{Delivered: len(b.Events)}, nil
}
func (benchSink) Close(context.Context) error { return nil }
func (s benchSink) TakesRaw() bool            { return s.raw }
func (s benchSink) KeepsDecoded(int) bool     { return s.keep }

// benchObserver takes observations (the aggregator sets EventLatency).
type benchObserver struct{}

func (benchObserver) Observe(float64) {}
