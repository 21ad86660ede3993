package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ferrylogs/ferry/pipeline/parse"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// encodesLikeProto checks AppendBatch on b against proto.Marshal: Size is
// the length of the output, the output decodes (proto.Unmarshal) to what
// proto.Marshal's output decodes to, and, when exact, to b itself. It
// returns the decoded batch.
func encodesLikeProto(t *testing.T, b *ferryv1.Batch, exact bool) *ferryv1.Batch {
	t.Helper()
	prefix := []byte("prefix")
	out, err := AppendBatch(bytes.Clone(prefix), b)
	if err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("AppendBatch changed what dst held: %q", out[:len(prefix)])
	}
	out = out[len(prefix):]
	if n := Size(b); n != len(out) {
		t.Fatalf("Size %d, AppendBatch wrote %d bytes", n, len(out))
	}
	var got ferryv1.Batch
	if err := proto.Unmarshal(out, &got); err != nil {
		t.Fatalf("proto.Unmarshal of AppendBatch's output: %v (%x)", err, out)
	}
	var want ferryv1.Batch
	if err := proto.Unmarshal(enc(t, b), &want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&want, &got) {
		t.Fatalf("AppendBatch and proto.Marshal decode differently:\n got %v\nwant %v", &got, &want)
	}
	if exact && !proto.Equal(b, &got) {
		t.Fatalf("round trip differs:\n got %v\nwant %v", &got, b)
	}
	return &got
}

// unknownField is a well-formed field of a number no ferry.proto message
// uses.
func unknownField(r *rand.Rand) []byte {
	switch r.IntN(3) {
	case 0:
		return raw(nil).varint(1000+protowire.Number(r.IntN(50)), r.Uint64())
	case 1:
		return raw(nil).bytes(2000, []byte("unknown"))
	default:
		return raw(nil).fixed32(3000, r.Uint32())
	}
}

// decorate adds to a random batch what randomBatch leaves out: unknown
// fields on every kind of message, events sharing a fields map, pods that
// hold nothing but unknown fields (the agent's wirePod), and, when nils,
// nil events, pods and map values (which proto.Marshal writes as empty
// messages: the batch no longer round-trips to itself, only to what
// proto.Marshal gives).
func decorate(r *rand.Rand, b *ferryv1.Batch, nils bool) *ferryv1.Batch {
	some := func(m protoreflect.Message) {
		if r.IntN(8) == 0 {
			m.SetUnknown(protoreflect.RawFields(append(unknownField(r), unknownField(r)...)))
		}
	}
	some(b.ProtoReflect())
	var prevFields map[string]*ferryv1.Value
	for i, e := range b.Events {
		some(e.ProtoReflect())
		if e.Source != nil {
			some(e.Source.ProtoReflect())
		}
		if e.Kubernetes != nil && (i == 0 || b.Events[i-1].Kubernetes != e.Kubernetes) {
			some(e.Kubernetes.ProtoReflect())
		}
		for _, v := range e.Fields {
			some(v.ProtoReflect())
		}
		if prevFields != nil && r.IntN(2) == 0 {
			e.Fields = prevFields // a file's static fields
		}
		prevFields = e.Fields
	}
	for i, p := range b.Pods {
		switch r.IntN(4) {
		case 0:
			some(p.ProtoReflect())
		case 1:
			raw, err := proto.Marshal(p)
			if err != nil {
				panic(err)
			}
			w := new(ferryv1.Pod)
			w.ProtoReflect().SetUnknown(raw)
			b.Pods[i] = w
		}
	}
	if nils {
		for range 1 + r.IntN(3) {
			switch r.IntN(3) {
			case 0:
				b.Events = append(b.Events, nil)
			case 1:
				b.Pods = append(b.Pods, nil)
			default:
				b.Events = append(b.Events, &ferryv1.Event{Fields: map[string]*ferryv1.Value{"nil": nil, "typed-nil": {Kind: (*ferryv1.Value_Str)(nil)}}})
			}
		}
	}
	return b
}

