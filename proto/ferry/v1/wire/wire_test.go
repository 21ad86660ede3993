package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// same checks that Decode, DecodeTrusted and Scan treat data as
// proto.Unmarshal does: the same accept or reject, equal batches (unknown
// fields aside), and Scan reporting what the batch holds.
func same(t *testing.T, data []byte) {
	t.Helper()
	sameRawFields(t, data)
	var want ferryv1.Batch
	werr := proto.Unmarshal(data, &want)
	got, err := Decode(data)
	if (werr == nil) != (err == nil) {
		t.Fatalf("proto.Unmarshal: %v; Decode: %v (data %x)", werr, err, data)
	}
	var seen []*ferryv1.Event
	sum, serr := Scan(data, func(i int, e *ferryv1.Event) error {
		if i != len(seen) {
			return fmt.Errorf("event %d called as %d", len(seen), i)
		}
		seen = append(seen, &ferryv1.Event{Id: bytes.Clone(e.Id), Message: bytes.Clone(e.Message), TimeUnixNano: e.TimeUnixNano,
			Stream: e.Stream, Flags: e.Flags, Kind: e.Kind})
		return nil
	})
	if (serr == nil) != (err == nil) {
		t.Fatalf("Decode: %v; Scan: %v (data %x)", err, serr, data)
	}
	rf, rerr := DecodeRawFields(data)
	if (rerr == nil) != (err == nil) {
		t.Fatalf("Decode: %v; DecodeRawFields: %v (data %x)", err, rerr, data)
	}
	if rerr == nil {
		if tr, err := DecodeTrustedRawFields(data); err != nil || !proto.Equal(rf, tr) {
			t.Fatalf("DecodeRawFields %v, DecodeTrustedRawFields %v (%v)", rf, tr, err)
		}
	}
	if werr != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidUTF8) {
			t.Fatalf("Decode error %v wraps neither ErrMalformed nor ErrInvalidUTF8", err)
		}
		return
	}
	dropUnknown(want.ProtoReflect())
	if !proto.Equal(&want, got) {
		t.Fatalf("Decode differs from proto.Unmarshal:\n got %v\nwant %v", got, &want)
	}
	trusted, err := DecodeTrusted(data)
	if err != nil || !proto.Equal(&want, trusted) {
		t.Fatalf("DecodeTrusted: %v, %v; want %v", trusted, err, &want)
	}
	if sum.Seq != want.Seq || sum.Node != want.Node || sum.Events != len(want.Events) || sum.Pods != len(want.Pods) {
		t.Fatalf("Scan: %+v; batch has seq %d node %q, %d events, %d pods", sum, want.Seq, want.Node, len(want.Events), len(want.Pods))
	}
	for i, e := range want.Events {
		w := &ferryv1.Event{Id: e.Id, Message: e.Message, TimeUnixNano: e.TimeUnixNano, Stream: e.Stream, Flags: e.Flags, Kind: e.Kind}
		if !proto.Equal(w, seen[i]) {
			t.Fatalf("Scan: event %d: %v, want %v", i, seen[i], w)
		}
	}
}

// sameRawFields checks DecodeTrustedRawFields against DecodeTrusted on
// data: both refuse it or both decode it, and each event's encoded fields
// (its unknown fields), decoded by proto.Unmarshal, are DecodeTrusted's
// map; the events are otherwise the same.
func sameRawFields(t *testing.T, data []byte) {
	t.Helper()
	want, werr := DecodeTrusted(data)
	got, err := DecodeTrustedRawFields(data)
	if (werr == nil) != (err == nil) {
		t.Fatalf("DecodeTrusted: %v; DecodeTrustedRawFields: %v (data %x)", werr, err, data)
	}
	if err != nil {
		return
	}
	if len(got.Events) != len(want.Events) {
		t.Fatalf("DecodeTrustedRawFields: %d events, want %d", len(got.Events), len(want.Events))
	}
	for i, e := range got.Events {
		if e.Fields != nil {
			t.Fatalf("event %d: fields decoded into a map: %v", i, e.Fields)
		}
		var fields ferryv1.Event
		if err := proto.Unmarshal(e.ProtoReflect().GetUnknown(), &fields); err != nil {
			if _, verr := Decode(data); errors.Is(verr, ErrInvalidUTF8) {
				return // bytes DecodeTrusted is never given (proto.Unmarshal refuses them)
			}
			t.Fatalf("event %d: encoded fields %x do not decode: %v", i, e.ProtoReflect().GetUnknown(), err)
		}
		if len(fields.ProtoReflect().GetUnknown()) > 0 || !proto.Equal(&fields, &ferryv1.Event{Fields: fields.Fields}) {
			t.Fatalf("event %d: encoded fields hold more than fields: %v", i, &fields)
		}
		c := proto.CloneOf(e)
		c.ProtoReflect().SetUnknown(nil)
		c.Fields = fields.Fields
		if !proto.Equal(c, want.Events[i]) {
			t.Fatalf("event %d: DecodeTrustedRawFields %v, DecodeTrusted %v", i, c, want.Events[i])
		}
	}
	g, w := proto.CloneOf(got), proto.CloneOf(want)
	g.Events, w.Events = nil, nil
	if !proto.Equal(g, w) {
		t.Fatalf("DecodeTrustedRawFields %v, DecodeTrusted %v", g, w)
	}
}

