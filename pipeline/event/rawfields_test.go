package event

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/proto/ferry/v1/wire"
)

// appendEntry appends an entry of Event.fields, as the wire carries it.
func appendEntry(t testing.TB, dst []byte, k string, v *ferryv1.Value) []byte {
	val, err := proto.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, k)
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendBytes(entry, val)
	dst = protowire.AppendTag(dst, 7, protowire.BytesType)
	return protowire.AppendBytes(dst, entry)
}

// encodeFields returns a copy of e whose fields are (some or all) left
// encoded, as wire.DecodeTrustedRawFields leaves them: in a random order,
// some after an earlier entry of the same name (which they replace), some
// in the map (then replaced by an encoded one of the same name, or not).
func encodeFields(t testing.TB, r *rand.Rand, e *ferryv1.Event) *ferryv1.Event {
	c := proto.CloneOf(e)
	if len(e.Fields) == 0 {
		return c
	}
	c.Fields = nil
	var raw []byte
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	mixed := r.IntN(4) == 0
	for _, k := range keys {
		v := e.Fields[k]
		switch n := r.IntN(6); {
		case mixed && n == 0: // in the map only
			SetField(c, k, v)
			continue
		case mixed && n == 1: // in the map, replaced by the encoded one
			SetField(c, k, Str("replaced"))
		case n == 2: // an earlier encoded entry, replaced
			raw = appendEntry(t, raw, k, Int(-1))
		}
		raw = appendEntry(t, raw, k, v)
	}
	c.ProtoReflect().SetUnknown(raw)
	return c
}

// TestRawFieldsSameDocuments: events whose typed fields are left encoded
// make the same documents, data streams and field lookups as the same
// events with their fields in a map, through the encoder (its order of
// names reused from event to event) and through AppendDocument.
func TestRawFieldsSameDocuments(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 3))
	for round := range 300 {
		b := randomBatch(r, 1+r.IntN(200))
		rb := *b
		rb.Events = make([]*ferryv1.Event, len(b.Events))
		for i, e := range b.Events {
			rb.Events[i] = encodeFields(t, r, e)
		}
		ingested := time.Unix(0, time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC).UnixNano()+r.Int64N(1e12))
		enc, renc := NewDocumentEncoder(b, ingested), NewDocumentEncoder(&rb, ingested)
		for i, e := range b.Events {
			re := rb.Events[i]
			want := enc.Append(nil, i)
			// As a sink does: the data stream first, whose parts Append
			// then takes.
			if got, want := renc.DataStream(i), b.DataStream(i); got != want {
				t.Fatalf("round %d, event %d: the encoder's data stream %s, want %s", round, i, got, want)
			}
			if got := renc.Append(nil, i); !bytes.Equal(got, want) {
				t.Fatalf("round %d, event %d: encoded fields %x wrote\n%s\nthe map wrote\n%s", round, i, re.ProtoReflect().GetUnknown(), got, want)
			}
			if got := rb.AppendDocument(nil, i, ingested); !bytes.Equal(got, want) {
				t.Fatalf("round %d, event %d: AppendDocument of encoded fields wrote\n%s\nwant\n%s", round, i, got, want)
			}
			if got, want := rb.DataStream(i), b.DataStream(i); got != want {
				t.Fatalf("round %d, event %d: data stream %s, want %s", round, i, got, want)
			}
			if HasFields(re) != (len(e.Fields) > 0) {
				t.Fatalf("round %d, event %d: HasFields %v with %d fields", round, i, HasFields(re), len(e.Fields))
			}
			for k, v := range e.Fields {
				if s, ok := LookupString(re, k); !ok || s != v.GetStr() {
					t.Fatalf("round %d, event %d: LookupString(%q) = %q, %v; want %q", round, i, k, s, ok, v.GetStr())
				}
			}
			if _, ok := LookupString(re, "no.such.field"); ok {
				t.Fatalf("round %d, event %d: a field that is not there found", round, i)
			}
			MaterializeFields(re)
			if len(re.ProtoReflect().GetUnknown()) != 0 || !proto.Equal(re, e) {
				t.Fatalf("round %d, event %d: materialized %v, want %v", round, i, re, e)
			}
		}
	}
}

// TestRawValues: each kind of Value, encoded, is written as appendValue
// writes it decoded; a later member replaces an earlier one.
func TestRawValues(t *testing.T) {
	cases := []struct {
		name string
		raw  []byte
		want *ferryv1.Value
	}{
		{"empty", nil, &ferryv1.Value{}},
		{"str", protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "a \"b\"\n"), Str("a \"b\"\n")},
		{"int", protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), uint64(0xffffffffffffff85)), Int(-123)},
		{"double", protowire.AppendFixed64(protowire.AppendTag(nil, 3, protowire.Fixed64Type), math.Float64bits(2.5)), Float(2.5)},
		{"NaN", protowire.AppendFixed64(protowire.AppendTag(nil, 3, protowire.Fixed64Type), math.Float64bits(math.NaN())), Float(math.NaN())},
		{"bool", protowire.AppendVarint(protowire.AppendTag(nil, 4, protowire.VarintType), 1), Bool(true)},
		{"str then int", protowire.AppendVarint(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "x"), 2, protowire.VarintType), 7), Int(7)},
		{"unknown member skipped", protowire.AppendVarint(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "x"), 9, protowire.VarintType), 7), Str("x")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, want := appendRawValue(nil, c.raw), appendValue(nil, c.want); !bytes.Equal(got, want) {
				t.Fatalf("wrote %s, want %s", got, want)
			}
			if got := rawValue(c.raw); !proto.Equal(got, c.want) && !math.IsNaN(c.want.GetDouble()) {
				t.Fatalf("decoded %v, want %v", got, c.want)
			}
		})
	}
}

