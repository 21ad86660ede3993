package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"sync"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoimpl"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// The encoder: the agent's one fast marshal of ferry.v1.Batch (its
// outgoing gRPC messages, see transport's codec). It writes what
// proto.Marshal writes (fields in number order, proto3 zero scalars
// omitted, a message-typed field or element that is set written even when
// empty, map entries with key and value always present, each message's
// unknown fields after its known ones), except that map entries come in
// Go's map order, as proto.Marshal's do unless Deterministic: decoded,
// both are proto.Equal. Like proto.Marshal it refuses a string field that
// is not valid UTF-8 (ErrInvalidUTF8, naming the field): the aggregator's
// decoder would refuse the batch.
//
// MarshalBatch sizes a batch first, without reflection (the size of every
// event is kept for the second pass), then writes it into one buffer of
// exactly that size; AppendBatch and AppendBatchExtra (encode_onepass.go,
// what the agent sends with) write it in one pass, each event's length
// filled in after the event. Events in a row that share a *Kubernetes (every event of a
// pod) or a fields map (a file's static fields) size, validate and encode
// it once: the later events copy the bytes the first one wrote. It
// allocates nothing per event (the scratch of sizes is pooled).
//
// Keep it in step with proto/ferry/v1/ferry.proto:
// TestEncoderKnowsEveryField fails when the schema has a field this
// encoder does not write.

// Size returns the length of the encoding of b: of AppendBatch's output
// when b holds no invalid UTF-8 in a string field.
func Size(b *ferryv1.Batch) int {
	e := getEncoder()
	defer putEncoder(e)
	n, _ := e.size(b)
	return n
}

// AppendBatch appends the encoding of b (a ferry.v1.Batch, as
// proto.Marshal writes it, map order aside) to dst, in one pass (see
// AppendBatchExtra), growing dst as needed. The error wraps
// ErrInvalidUTF8 when a string field holds invalid UTF-8; the result is
// nil then.
func AppendBatch(dst []byte, b *ferryv1.Batch) ([]byte, error) {
	return AppendBatchExtra(dst, b, nil)
}

// MarshalBatch encodes b into the buffer alloc returns: alloc is called
// once with the size of the encoding and returns a slice whose spare
// capacity (beyond its length) holds at least that many bytes. The result
// is that slice with the encoding appended. On error (invalid UTF-8 in a
// string field) alloc is not called.
func MarshalBatch(b *ferryv1.Batch, alloc func(size int) []byte) ([]byte, error) {
	return MarshalBatchExtra(b, nil, alloc)
}

// MarshalBatchExtra is MarshalBatch for a batch some of whose events have
// more fields than their Fields map holds, already encoded: extra[i], when
// i < len(extra), is appended to the fields of event i, as entries of
// ferry.v1.Event.fields (field 7, each entry with its tag and length, as
// parse.HAProxyParser.AppendFields writes them), after those of its Fields
// map. The bytes are trusted: they are neither parsed nor checked for
// UTF-8, and a key must not be both in them and in the event's Fields
// map. The result
// is what proto.Marshal writes for the event whose Fields map holds those
// entries too (map order aside).
func MarshalBatchExtra(b *ferryv1.Batch, extra [][]byte, alloc func(size int) []byte) ([]byte, error) {
	e := getEncoder()
	defer putEncoder(e)
	e.extra = extra
	n, err := e.size(b)
	if err != nil {
		return nil, err
	}
	dst := alloc(n)
	if cap(dst)-len(dst) < n {
		return nil, fmt.Errorf("wire: buffer for a batch of %d bytes has room for %d", n, cap(dst)-len(dst))
	}
	start := len(dst)
	dst = e.appendBatch(dst, b)
	if len(dst)-start != n {
		// A bug here, or the batch changed while it was encoded.
		return nil, fmt.Errorf("wire: encoded %d bytes of a batch sized %d", len(dst)-start, n)
	}
	return dst, nil
}

// encoder is the scratch of one encoding: the size of every event (the
// sizing pass fills it, the writing pass reads it), and the last shared
// submessages seen.
type encoder struct {
	evSize []uint32
	// extra: more encoded fields of the events (see MarshalBatchExtra).
	extra [][]byte
	// The entries of every fields map sized, in the order sized (the
	// writing pass takes them in the same order: one iteration of a map).
	entries []entry

	// Sizing: the last Kubernetes and fields map sized, and their sizes;
	// the string data last validated for each Source string.
	kube     *ferryv1.Kubernetes
	kubeSize int
	fields   unsafe.Pointer
	fsSize   int
	path     strRef
	input    strRef
	fileID   strRef
	// Keys of fields maps validated, by address: a parser's keys are
	// constants, the same strings event after event.
	keys [64]strRef
}