// TestRawFieldsView: the fields of an event, written one after the other
// (as an agent writes them), stay a view of the batch; apart, they are
// gathered in a copy, in their order.
func TestRawFieldsView(t *testing.T) {
	entry := func(k, v string) raw { return raw(nil).bytes(1, []byte(k)).bytes(2, raw(nil).bytes(1, []byte(v))) }
	id := raw(nil).bytes(1, id16)
	together := id.bytes(7, entry("a", "1")).bytes(7, entry("b", "2")).bytes(3, []byte("msg"))
	apart := id.bytes(7, entry("a", "1")).bytes(3, []byte("msg")).bytes(7, entry("b", "2"))
	for _, c := range []struct {
		name string
		ev   raw
		view bool
	}{{"together", together, true}, {"apart", apart, false}} {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(raw(nil).bytes(3, c.ev))
			b, err := DecodeTrustedRawFields(data)
			if err != nil {
				t.Fatal(err)
			}
			u := b.Events[0].ProtoReflect().GetUnknown()
			want := []byte(raw(nil).bytes(7, entry("a", "1")).bytes(7, entry("b", "2")))
			if !bytes.Equal(u, want) {
				t.Fatalf("encoded fields %x, want %x", u, want)
			}
			inData := &u[0] == &data[len(data)-len(c.ev)+len(id)]
			if inData != c.view {
				t.Fatalf("a view of the batch: %v, want %v", inData, c.view)
			}
			if string(b.Events[0].Message) != "msg" {
				t.Fatalf("message %q", b.Events[0].Message)
			}
		})
	}
}

// dropUnknown clears the unknown fields of m and of every message in it:
// Decode skips them.
func dropUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					dropUnknown(mv.Message())
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					dropUnknown(v.List().Get(i).Message())
				}
			}
		case fd.Message() != nil:
			dropUnknown(v.Message())
		}
		return true
	})
}