// TestEncodeRoundTripRandom: 2,000 random batches (every field, maps,
// oneof kinds, unknown fields, shared Kubernetes and fields, empty and nil
// messages, arbitrary bytes in bytes fields) encode as proto.Marshal does.
func TestEncodeRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 2000 {
		nils := i%5 == 4
		b := decorate(r, randomBatch(r), nils)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			wirePods := false
			for _, p := range b.Pods {
				if p != nil && p.Uid == "" && len(p.ProtoReflect().GetUnknown()) > 0 {
					wirePods = true
				}
			}
			encodesLikeProto(t, b, !nils && !wirePods)
		})
	}
}

func TestEncodeTable(t *testing.T) {
	shared := &ferryv1.Kubernetes{Namespace: "prod", Pod: "web", PodUid: "u-1", Container: "app"}
	static := map[string]*ferryv1.Value{"env": {Kind: &ferryv1.Value_Str{Str: "prod"}}, "n": {Kind: &ferryv1.Value_Int{Int: 0}}}
	ev := func(k *ferryv1.Kubernetes, f map[string]*ferryv1.Value) *ferryv1.Event {
		return &ferryv1.Event{Id: id16, Message: []byte("m"), Kubernetes: k, Fields: f}
	}
	for _, c := range []struct {
		name  string
		b     *ferryv1.Batch
		exact bool
	}{
		{"nil batch", nil, false},
		{"empty batch", &ferryv1.Batch{}, true},
		{"empty event", &ferryv1.Batch{Events: []*ferryv1.Event{{}}}, true},
		{"empty submessages", &ferryv1.Batch{Events: []*ferryv1.Event{{Source: &ferryv1.Source{}, Kubernetes: &ferryv1.Kubernetes{}, Fields: map[string]*ferryv1.Value{}}}}, true},
		{"empty map key and value", &ferryv1.Batch{Events: []*ferryv1.Event{{Fields: map[string]*ferryv1.Value{"": {}}}},
			Pods: []*ferryv1.Pod{{Labels: map[string]string{"": ""}}}}, true},
		{"oneof zero values", &ferryv1.Batch{Events: []*ferryv1.Event{{Fields: map[string]*ferryv1.Value{
			"s": {Kind: &ferryv1.Value_Str{}}, "i": {Kind: &ferryv1.Value_Int{}}, "d": {Kind: &ferryv1.Value_Double{}}, "b": {Kind: &ferryv1.Value_Bool{}}}}}}, true},
		{"negative and large scalars", &ferryv1.Batch{Seq: 1<<64 - 1, Events: []*ferryv1.Event{{TimeUnixNano: -1, Stream: -3, Kind: 1 << 30, Flags: 1<<32 - 1,
			Source: &ferryv1.Source{Offset: -1, EndOffset: 1 << 62, Lines: 1<<32 - 1}, Fields: map[string]*ferryv1.Value{"i": {Kind: &ferryv1.Value_Int{Int: -1 << 63}}}}}}, true},
		{"sample", sampleBatch(), true},
		{"shared kubernetes and fields", &ferryv1.Batch{Events: []*ferryv1.Event{ev(shared, static), ev(shared, static), ev(nil, nil), ev(shared, static),
			ev(&ferryv1.Kubernetes{Pod: "other"}, static), ev(shared, nil)}}, true},
		{"nil elements", &ferryv1.Batch{Events: []*ferryv1.Event{nil, ev(shared, nil), nil}, Pods: []*ferryv1.Pod{nil}}, false},
		{"long message", &ferryv1.Batch{Events: []*ferryv1.Event{{Message: bytes.Repeat([]byte("x"), 1<<21)}}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			encodesLikeProto(t, c.b, c.exact)
		})
	}
}