// strRef identifies a string's bytes (validated before) by address.
type strRef struct {
	p *byte
	n int
}

var encoders = sync.Pool{New: func() any { return new(encoder) }}

func getEncoder() *encoder { return encoders.Get().(*encoder) }

// entry is one entry of a fields map, with the size of its value.
type entry struct {
	k    string
	v    *ferryv1.Value
	size uint32
	// unknown: v has unknown fields.
	unknown bool
}

func putEncoder(e *encoder) {
	if cap(e.evSize) > 1<<16 {
		e.evSize = nil
	}
	if cap(e.entries) > 1<<16 {
		e.entries = nil
	}
	clear(e.entries) // drop the references to the batch
	*e = encoder{evSize: e.evSize[:0], entries: e.entries[:0]}
	encoders.Put(e)
}

func mapID(m map[string]*ferryv1.Value) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&m))
}

func sizeVarint(v uint64) int {
	// 1 + floor(log128(v)), as protowire.SizeVarint.
	return int((9*uint32(bits.Len64(v)) + 64) / 64)
}

// sizeBytes is the size of a length-delimited field with a one-byte tag.
func sizeBytes(n int) int { return 1 + sizeVarint(uint64(n)) + n }

func sizeString(s string) int {
	if s == "" {
		return 0
	}
	return sizeBytes(len(s))
}

func sizeUvarint(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + sizeVarint(v)
}

func utf8Error(field string) error {
	return fmt.Errorf("%w: %s", ErrInvalidUTF8, field)
}

// valid checks s, once for bytes checked before in a row (ref).
func valid(s string, ref *strRef) bool {
	r := strRef{unsafe.StringData(s), len(s)}
	if r == *ref {
		return true
	}
	if !utf8.ValidString(s) {
		return false
	}
	*ref = r
	return true
}

func (e *encoder) size(b *ferryv1.Batch) (int, error) {
	if b == nil {
		return 0, nil
	}
	n := sizeUvarint(b.Seq) + sizeString(b.Node)
	if !utf8.ValidString(b.Node) {
		return 0, utf8Error("ferry.v1.Batch.node")
	}
	if cap(e.evSize) < len(b.Events) {
		e.evSize = make([]uint32, len(b.Events))
	}
	e.evSize = e.evSize[:len(b.Events)]
	for i, ev := range b.Events {
		s, err := e.sizeEvent(ev)
		if err != nil {
			return 0, err
		}
		if i < len(e.extra) && ev != nil {
			s += len(e.extra[i])
		}
		if s > math.MaxUint32 {
			return 0, fmt.Errorf("wire: event %d of %d bytes", i, s)
		}
		e.evSize[i] = uint32(s)
		n += sizeBytes(s)
	}
	for _, p := range b.Pods {
		s, err := sizePod(p)
		if err != nil {
			return 0, err
		}
		n += sizeBytes(s)
	}
	return n + len(unknown(b, batchUnknown)), nil
}

func (e *encoder) sizeEvent(ev *ferryv1.Event) (int, error) {
	if ev == nil {
		return 0, nil
	}
	n := 0
	if len(ev.Id) > 0 {
		n += sizeBytes(len(ev.Id))
	}
	if ev.TimeUnixNano != 0 {
		n += 1 + 8
	}
	if len(ev.Message) > 0 {
		n += sizeBytes(len(ev.Message))
	}
	n += sizeUvarint(uint64(int64(ev.Stream)))
	if src := ev.Source; src != nil {
		s, err := e.sizeSource(src)
		if err != nil {
			return 0, err
		}
		n += sizeBytes(s)
	}
	if k := ev.Kubernetes; k != nil {
		if k != e.kube {
			s, err := sizeKubernetes(k)
			if err != nil {
				return 0, err
			}
			e.kube, e.kubeSize = k, s
		}
		n += sizeBytes(e.kubeSize)
	}
	if len(ev.Fields) > 0 {
		if id := mapID(ev.Fields); id != e.fields {
			s, err := e.sizeFields(ev.Fields)
			if err != nil {
				return 0, err
			}
			e.fields, e.fsSize = id, s
		}
		n += e.fsSize
	}
	n += sizeUvarint(uint64(ev.Flags))
	n += sizeUvarint(uint64(int64(ev.Kind)))
	if ev.OriginalTime != "" {
		if !utf8.ValidString(ev.OriginalTime) {
			return 0, utf8Error("ferry.v1.Event.original_time")
		}
		n += sizeBytes(len(ev.OriginalTime))
	}
	return n + len(unknown(ev, eventUnknown)), nil
}