func enc(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// raw builds wire bytes field by field.
type raw []byte

func (r raw) varint(num protowire.Number, v uint64) raw {
	return protowire.AppendVarint(protowire.AppendTag(r, num, protowire.VarintType), v)
}
func (r raw) bytes(num protowire.Number, v []byte) raw {
	return protowire.AppendBytes(protowire.AppendTag(r, num, protowire.BytesType), v)
}
func (r raw) fixed64(num protowire.Number, v uint64) raw {
	return protowire.AppendFixed64(protowire.AppendTag(r, num, protowire.Fixed64Type), v)
}
func (r raw) fixed32(num protowire.Number, v uint32) raw {
	return protowire.AppendFixed32(protowire.AppendTag(r, num, protowire.Fixed32Type), v)
}
func (r raw) group(num protowire.Number, inner raw) raw {
	r = protowire.AppendTag(r, num, protowire.StartGroupType)
	r = append(r, inner...)
	return protowire.AppendTag(r, num, protowire.EndGroupType)
}

var id16 = []byte("0123456789abcdef")

func TestDecodeTable(t *testing.T) {
	ev := raw(nil).bytes(1, id16).fixed64(2, 42).bytes(3, []byte("hello"))
	kube := raw(nil).bytes(1, []byte("ns")).bytes(2, []byte("pod")).bytes(3, []byte("uid"))
	badKube := raw(nil).bytes(1, []byte("ns")).bytes(4, []byte{0xff})
	cases := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"empty", nil, true},
		{"full batch", enc(t, sampleBatch()), true},
		{"unknown fields of every wire type", raw(nil).varint(1, 7).varint(99, 1).fixed32(98, 1).fixed64(97, 1).bytes(96, []byte("x")).
			group(95, raw(nil).varint(1, 1)).bytes(3, append(ev.varint(50, 1), raw(nil).bytes(51, nil)...)), true},
		{"known field with another wire type is unknown", raw(nil).bytes(1, []byte("x")).varint(2, 5).fixed64(3, 1).
			bytes(3, ev.varint(1, 3).varint(5, 1).bytes(8, nil)), true},
		{"source twice merges", raw(nil).bytes(3, ev.bytes(5, raw(nil).bytes(1, []byte("/a")).varint(2, 5)).bytes(5, raw(nil).bytes(3, []byte("in")))), true},
		{"kubernetes twice merges", raw(nil).bytes(3, ev.bytes(6, raw(nil).bytes(1, []byte("ns"))).bytes(6, raw(nil).bytes(2, []byte("pod")).bytes(1, []byte("ns2")))), true},
		{"scalar twice: last wins", raw(nil).varint(1, 1).varint(1, 2).bytes(2, []byte("a")).bytes(2, []byte("b")), true},
		{"events of one pod share its kubernetes", raw(nil).bytes(3, ev.bytes(6, kube)).bytes(3, ev.bytes(6, kube)).bytes(3, ev.bytes(6, kube)), true},
		{"a second kubernetes field after a shared one merges into a copy", raw(nil).bytes(3, ev.bytes(6, kube)).
			bytes(3, ev.bytes(6, kube).bytes(6, raw(nil).bytes(2, []byte("other")))).bytes(3, ev.bytes(6, kube)), true},
		{"an event with two kubernetes fields is not shared", raw(nil).bytes(3, ev.bytes(6, kube).bytes(6, raw(nil).bytes(2, []byte("other")))).
			bytes(3, ev.bytes(6, kube)), true},
		{"same kubernetes after an event without", raw(nil).bytes(3, ev.bytes(6, kube)).bytes(3, ev).bytes(3, ev.bytes(6, kube)), true},
		{"a path repeated", raw(nil).bytes(3, ev.bytes(5, raw(nil).bytes(1, []byte("/a")).varint(2, 1))).bytes(3, ev.bytes(5, raw(nil).bytes(1, []byte("/a")).varint(2, 2))), true},
		{"invalid UTF-8 in a repeated path", raw(nil).bytes(3, ev.bytes(5, raw(nil).bytes(1, []byte{0xff}))).bytes(3, ev.bytes(5, raw(nil).bytes(1, []byte{0xff}))), false},
		{"invalid UTF-8 path after a good one", raw(nil).bytes(3, ev.bytes(5, raw(nil).bytes(1, []byte("/a")))).bytes(3, ev.bytes(5, raw(nil).bytes(1, []byte{'/', 0xff}))), false},
		{"invalid UTF-8 in a repeated kubernetes", raw(nil).bytes(3, ev.bytes(6, badKube)).bytes(3, ev.bytes(6, badKube)), false},
		{"field key repeated: last wins", raw(nil).bytes(3, ev.bytes(7, raw(nil).bytes(1, []byte("k")).bytes(2, raw(nil).varint(2, 1))).
			bytes(7, raw(nil).bytes(1, []byte("k")).bytes(2, raw(nil).bytes(1, []byte("s"))))), true},
		{"field entry without key or value", raw(nil).bytes(3, ev.bytes(7, nil)), true},
		{"value oneof merged: later member wins", raw(nil).bytes(3, ev.bytes(7, raw(nil).bytes(1, []byte("k")).
			bytes(2, raw(nil).varint(2, 1)).bytes(2, raw(nil).fixed64(3, 7)))), true},
		{"value with every member in turn", raw(nil).bytes(3, ev.bytes(7, raw(nil).bytes(1, []byte("k")).
			bytes(2, raw(nil).bytes(1, []byte("s")).varint(2, 1).fixed64(3, 7).varint(4, 2)))), true},
		{"pod map entry repeated and without value", raw(nil).bytes(4, raw(nil).bytes(5, raw(nil).bytes(1, []byte("a")).bytes(2, []byte("1"))).
			bytes(5, raw(nil).bytes(1, []byte("a")).bytes(2, []byte("2"))).bytes(6, raw(nil).bytes(1, []byte("b"))).bytes(10, nil)), true},
		{"enum and uint32 out of range", raw(nil).bytes(3, ev.varint(4, 1<<40|3).varint(9, 1<<63).varint(8, 1<<35|9)), true},
		{"bool as large varint", raw(nil).bytes(3, ev.bytes(7, raw(nil).bytes(1, []byte("b")).bytes(2, raw(nil).varint(4, 1<<50)))), true},
		{"empty event and empty pod", raw(nil).bytes(3, nil).bytes(4, nil), true},
		{"truncated", enc(t, sampleBatch())[:40], false},
		{"field number 0", []byte{0x00, 0x01}, false},
		{"field number too large", protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), false},
		{"end group at top level", protowire.AppendTag(nil, 5, protowire.EndGroupType), false},
		{"end group inside an event", raw(nil).bytes(3, protowire.AppendTag(nil, 5, protowire.EndGroupType)), false},
		{"unmatched group", raw(nil).group(5, nil)[:1], false},
		{"wire type 6", []byte{0x0e}, false},
		{"varint overflow", append([]byte{0x08}, bytes.Repeat([]byte{0xff}, 10)...), false},
		{"length past the end", []byte{0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f}, false},
		{"invalid UTF-8 node", raw(nil).bytes(2, []byte{0xff}), false},
		{"invalid UTF-8 in message (bytes: fine)", raw(nil).bytes(3, raw(nil).bytes(3, []byte{0xff})), true},
		{"invalid UTF-8 original_time", raw(nil).bytes(3, ev.bytes(10, []byte{0xc3})), false},
		{"invalid UTF-8 source path", raw(nil).bytes(3, ev.bytes(5, raw(nil).bytes(1, []byte{0xff}))), false},
		{"invalid UTF-8 source input", raw(nil).bytes(3, ev.bytes(5, raw(nil).bytes(3, []byte{0xff}))), false},
		{"invalid UTF-8 source file_id", raw(nil).bytes(3, ev.bytes(5, raw(nil).bytes(4, []byte{0xff}))), false},
		{"invalid UTF-8 kubernetes container_id", raw(nil).bytes(3, ev.bytes(6, raw(nil).bytes(5, []byte{0xff}))), false},
		{"invalid UTF-8 field key", raw(nil).bytes(3, ev.bytes(7, raw(nil).bytes(1, []byte{0xff}))), false},
		{"invalid UTF-8 field str", raw(nil).bytes(3, ev.bytes(7, raw(nil).bytes(2, raw(nil).bytes(1, []byte{0xff})))), false},
		{"invalid UTF-8 pod uid", raw(nil).bytes(4, raw(nil).bytes(1, []byte{0xff})), false},
		{"invalid UTF-8 pod owner_name", raw(nil).bytes(4, raw(nil).bytes(9, []byte{0xff})), false},
		{"invalid UTF-8 pod label value", raw(nil).bytes(4, raw(nil).bytes(5, raw(nil).bytes(2, []byte{0xff}))), false},
		{"invalid UTF-8 container image key", raw(nil).bytes(4, raw(nil).bytes(10, raw(nil).bytes(1, []byte{0xff}))), false},
		{"invalid UTF-8 in an unknown field (not checked)", raw(nil).bytes(3, ev.bytes(77, []byte{0xff})), true},
		{"truncated source inside a good event", raw(nil).bytes(3, ev.bytes(5, []byte{0x0a, 0x05, 'a'})), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			same(t, c.data)
			_, err := Decode(c.data)
			if (err == nil) != c.ok {
				t.Fatalf("Decode: %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestInvalidUTF8NamesTheField(t *testing.T) {
	_, err := Decode(raw(nil).bytes(4, raw(nil).bytes(5, raw(nil).bytes(2, []byte{0xff}))))
	if !errors.Is(err, ErrInvalidUTF8) || !strings.Contains(err.Error(), "ferry.v1.Pod.labels") {
		t.Fatalf("err %v, want ErrInvalidUTF8 naming ferry.v1.Pod.labels", err)
	}
	// DecodeTrusted does not look.
	if _, err := DecodeTrusted(raw(nil).bytes(2, []byte{0xff})); err != nil {
		t.Fatalf("DecodeTrusted checked UTF-8: %v", err)
	}
}

func TestScanStopsOnCallbackError(t *testing.T) {
	data := enc(t, sampleBatch())
	stop := errors.New("stop")
	calls := 0
	_, err := Scan(data, func(int, *ferryv1.Event) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("Scan: %v after %d calls, want the callback's error after 1", err, calls)
	}
}

// TestBytesFieldsAreCapped: appending to a decoded id or message must not
// write into the bytes after it (another field, or a string's backing).
func TestBytesFieldsAreCapped(t *testing.T) {
	data := enc(t, sampleBatch())
	b, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(data)
	for _, e := range b.Events {
		_ = append(e.Id, "XXXXXXXX"...)
		_ = append(e.Message, "XXXXXXXX"...)
	}
	if !bytes.Equal(before, data) {
		t.Fatal("append to a decoded bytes field wrote into the input")
	}
	want := new(ferryv1.Batch)
	_ = proto.Unmarshal(data, want)
	if !proto.Equal(want, b) {
		t.Fatal("batch changed")
	}
}

func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		b := randomBatch(r)
		data := enc(t, b)
		got, err := Decode(data)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if !proto.Equal(b, got) {
			t.Fatalf("batch %d: round trip differs:\n got %v\nwant %v", i, got, b)
		}
		same(t, data)
		// Deterministic and non-deterministic (map order) encodings alike.
		det, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		same(t, det)
	}
}