// TestEncodeSharedWrittenOnce: events sharing a Kubernetes or fields map
// get equal but separate decoded copies, and the copies are of the right
// message (a Kubernetes between two uses of another is not mistaken).
func TestEncodeSharedWrittenOnce(t *testing.T) {
	k1, k2 := &ferryv1.Kubernetes{Pod: "one"}, &ferryv1.Kubernetes{Pod: "two"}
	f1 := map[string]*ferryv1.Value{"f": {Kind: &ferryv1.Value_Str{Str: "one"}}}
	f2 := map[string]*ferryv1.Value{"f": {Kind: &ferryv1.Value_Str{Str: "two"}}}
	b := &ferryv1.Batch{}
	for _, x := range []struct {
		k *ferryv1.Kubernetes
		f map[string]*ferryv1.Value
	}{{k1, f1}, {k1, f1}, {k2, f1}, {k1, f2}, {k1, f2}, {k2, f2}} {
		b.Events = append(b.Events, &ferryv1.Event{Kubernetes: x.k, Fields: x.f})
	}
	got := encodesLikeProto(t, b, true)
	for i, e := range got.Events {
		if e.Kubernetes.Pod != b.Events[i].Kubernetes.Pod || e.Fields["f"].GetStr() != b.Events[i].Fields["f"].GetStr() {
			t.Fatalf("event %d: %v, want %v", i, e, b.Events[i])
		}
	}
}

// TestEncoderKnowsEveryField fills every field of every message of
// ferry.proto reachable from Batch (each member of a oneof in turn), and
// unknown fields on each message: a field added to the schema and not to
// the encoder is lost on the way, and the round trip differs.
func TestEncoderKnowsEveryField(t *testing.T) {
	for variant := range 4 {
		b := new(ferryv1.Batch)
		fill(b.ProtoReflect(), variant, 0)
		got := encodesLikeProto(t, b, true)
		checkAllSet(t, got.ProtoReflect(), variant)

		n := 0
		walkMessages(b.ProtoReflect(), func(m protoreflect.Message) {
			n++
			m.SetUnknown(protoreflect.RawFields(raw(nil).varint(1000+protowire.Number(n), uint64(n))))
		})
		got = encodesLikeProto(t, b, true)
		seen := 0
		walkMessages(got.ProtoReflect(), func(m protoreflect.Message) {
			if len(m.GetUnknown()) > 0 {
				seen++
			}
		})
		if seen != n {
			t.Fatalf("variant %d: unknown fields on %d of %d messages after the round trip", variant, seen, n)
		}
	}
}

// walkMessages calls f with m and every message in it.
func walkMessages(m protoreflect.Message, f func(protoreflect.Message)) {
	f(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walkMessages(mv.Message(), f)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					walkMessages(v.List().Get(i).Message(), f)
				}
			}
		case fd.Message() != nil:
			walkMessages(v.Message(), f)
		}
		return true
	})
}

// stringSites calls corrupt for the n-th string in m (a string field, a
// string map key or value; fields in descriptor order), which it may
// change; it returns the number of strings seen so far.
func stringSites(m protoreflect.Message, n int, seen *int, corrupt func(get func() string, set func(string))) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		visit := func(get func() string, set func(string)) {
			if *seen == n {
				corrupt(get, set)
			}
			*seen++
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			var keys []protoreflect.MapKey
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool { keys = append(keys, k); return true })
			for _, k := range keys {
				switch {
				case fd.MapValue().Message() != nil:
					stringSites(mp.Get(k).Message(), n, seen, corrupt)
				case fd.MapValue().Kind() == protoreflect.StringKind:
					visit(func() string { return mp.Get(k).String() }, func(s string) { mp.Set(k, protoreflect.ValueOfString(s)) })
				}
				if fd.MapKey().Kind() == protoreflect.StringKind { // last: it may change the key
					visit(k.String, func(s string) {
						val := mp.Get(k)
						mp.Clear(k)
						mp.Set(protoreflect.ValueOfString(s).MapKey(), val)
					})
				}
			}
		case fd.IsList():
			if fd.Message() != nil {
				for j := 0; j < v.List().Len(); j++ {
					stringSites(v.List().Get(j).Message(), n, seen, corrupt)
				}
			}
		case fd.Message() != nil:
			stringSites(v.Message(), n, seen, corrupt)
		case fd.Kind() == protoreflect.StringKind:
			visit(v.String, func(s string) { m.Set(fd, protoreflect.ValueOfString(s)) })
		}
	}
}