func (e *encoder) sizeSource(s *ferryv1.Source) (int, error) {
	if !valid(s.Path, &e.path) {
		return 0, utf8Error("ferry.v1.Source.path")
	}
	if !valid(s.Input, &e.input) {
		return 0, utf8Error("ferry.v1.Source.input")
	}
	if !valid(s.FileId, &e.fileID) {
		return 0, utf8Error("ferry.v1.Source.file_id")
	}
	return sizeString(s.Path) + sizeUvarint(uint64(s.Offset)) + sizeString(s.Input) + sizeString(s.FileId) +
		sizeUvarint(uint64(s.EndOffset)) + sizeUvarint(uint64(s.Lines)) + len(unknown(s, sourceUnknown)), nil
}

func sizeKubernetes(k *ferryv1.Kubernetes) (int, error) {
	for _, f := range [...]struct {
		s, name string
	}{{k.Namespace, "namespace"}, {k.Pod, "pod"}, {k.PodUid, "pod_uid"}, {k.Container, "container"}, {k.ContainerId, "container_id"}} {
		if !utf8.ValidString(f.s) {
			return 0, utf8Error("ferry.v1.Kubernetes." + f.name)
		}
	}
	return sizeString(k.Namespace) + sizeString(k.Pod) + sizeString(k.PodUid) + sizeString(k.Container) +
		sizeString(k.ContainerId) + len(unknown(k, kubeUnknown)), nil
}

// sizeFields is the size of the map's entries, each with its tag and
// length. It records the entries in e.entries.
func (e *encoder) sizeFields(m map[string]*ferryv1.Value) (int, error) {
	n := 0
	for k, v := range m {
		ref := strRef{unsafe.StringData(k), len(k)}
		slot := &e.keys[(uintptr(unsafe.Pointer(ref.p))>>3^uintptr(ref.n))%uintptr(len(e.keys))]
		if *slot != ref {
			if !utf8.ValidString(k) {
				return 0, utf8Error("ferry.v1.Event.fields (a key)")
			}
			*slot = ref
		}
		vs, unk := 0, 0
		if v != nil {
			switch x := v.Kind.(type) {
			case *ferryv1.Value_Str:
				if x != nil {
					if !utf8.ValidString(x.Str) {
						return 0, utf8Error("ferry.v1.Value.str")
					}
					vs = sizeBytes(len(x.Str))
				}
			case *ferryv1.Value_Int:
				if x != nil {
					vs = 1 + sizeVarint(uint64(x.Int))
				}
			case *ferryv1.Value_Double:
				if x != nil {
					vs = 1 + 8
				}
			case *ferryv1.Value_Bool:
				if x != nil {
					vs = 1 + 1
				}
			}
			unk = len(unknown(v, valueUnknown))
			vs += unk
		}
		if vs > math.MaxUint32 {
			return 0, fmt.Errorf("wire: a field value of %d bytes", vs)
		}
		e.entries = append(e.entries, entry{k: k, v: v, size: uint32(vs), unknown: unk > 0})
		n += sizeBytes(sizeBytes(len(k)) + sizeBytes(vs))
	}
	return n, nil
}

func sizePod(p *ferryv1.Pod) (int, error) {
	if p == nil {
		return 0, nil
	}
	for _, f := range [...]struct {
		s, name string
	}{{p.Uid, "uid"}, {p.Namespace, "namespace"}, {p.Name, "name"}, {p.NodeName, "node_name"}, {p.OwnerKind, "owner_kind"}, {p.OwnerName, "owner_name"}} {
		if !utf8.ValidString(f.s) {
			return 0, utf8Error("ferry.v1.Pod." + f.name)
		}
	}
	n := sizeString(p.Uid) + sizeString(p.Namespace) + sizeString(p.Name) + sizeString(p.NodeName) +
		sizeString(p.OwnerKind) + sizeString(p.OwnerName)
	for _, f := range [...]struct {
		m    map[string]string
		name string
	}{{p.Labels, "labels"}, {p.Annotations, "annotations"}, {p.NamespaceLabels, "namespace_labels"}, {p.ContainerImages, "container_images"}} {
		for k, v := range f.m {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return 0, utf8Error("ferry.v1.Pod." + f.name)
			}
			n += sizeBytes(sizeBytes(len(k)) + sizeBytes(len(v)))
		}
	}
	return n + len(unknown(p, podUnknown)), nil
}