// TestKnowsEveryField fills every field of every message of ferry.proto
// reachable from Batch (each member of a oneof in turn) and checks Decode
// against proto.Unmarshal: a field added to the schema and not to the
// decoder is skipped as unknown, and the batches differ.
func TestKnowsEveryField(t *testing.T) {
	for variant := range 4 {
		b := new(ferryv1.Batch)
		fill(b.ProtoReflect(), variant, 0)
		data := enc(t, b)
		got, err := Decode(data)
		if err != nil {
			t.Fatalf("variant %d: %v", variant, err)
		}
		if !proto.Equal(b, got) {
			t.Fatalf("variant %d: the decoder lost a field of ferry.proto (add it to package wire):\n got %v\nwant %v", variant, got, b)
		}
		checkAllSet(t, got.ProtoReflect(), variant)
	}
}

// fill sets every field of m to a non-zero value; of a oneof, member
// variant (mod its size).
func fill(m protoreflect.Message, variant, depth int) {
	if depth > 8 {
		panic("ferry.proto nests deeper than expected")
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if o := fd.ContainingOneof(); o != nil && o.Fields().Get(variant%o.Fields().Len()) != fd {
			continue
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			k := scalar(fd.MapKey(), variant).MapKey()
			if fd.MapValue().Message() != nil {
				v := mp.NewValue()
				fill(v.Message(), variant, depth+1)
				mp.Set(k, v)
			} else {
				mp.Set(k, scalar(fd.MapValue(), variant))
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 2 {
				if fd.Message() != nil {
					v := l.NewElement()
					fill(v.Message(), variant, depth+1)
					l.Append(v)
				} else {
					l.Append(scalar(fd, variant))
				}
			}
		case fd.Message() != nil:
			fill(m.Mutable(fd).Message(), variant, depth+1)
		default:
			m.Set(fd, scalar(fd, variant))
		}
	}
}

func scalar(fd protoreflect.FieldDescriptor, variant int) protoreflect.Value {
	n := int64(variant + 1)
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-é", fd.Name(), variant))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(fmt.Sprintf("%s-%d", fd.Name(), variant)))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(-n))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(-n << 40)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(n) << 20)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(n) << 50)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(n) + 0.5)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(float64(n) + 0.25)
	}
	panic(fmt.Sprintf("field %s: kind %v not handled by the test", fd.FullName(), fd.Kind()))
}