// TestEncodeRefusesInvalidUTF8: invalid UTF-8 in any string of a batch
// (every string field, map key and map value of ferry.proto, found by
// walking the descriptors) is refused, as proto.Marshal refuses it, with
// ErrInvalidUTF8; in a bytes field it is fine.
func TestEncodeRefusesInvalidUTF8(t *testing.T) {
	total := 0
	for variant := range 4 {
		for site := 0; ; site++ {
			b := new(ferryv1.Batch)
			fill(b.ProtoReflect(), variant, 0)
			// A second event sharing the first one's Kubernetes and
			// fields: the check is not skipped for shared messages.
			b.Events = append(b.Events, &ferryv1.Event{Kubernetes: b.Events[0].Kubernetes, Fields: b.Events[0].Fields, Source: b.Events[1].Source})
			seen, hit := 0, ""
			stringSites(b.ProtoReflect(), site, &seen, func(get func() string, set func(string)) {
				hit = get()
				set(get()[:2] + "\xff" + get()[2:])
			})
			if site >= seen {
				break
			}
			total++
			if _, err := proto.Marshal(b); err == nil {
				t.Fatalf("variant %d, string %q: proto.Marshal takes invalid UTF-8", variant, hit)
			}
			out, err := AppendBatch([]byte("dst"), b)
			if !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("variant %d, string %q made invalid: AppendBatch: %v, want ErrInvalidUTF8", variant, hit, err)
			}
			if out != nil {
				t.Fatalf("AppendBatch returned %q with its error", out)
			}
		}
	}
	if total < 4*20 {
		t.Fatalf("only %d string sites found: the walk is broken", total)
	}
	b := &ferryv1.Batch{Events: []*ferryv1.Event{{Id: []byte("\xff\xfe"), Message: []byte("\xc3\x28")}}}
	encodesLikeProto(t, b, true)
}

// TestEncodeAllocations: encoding allocates nothing per event (the pooled
// scratch aside, nothing at all into a buffer large enough).
func TestEncodeAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items: allocations are not counted")
	}
	for _, b := range []*ferryv1.Batch{criBatch(500), haproxyBatch(500)} {
		buf := make([]byte, 0, Size(b))
		AppendBatch(buf, b) // warm the pool
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := AppendBatch(buf, b); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 1 {
			t.Errorf("%d events: %.1f allocations per batch", len(b.Events), allocs)
		}
	}
}

// FuzzEncode: whatever proto.Unmarshal takes, AppendBatch writes back as
// proto.Marshal would (unknown fields included).
func FuzzEncode(f *testing.F) {
	f.Add(enc(f, sampleBatch()))
	r := rand.New(rand.NewPCG(7, 8))
	for range 8 {
		f.Add(enc(f, decorate(r, randomBatch(r), false)))
	}
	f.Add(enc(f, haproxyBatch(3)))
	ev := raw(nil).bytes(1, id16).fixed64(2, 42).bytes(3, []byte("hello"))
	f.Add([]byte(raw(nil).varint(1, 7).group(95, raw(nil).varint(1, 1)).bytes(3, ev.bytes(7, raw(nil).bytes(1, []byte("k"))))))
	f.Add([]byte(raw(nil).bytes(4, raw(nil).bytes(5, raw(nil).bytes(1, []byte("a")).bytes(2, []byte("1"))))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b ferryv1.Batch
		if proto.Unmarshal(data, &b) != nil {
			return
		}
		encodesLikeProto(t, &b, true)
	})
}