// TestRawFieldsOtherUnknown: unknown fields that are not typed fields are
// skipped by the readers and kept by MaterializeFields.
func TestRawFieldsOtherUnknown(t *testing.T) {
	other := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5)
	raw := appendEntry(t, append([]byte(nil), other...), "k", Str("v"))
	e := &ferryv1.Event{}
	e.ProtoReflect().SetUnknown(raw)
	if s, ok := LookupString(e, "k"); !ok || s != "v" || !HasFields(e) {
		t.Fatalf("LookupString: %q %v, HasFields %v", s, ok, HasFields(e))
	}
	only := &ferryv1.Event{}
	only.ProtoReflect().SetUnknown(other)
	if HasFields(only) {
		t.Fatal("an unknown field that is not a typed field counted as one")
	}
	MaterializeFields(e)
	if FieldString(e, "k") != "v" || !bytes.Equal(e.ProtoReflect().GetUnknown(), other) {
		t.Fatalf("materialized: fields %v, unknown %x", e.Fields, e.ProtoReflect().GetUnknown())
	}
	SetField(only, "x", Int(1))
	if len(only.Fields) != 1 || !bytes.Equal(only.ProtoReflect().GetUnknown(), other) {
		t.Fatalf("SetField: %v", only)
	}
}

// BenchmarkRawFieldsDocuments: documents of HAProxy-like events (40
// fields) with their fields in a map and left encoded.
func BenchmarkRawFieldsDocuments(b *testing.B) {
	e := &ferryv1.Event{Id: ID(nil, "n", "/var/log/haproxy.log", 1), TimeUnixNano: 1.7e18, Message: []byte("GET /x")}
	for i := range 25 {
		SetField(e, "haproxy.field_"+string(rune('a'+i)), Str("value"))
	}
	for i := range 14 {
		SetField(e, "haproxy.count_"+string(rune('a'+i)), Int(int64(i*1000)))
	}
	SetField(e, "haproxy.ratio", Float(0.25))
	for _, raw := range []bool{false, true} {
		batch := &Batch{Node: "n"}
		var rawBytes []byte
		for range 500 {
			if raw {
				if rawBytes == nil {
					// In one order, as an agent's parser writes them.
					for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
						rawBytes = appendEntry(b, rawBytes, k, e.Fields[k])
					}
				}
				c := &ferryv1.Event{Id: e.Id, TimeUnixNano: e.TimeUnixNano, Message: e.Message}
				c.ProtoReflect().SetUnknown(rawBytes)
				batch.Events = append(batch.Events, c)
			} else {
				batch.Events = append(batch.Events, e)
			}
		}
		name := map[bool]string{false: "map", true: "encoded"}[raw]
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 1<<20)
			b.ReportAllocs()
			for b.Loop() {
				enc := NewDocumentEncoder(batch, time.Unix(1e9, 0))
				buf = buf[:0]
				for i := range batch.Events {
					buf = enc.Append(buf, i)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch.Events)), "ns/event")
		})
	}
}

// BenchmarkDeliverDocuments is what the aggregator does with a batch its
// disk buffer gives back: decode it and write every document, for 1,000
// container lines of which every tenth is an HAProxy request with 40
// typed fields, with the fields decoded into maps (wire.DecodeTrusted)
// and left encoded (wire.DecodeTrustedRawFields). ns/event is per event
// of the mix.
func BenchmarkDeliverDocuments(b *testing.B) {
	batch := &ferryv1.Batch{Seq: 1, Node: "node-1"}
	for i := range 1000 {
		e := &ferryv1.Event{Id: ID(nil, "node-1", "/var/log/containers/web.log", int64(i)), TimeUnixNano: 1.7e18 + int64(i),
			Message: []byte("GET /api/v1/orders/12345 took 12ms and returned 200 to the client at 10.1.2.3"), Stream: ferryv1.StreamName_STREAM_STDOUT,
			Source:     &ferryv1.Source{Path: "/var/log/containers/web-1_shop_app-c1.log", Offset: int64(i) * 130, Input: "containers"},
			Kubernetes: &ferryv1.Kubernetes{Namespace: "shop", Pod: "web-1", PodUid: "u1", Container: "app"}}
		if i%10 == 0 {
			for f := range 25 {
				SetField(e, fmt.Sprintf("haproxy.field_%02d", f), Str(fmt.Sprintf("value-%d", i+f)))
			}
			for f := range 14 {
				SetField(e, fmt.Sprintf("haproxy.count_%02d", f), Int(int64(i*f)))
			}
			SetField(e, "haproxy.ratio", Float(float64(i)/7))
		}
		batch.Events = append(batch.Events, e)
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(batch)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		decode func([]byte) (*ferryv1.Batch, error)
	}{{"map", wire.DecodeTrusted}, {"encoded", wire.DecodeTrustedRawFields}} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 1<<20)
			b.ReportAllocs()
			for b.Loop() {
				wb, err := c.decode(data)
				if err != nil {
					b.Fatal(err)
				}
				eb := &Batch{Node: wb.Node, Seq: wb.Seq, Events: wb.Events}
				enc := NewDocumentEncoder(eb, time.Unix(1e9, 0))
				buf = buf[:0]
				for i := range eb.Events {
					_ = enc.DataStream(i)
					buf = enc.Append(buf, i)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch.Events)), "ns/event")
		})
	}
}