// checkAllSet fails when a field fill set is not set in m (a guard on the
// test itself).
func checkAllSet(t *testing.T, m protoreflect.Message, variant int) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if o := fd.ContainingOneof(); o != nil && o.Fields().Get(variant%o.Fields().Len()) != fd {
			continue
		}
		if !m.Has(fd) {
			t.Fatalf("%s not set after decoding", fd.FullName())
		}
		if fd.Message() != nil && !fd.IsMap() && !fd.IsList() {
			checkAllSet(t, m.Get(fd).Message(), variant)
		}
	}
}

// sampleBatch is a batch with every kind of content.
func sampleBatch() *ferryv1.Batch {
	return &ferryv1.Batch{Seq: 9, Node: "node-1", Events: []*ferryv1.Event{
		{Id: id16, TimeUnixNano: 1e18, Message: []byte("GET /index.html 200"), Stream: ferryv1.StreamName_STREAM_STDERR,
			Source:     &ferryv1.Source{Path: "/var/log/containers/web_prod_app-1.log", Offset: 1 << 33, Input: "containers", FileId: "1:2:abc", EndOffset: 99, Lines: 3},
			Kubernetes: &ferryv1.Kubernetes{Namespace: "prod", Pod: "web", PodUid: "u-1", Container: "app", ContainerId: "c1"},
			Fields: map[string]*ferryv1.Value{"s": {Kind: &ferryv1.Value_Str{Str: "x"}}, "i": {Kind: &ferryv1.Value_Int{Int: -3}},
				"d": {Kind: &ferryv1.Value_Double{Double: 2.5}}, "b": {Kind: &ferryv1.Value_Bool{Bool: true}}},
			Flags: 65, Kind: ferryv1.Kind_KIND_LOG, OriginalTime: "2300-01-01T00:00:00Z"},
		{Id: id16, Message: []byte("second")},
	}, Pods: []*ferryv1.Pod{{Uid: "u-1", Namespace: "prod", Name: "web", NodeName: "node-1",
		Labels: map[string]string{"app": "web", "tier": "front"}, Annotations: map[string]string{"a": "b"},
		NamespaceLabels: map[string]string{"env": "prod"}, OwnerKind: "Deployment", OwnerName: "web",
		ContainerImages: map[string]string{"app": "nginx:1"}}}}
}