// criBatch is what the agent sends for container logs: n events of about
// 120 bytes from 10 pods in runs of 50 (the agent batches a file's
// chunks), the events of a pod sharing one *Kubernetes, with each pod's
// metadata pre-encoded as the agent carries it (a Pod of unknown fields).
func criBatch(n int) *ferryv1.Batch {
	b := &ferryv1.Batch{Seq: 1, Node: "node-1"}
	kubes := make([]*ferryv1.Kubernetes, 10)
	for p := range kubes {
		kubes[p] = &ferryv1.Kubernetes{Namespace: "prod", Pod: fmt.Sprintf("web-7d9f8-%05d", p), PodUid: fmt.Sprintf("5f1e2d3c-0000-4000-8000-%012d", p),
			Container: "app", ContainerId: "containerd://0123456789abcdef0123456789abcdef"}
		raw, err := proto.Marshal(&ferryv1.Pod{Uid: kubes[p].PodUid, Namespace: "prod", Name: kubes[p].Pod,
			NodeName: "node-1", Labels: map[string]string{"app": "web", "pod-template-hash": "7d9f8"}, OwnerKind: "Deployment", OwnerName: "web",
			ContainerImages: map[string]string{"app": "nginx:1.27"}})
		if err != nil {
			panic(err)
		}
		w := new(ferryv1.Pod)
		w.ProtoReflect().SetUnknown(raw)
		b.Pods = append(b.Pods, w)
	}
	for i := range n {
		p := i / 50 % len(kubes)
		path := fmt.Sprintf("/var/log/containers/%s_prod_app-0123456789abcdef.log", kubes[p].Pod)
		b.Events = append(b.Events, &ferryv1.Event{Id: []byte("0123456789abcdef"), TimeUnixNano: 1.7e18 + int64(i),
			Message: []byte(strings.Repeat("x", 100) + fmt.Sprintf(" line %06d", i)), Stream: ferryv1.StreamName_STREAM_STDOUT,
			Source:     &ferryv1.Source{Path: path, Offset: int64(i) * 130, Input: "containers", FileId: "2049:1234567:9f86d081884c7d65"},
			Kubernetes: kubes[p], Kind: ferryv1.Kind_KIND_LOG})
	}
	return b
}

// haproxyBatch is n HAProxy request log events, parsed by the agent's
// parser (about 25 fields each).
func haproxyBatch(n int) *ferryv1.Batch {
	parser := parse.HAProxyEvent(time.UTC)
	b := &ferryv1.Batch{Seq: 2, Node: "node-1"}
	for i := range n {
		line := fmt.Sprintf(`<134>Nov 30 11:25:44 haproxy[13509]: 81.2.69.%d:%d [30/Nov/2026:11:25:44.260] fe_http be_app/app%d 0/0/1/%d/%d 200 %d - - ---- 12/12/3/1/0 0/0 {example.com|curl/8.5.0} {r1} "GET /api/v1/items/%d?page=2&sort=name HTTP/1.1"`,
			i%250, 40000+i, i%4, i%50, 10+i%50, 1000+i, i)
		ev := &ferryv1.Event{Id: []byte("0123456789abcdef"), TimeUnixNano: 1.7e18 + int64(i), Message: []byte(line),
			Source: &ferryv1.Source{Path: "/var/log/haproxy.log", Offset: int64(i) * 250, Input: "haproxy", FileId: "2049:7654321:0f86d081884c7d65"},
			Kind:   ferryv1.Kind_KIND_LOG}
		parser(ev, ev.Message)
		if ev.Flags&uint32(ferryv1.Flag_FLAG_UNPARSED) != 0 {
			panic(fmt.Sprintf("%s: %v", line, ev.Fields))
		}
		b.Events = append(b.Events, ev)
	}
	return b
}