// FuzzRawFields: any bytes as an event's encoded fields are read without
// a panic, and when proto.Unmarshal takes them as typed fields, the
// document, the lookups and MaterializeFields agree with its map.
func FuzzRawFields(f *testing.F) {
	f.Add(appendEntry(f, appendEntry(f, nil, "source.ip", Str("81.2.69.142")), "http.response.status_code", Int(200)))
	f.Add(appendEntry(f, appendEntry(f, nil, "a", Float(1.5)), "a", Bool(true)))
	f.Add([]byte{0x3a, 0x02, 0x0a, 0x05})
	f.Add(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5))
	f.Fuzz(func(t *testing.T, raw []byte) {
		re := &ferryv1.Event{Id: []byte{1}, Message: []byte("m")}
		re.ProtoReflect().SetUnknown(raw)
		b := &Batch{Node: "n", Events: []*ferryv1.Event{re}}
		enc := NewDocumentEncoder(b, time.Unix(1e9, 0))
		got := enc.Append(nil, 0)
		_ = b.AppendDocument(nil, 0, time.Unix(1e9, 0))
		_ = HasFields(re)
		_, _ = LookupString(re, "source.ip")
		for _, names := range [][2]string{{"source.ip", "a"}, {"a", "source.ip"}, {"a", "a"}, {"data_stream.dataset", "data_stream.namespace"}} {
			va, vb, fa, fb := lookupRaw2(raw, names[0], names[1])
			wa, ga := lookupRaw(raw, names[0])
			wb, gb := lookupRaw(raw, names[1])
			if fa != ga || fb != gb || !bytes.Equal(va, wa) || !bytes.Equal(vb, wb) {
				t.Fatalf("lookupRaw2(%q, %q) = %x %x %v %v; lookupRaw: %x %x %v %v", names[0], names[1], va, vb, fa, fb, wa, wb, ga, gb)
			}
		}
		var want ferryv1.Event
		if err := proto.Unmarshal(raw, &want); err != nil {
			return // not typed fields proto takes: read without a panic is all
		}
		me := &ferryv1.Event{Id: []byte{1}, Message: []byte("m"), Fields: want.Fields}
		mb := &Batch{Node: "n", Events: []*ferryv1.Event{me}}
		if w := mb.AppendDocument(nil, 0, time.Unix(1e9, 0)); !bytes.Equal(got, w) {
			t.Fatalf("encoded %x wrote\n%s\nthe map wrote\n%s", raw, got, w)
		}
		for k, v := range want.Fields {
			if s, ok := LookupString(re, k); !ok || s != v.GetStr() {
				t.Fatalf("LookupString(%q) = %q, %v; want %q", k, s, ok, v.GetStr())
			}
		}
		MaterializeFields(re)
		if len(re.Fields) != len(want.Fields) {
			t.Fatalf("materialized %v, want %v", re.Fields, want.Fields)
		}
		for k, v := range want.Fields {
			if !bytes.Equal(appendValue(nil, re.Fields[k]), appendValue(nil, v)) { // the value, not what proto kept beside it
				t.Fatalf("materialized %q = %v, want %v", k, re.Fields[k], v)
			}
		}
	})
}

// TestRawFieldsAt: the unknown fields read where the generated struct
// keeps them are those ProtoReflect returns.
func TestRawFieldsAt(t *testing.T) {
	if unknownAt < 0 {
		t.Fatal("ferryv1.Event has no unknownFields []byte: rawFields falls back to ProtoReflect for every event")
	}
	e := &ferryv1.Event{Id: []byte{1}}
	if rawFields(e) != nil {
		t.Fatal("unknown fields in a new event")
	}
	raw := appendEntry(t, nil, "k", Str("v"))
	e.ProtoReflect().SetUnknown(raw)
	if got := rawFields(e); !bytes.Equal(got, raw) || &got[0] != &raw[0] {
		t.Fatalf("rawFields %x, want %x (the same bytes)", got, raw)
	}
}