// randomBatch returns a batch of random content (valid UTF-8 strings,
// among them multi-byte ones and empty ones).
func randomBatch(r *rand.Rand) *ferryv1.Batch {
	str := func() string {
		const alphabet = "abc/-_.:0é€😀"
		rs := []rune(alphabet)
		n := r.IntN(12)
		if r.IntN(5) == 0 {
			n = 0
		}
		var sb strings.Builder
		for range n {
			sb.WriteRune(rs[r.IntN(len(rs))])
		}
		return sb.String()
	}
	byts := func() []byte {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	}
	smap := func() map[string]string {
		if r.IntN(2) == 0 {
			return nil
		}
		m := map[string]string{}
		for range r.IntN(4) {
			m[str()] = str()
		}
		return m
	}
	b := &ferryv1.Batch{Seq: r.Uint64() >> r.IntN(64), Node: str()}
	for range r.IntN(20) {
		e := &ferryv1.Event{Id: byts(), TimeUnixNano: r.Int64() - r.Int64(), Message: byts(),
			Stream: ferryv1.StreamName(r.IntN(3)), Flags: r.Uint32() >> r.IntN(32), Kind: ferryv1.Kind(r.IntN(3))}
		if r.IntN(4) > 0 {
			e.Source = &ferryv1.Source{Path: str(), Offset: r.Int64() >> r.IntN(64), Input: str(), FileId: str(), EndOffset: r.Int64N(1000) - 10, Lines: r.Uint32N(5)}
			if n := len(b.Events); n > 0 && b.Events[n-1].Source != nil && r.IntN(2) == 0 {
				// The same file, further on.
				prev := b.Events[n-1].Source
				e.Source.Path, e.Source.FileId = prev.Path, prev.FileId
				if r.IntN(2) == 0 {
					e.Source.Input = prev.Input
				}
			}
		}
		if n := len(b.Events); n > 0 && r.IntN(2) == 0 {
			e.Kubernetes = b.Events[n-1].Kubernetes // the same pod
		} else if r.IntN(4) > 0 {
			e.Kubernetes = &ferryv1.Kubernetes{Namespace: str(), Pod: str(), PodUid: str(), Container: str(), ContainerId: str()}
		}
		if r.IntN(3) == 0 {
			e.Fields = map[string]*ferryv1.Value{}
			for range r.IntN(5) {
				var v *ferryv1.Value
				switch r.IntN(5) {
				case 0:
					v = &ferryv1.Value{Kind: &ferryv1.Value_Str{Str: str()}}
				case 1:
					v = &ferryv1.Value{Kind: &ferryv1.Value_Int{Int: r.Int64() - r.Int64()}}
				case 2:
					v = &ferryv1.Value{Kind: &ferryv1.Value_Double{Double: r.NormFloat64()}}
				case 3:
					v = &ferryv1.Value{Kind: &ferryv1.Value_Bool{Bool: r.IntN(2) == 0}}
				default:
					v = &ferryv1.Value{}
				}
				e.Fields[str()] = v
			}
		}
		if r.IntN(10) == 0 {
			e.OriginalTime = str()
		}
		b.Events = append(b.Events, e)
	}
	for range r.IntN(3) {
		b.Pods = append(b.Pods, &ferryv1.Pod{Uid: str(), Namespace: str(), Name: str(), NodeName: str(),
			Labels: smap(), Annotations: smap(), NamespaceLabels: smap(), OwnerKind: str(), OwnerName: str(), ContainerImages: smap()})
	}
	return b
}