// TestMarshalBatchExtra: events whose fields are partly in their map and
// partly encoded beside it (extra) encode as the events with every field
// in the map do: the same size, and proto.Equal once decoded; with the
// whole map encoded, the same bytes.
func TestMarshalBatchExtra(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	alloc := func(n int) []byte { return make([]byte, 0, n) }
	for i := range 500 {
		b := decorate(r, randomBatch(r), false)
		split := &ferryv1.Batch{Seq: b.Seq, Node: b.Node, Pods: b.Pods}
		split.ProtoReflect().SetUnknown(b.ProtoReflect().GetUnknown())
		var extra [][]byte
		for j, ev := range b.Events {
			if len(ev.GetFields()) == 0 || r.IntN(2) == 0 {
				split.Events = append(split.Events, ev) // shared maps stay shared
				continue
			}
			c := proto.Clone(ev).(*ferryv1.Event)
			moved := map[string]*ferryv1.Value{}
			for k, v := range c.Fields {
				if r.IntN(2) == 0 {
					moved[k] = v
					delete(c.Fields, k)
				}
			}
			enc, err := proto.Marshal(&ferryv1.Event{Fields: moved})
			if err != nil {
				t.Fatal(err)
			}
			for len(extra) < j {
				extra = append(extra, nil)
			}
			extra = append(extra, enc)
			split.Events = append(split.Events, c)
		}
		out, err := MarshalBatchExtra(split, extra, alloc)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		one, err := AppendBatchExtra([]byte("dst"), split, extra)
		if err != nil || string(one[:3]) != "dst" || len(one)-3 != len(out) {
			t.Fatalf("batch %d: AppendBatchExtra wrote %d bytes (%v), MarshalBatchExtra %d", i, len(one)-3, err, len(out))
		}
		var got ferryv1.Batch
		if err := proto.Unmarshal(out, &got); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if n := Size(b); n != len(out) {
			t.Fatalf("batch %d: %d bytes, the batch with every field in its maps is %d\n got %v\nwant %v", i, len(out), n, &got, b)
		}
		var want ferryv1.Batch
		if err := proto.Unmarshal(enc(t, b), &want); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, &want) {
			t.Fatalf("batch %d decodes differently:\n got %v\nwant %v", i, &got, &want)
		}
	}
	// One field, all of it encoded beside an empty map: the same bytes as
	// proto.Marshal of the event with the map.
	ev := &ferryv1.Event{Id: []byte("0123456789abcdef"), Message: []byte("m"), Fields: map[string]*ferryv1.Value{"k": {Kind: &ferryv1.Value_Int{Int: -3}}}, Flags: 2}
	want := enc(t, &ferryv1.Batch{Seq: 1, Events: []*ferryv1.Event{ev, ev}})
	fields, _ := proto.Marshal(&ferryv1.Event{Fields: ev.Fields})
	bare := &ferryv1.Event{Id: ev.Id, Message: ev.Message, Flags: ev.Flags}
	got, err := MarshalBatchExtra(&ferryv1.Batch{Seq: 1, Events: []*ferryv1.Event{bare, ev}}, [][]byte{fields}, alloc)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%x, %v; want %x", got, err, want)
	}
	got, err = AppendBatchExtra(nil, &ferryv1.Batch{Seq: 1, Events: []*ferryv1.Event{bare, ev}}, [][]byte{fields})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("AppendBatchExtra: %x, %v; want %x", got, err, want)
	}
}

// TestEncodeLengthPrefixes: the one-pass encoder reserves an event's
// length prefix before writing it; events whose lengths take 1, 2, 3 and
// 4 bytes, in every order, sharing Kubernetes and fields (which later
// events copy from the output, after it moved), encode as proto.Marshal
// encodes them, byte for byte (one-entry maps: no order to differ).
func TestEncodeLengthPrefixes(t *testing.T) {
	kube := &ferryv1.Kubernetes{Namespace: "ns", Pod: "pod", Container: "c"}
	fields := map[string]*ferryv1.Value{"k": {Kind: &ferryv1.Value_Str{Str: "v"}}}
	sizes := []int{0, 10, 100, 120, 127, 128, 200, 16000, 16383, 16384, 20000, 2100000}
	r := rand.New(rand.NewPCG(9, 10))
	for range 200 {
		b := &ferryv1.Batch{Seq: 3, Node: "n"}
		for range 1 + r.IntN(8) {
			ev := &ferryv1.Event{Message: bytes.Repeat([]byte("m"), sizes[r.IntN(len(sizes))]), Flags: uint32(r.IntN(3))}
			if r.IntN(3) > 0 {
				ev.Kubernetes = kube
			}
			if r.IntN(3) > 0 {
				ev.Fields = fields
			}
			b.Events = append(b.Events, ev)
		}
		want := enc(t, b)
		got, err := AppendBatch([]byte("dst"), b)
		if err != nil || !bytes.Equal(got[3:], want) {
			t.Fatalf("%d events: AppendBatch differs from proto.Marshal (%v)", len(b.Events), err)
		}
	}
}