// Writing. Every size was computed (and every string validated) by the
// sizing pass.

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendBytes(b []byte, tag byte, v []byte) []byte {
	b = appendVarint(append(b, tag), uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, tag byte, v string) []byte {
	b = appendVarint(append(b, tag), uint64(len(v)))
	return append(b, v...)
}

// appendStringNZ writes a string field unless it is empty.
func appendStringNZ(b []byte, tag byte, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(b, tag, v)
}

// appendUvarintNZ writes a varint field unless it is 0.
func appendUvarintNZ(b []byte, tag byte, v uint64) []byte {
	if v == 0 {
		return b
	}
	return appendVarint(append(b, tag), v)
}

func (e *encoder) appendBatch(b []byte, x *ferryv1.Batch) []byte {
	if x == nil {
		return b
	}
	b = appendUvarintNZ(b, 0x08, x.Seq)
	b = appendStringNZ(b, 0x12, x.Node)
	w := eventWriter{entries: e.entries}
	for i, ev := range x.Events {
		b = appendVarint(append(b, 0x1a), uint64(e.evSize[i]))
		var extra []byte
		if i < len(e.extra) {
			extra = e.extra[i]
		}
		b = w.appendEvent(b, ev, extra)
	}
	for _, p := range x.Pods {
		s, _ := sizePod(p)
		b = appendVarint(append(b, 0x22), uint64(s))
		b = appendPod(b, p)
	}
	return append(b, unknown(x, batchUnknown)...)
}

// eventWriter writes the events of a batch in order, remembering where the
// last Kubernetes and fields map written are in the output, to copy them
// for the next event that shares them.
type eventWriter struct {
	entries        []entry // those of the fields maps to write, in order
	kube           *ferryv1.Kubernetes
	kubeAt, kubeTo int // the Kubernetes field, tag and length included
	fields         unsafe.Pointer
	fsAt, fsTo     int // every entry of the fields map
}

func (w *eventWriter) appendEvent(b []byte, ev *ferryv1.Event, extra []byte) []byte {
	if ev == nil {
		return b
	}
	if len(ev.Id) > 0 {
		b = appendBytes(b, 0x0a, ev.Id)
	}
	if ev.TimeUnixNano != 0 {
		b = binary.LittleEndian.AppendUint64(append(b, 0x11), uint64(ev.TimeUnixNano))
	}
	if len(ev.Message) > 0 {
		b = appendBytes(b, 0x1a, ev.Message)
	}
	b = appendUvarintNZ(b, 0x20, uint64(int64(ev.Stream)))
	if s := ev.Source; s != nil {
		n := sizeString(s.Path) + sizeUvarint(uint64(s.Offset)) + sizeString(s.Input) + sizeString(s.FileId) +
			sizeUvarint(uint64(s.EndOffset)) + sizeUvarint(uint64(s.Lines))
		u := unknown(s, sourceUnknown)
		b = appendVarint(append(b, 0x2a), uint64(n+len(u)))
		b = appendStringNZ(b, 0x0a, s.Path)
		b = appendUvarintNZ(b, 0x10, uint64(s.Offset))
		b = appendStringNZ(b, 0x1a, s.Input)
		b = appendStringNZ(b, 0x22, s.FileId)
		b = appendUvarintNZ(b, 0x28, uint64(s.EndOffset))
		b = appendUvarintNZ(b, 0x30, uint64(s.Lines))
		b = append(b, u...)
	}
	if k := ev.Kubernetes; k != nil {
		if k == w.kube {
			b = append(b, b[w.kubeAt:w.kubeTo]...)
		} else {
			at := len(b)
			u := unknown(k, kubeUnknown)
			n := sizeString(k.Namespace) + sizeString(k.Pod) + sizeString(k.PodUid) + sizeString(k.Container) +
				sizeString(k.ContainerId) + len(u)
			b = appendVarint(append(b, 0x32), uint64(n))
			b = appendStringNZ(b, 0x0a, k.Namespace)
			b = appendStringNZ(b, 0x12, k.Pod)
			b = appendStringNZ(b, 0x1a, k.PodUid)
			b = appendStringNZ(b, 0x22, k.Container)
			b = appendStringNZ(b, 0x2a, k.ContainerId)
			b = append(b, u...)
			w.kube, w.kubeAt, w.kubeTo = k, at, len(b)
		}
	}
	if len(ev.Fields) > 0 {
		if id := mapID(ev.Fields); id == w.fields {
			b = append(b, b[w.fsAt:w.fsTo]...)
		} else {
			at := len(b)
			n := len(ev.Fields)
			b = appendFields(b, w.entries[:n])
			w.entries = w.entries[n:]
			w.fields, w.fsAt, w.fsTo = id, at, len(b)
		}
	}
	b = append(b, extra...)
	b = appendUvarintNZ(b, 0x40, uint64(ev.Flags))
	b = appendUvarintNZ(b, 0x48, uint64(int64(ev.Kind)))
	b = appendStringNZ(b, 0x52, ev.OriginalTime)
	return append(b, unknown(ev, eventUnknown)...)
}

func appendFields(b []byte, entries []entry) []byte {
	for i := range entries {
		en := &entries[i]
		k, v, vs := en.k, en.v, int(en.size)
		b = appendVarint(append(b, 0x3a), uint64(sizeBytes(len(k))+sizeBytes(vs)))
		b = appendString(b, 0x0a, k)
		b = appendVarint(append(b, 0x12), uint64(vs))
		if v == nil {
			continue
		}
		switch x := v.Kind.(type) {
		case *ferryv1.Value_Str:
			if x != nil {
				b = appendString(b, 0x0a, x.Str)
			}
		case *ferryv1.Value_Int:
			if x != nil {
				b = appendVarint(append(b, 0x10), uint64(x.Int))
			}
		case *ferryv1.Value_Double:
			if x != nil {
				b = binary.LittleEndian.AppendUint64(append(b, 0x19), math.Float64bits(x.Double))
			}
		case *ferryv1.Value_Bool:
			if x != nil {
				v := byte(0)
				if x.Bool {
					v = 1
				}
				b = append(b, 0x20, v)
			}
		}
		if en.unknown {
			b = append(b, unknown(v, valueUnknown)...)
		}
	}
	return b
}

func appendPod(b []byte, p *ferryv1.Pod) []byte {
	if p == nil {
		return b
	}
	b = appendStringNZ(b, 0x0a, p.Uid)
	b = appendStringNZ(b, 0x12, p.Namespace)
	b = appendStringNZ(b, 0x1a, p.Name)
	b = appendStringNZ(b, 0x22, p.NodeName)
	b = appendStringMap(b, 0x2a, p.Labels)
	b = appendStringMap(b, 0x32, p.Annotations)
	b = appendStringMap(b, 0x3a, p.NamespaceLabels)
	b = appendStringNZ(b, 0x42, p.OwnerKind)
	b = appendStringNZ(b, 0x4a, p.OwnerName)
	b = appendStringMap(b, 0x52, p.ContainerImages)
	return append(b, unknown(p, podUnknown)...)
}

func appendStringMap(b []byte, tag byte, m map[string]string) []byte {
	for k, v := range m {
		b = appendVarint(append(b, tag), uint64(sizeBytes(len(k))+sizeBytes(len(v))))
		b = appendString(b, 0x0a, k)
		b = appendString(b, 0x12, v)
	}
	return b
}

// Unknown fields are read where the generated struct keeps them (found by
// reflection once, as protobuf-go finds them), not through ProtoReflect,
// which costs as much as encoding a small field. Should the generated
// code change, the field is not found and ProtoReflect is used.
var (
	batchUnknown  = unknownAt[ferryv1.Batch]()
	eventUnknown  = unknownAt[ferryv1.Event]()
	sourceUnknown = unknownAt[ferryv1.Source]()
	kubeUnknown   = unknownAt[ferryv1.Kubernetes]()
	valueUnknown  = unknownAt[ferryv1.Value]()
	podUnknown    = unknownAt[ferryv1.Pod]()
)

// fieldAt is the offset of the unknownFields field in a generated message
// struct, if it has one of the type protobuf-go gives it.
type fieldAt struct {
	off uintptr
	ok  bool
}

func unknownAt[M any]() fieldAt {
	f, ok := reflect.TypeFor[M]().FieldByName("unknownFields")
	if !ok || f.Type != reflect.TypeFor[protoimpl.UnknownFields]() || f.Type.Kind() != reflect.Slice || f.Type.Elem().Kind() != reflect.Uint8 {
		return fieldAt{}
	}
	return fieldAt{off: f.Offset, ok: true}
}

// unknown returns the unknown fields of m (not nil), as
// m.ProtoReflect().GetUnknown() does.
func unknown[M any](m *M, at fieldAt) []byte {
	if at.ok {
		return *(*[]byte)(unsafe.Add(unsafe.Pointer(m), at.off))
	}
	return any(m).(interface{ ProtoReflect() protoreflect.Message }).ProtoReflect().GetUnknown()
}