// FuzzDecode: Decode, DecodeTrusted and Scan accept exactly what
// proto.Unmarshal accepts, and give the same batch.
func FuzzDecode(f *testing.F) {
	f.Add(enc(f, sampleBatch()))
	r := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		f.Add(enc(f, randomBatch(r)))
	}
	ev := raw(nil).bytes(1, id16).fixed64(2, 42).bytes(3, []byte("hello"))
	f.Add([]byte(raw(nil).varint(1, 7).group(95, raw(nil).varint(1, 1)).bytes(3, ev.bytes(7, raw(nil).bytes(1, []byte("k"))))))
	f.Add([]byte(raw(nil).bytes(4, raw(nil).bytes(5, raw(nil).bytes(1, []byte("a")).bytes(2, []byte("1"))))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		same(t, data)
	})
}

// TestSharedKubernetes: events of one pod in a row share one Kubernetes,
// and a second kubernetes field of an event does not change the others'.
func TestSharedKubernetes(t *testing.T) {
	ev := raw(nil).bytes(1, id16)
	kube := raw(nil).bytes(1, []byte("ns")).bytes(2, []byte("pod"))
	data := raw(nil).bytes(3, ev.bytes(6, kube)).bytes(3, ev.bytes(6, kube)).
		bytes(3, ev.bytes(6, kube).bytes(6, raw(nil).bytes(2, []byte("other")))).bytes(3, ev.bytes(6, kube))
	b, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	k := func(i int) *ferryv1.Kubernetes { return b.Events[i].Kubernetes }
	if k(0) != k(1) || k(1) == k(2) || k(3) == k(2) {
		t.Fatalf("sharing: %p %p %p %p, want events 0 and 1 sharing, 2 apart", k(0), k(1), k(2), k(3))
	}
	if k(0).Pod != "pod" || k(2).Pod != "other" || k(2).Namespace != "ns" || k(3).Pod != "pod" {
		t.Fatalf("events: %v / %v", k(0), k(2))
	}
}

// FuzzShortEntry: an entry of Event.fields that the short path takes is
// one the general path takes too, checking UTF-8 or not.
func FuzzShortEntry(f *testing.F) {
	entry := func(v raw) []byte { return raw(nil).bytes(1, []byte("source.ip")).bytes(2, v) }
	f.Add(entry(raw(nil).bytes(1, []byte("81.2.69.142"))))
	f.Add(entry(raw(nil).varint(2, 7)))
	f.Add(entry(raw(nil).varint(4, 1)))
	f.Add(entry(raw(nil).fixed64(3, 42)))
	f.Add(entry(nil))
	f.Add(entry(raw(nil).bytes(1, []byte{0xff})))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, validate := range []bool{false, true} {
			d := &decoder{validate: validate}
			if d.shortEntryOK(b) {
				if err := d.anyFieldEntry(b, nil); err != nil {
					t.Fatalf("validate %v: short path took %x, the general path refuses it: %v", validate, b, err)
				}
			}
		}
	})
}
