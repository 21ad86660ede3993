// Package wire decodes and encodes the ferry.v1.Batch wire format from and
// into the generated ferryv1 structs, and nothing else. Decoding is the
// aggregator's one fast decode, used
// where a batch arrives (transport) and where the disk buffer replays it
// (sinks/buffer). It accepts and rejects exactly what proto.Unmarshal does
// and gives the same messages (proto.Equal), except that unknown fields are
// skipped, not kept: nothing in the aggregator reads them, and the disk
// buffer stores the bytes as received, unknown fields included.
//
// It allocates per batch, not per event, and copies no bytes: every string
// field is a substring of the batch bytes themselves (which must therefore
// never change while the batch is in use, see Decode); one array of Event
// structs, one of Source, a few of Kubernetes, and the slice of pointers
// to the events; typed fields' values come from arrays of 128 too. Only
// the maps of typed fields (one per event that has any, sized for all of
// them) and pods allocate per item. Bytes fields (Event.id, Event.message) are
// sub-slices of the input, capped at their length (appending to one
// copies). Events in a row whose kubernetes field has the same bytes (an
// agent sends a file's lines together) share one Kubernetes struct, and
// (Decode) a Source string equal to the previous event's is that string: a decoded
// batch is read-only, as the aggregator treats batches anyway. The price
// of sharing the batch's memory is that one string, one event or one id
// kept beyond the batch keeps the whole batch in memory: whoever keeps a
// part of a batch past its processing (a cache) must copy it
// (strings.Clone, bytes.Clone).
//
// Scan walks a batch the same way, with the same checks, and allocates
// only the node name: the receiver validates a batch it hands as bytes to
// a disk buffer without decoding it. Count only counts a batch's events.
//
// AppendBatch, MarshalBatch and Size encode a Batch (encode.go), the
// agent's one encoder: what proto.Marshal writes, map order aside, unknown
// fields included, invalid UTF-8 in a string field refused with
// ErrInvalidUTF8.
//
// Keep it in step with proto/ferry/v1/ferry.proto: TestKnowsEveryField
// fails when the schema has a field this decoder does not know,
// TestEncoderKnowsEveryField one the encoder does not write.
package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Errors that wrap the reason a batch does not decode.
var (
	// ErrMalformed: the bytes are not a well-formed message (truncated,
	// bad tag, bad varint, unmatched group).
	ErrMalformed = errors.New("malformed protobuf")
	// ErrInvalidUTF8: a string field holds invalid UTF-8, which
	// proto.Unmarshal refuses in a proto3 file.
	ErrInvalidUTF8 = errors.New("string field contains invalid UTF-8")
)

// Decode decodes data, a ferry.v1.Batch, as proto.Unmarshal would (string
// fields validated as UTF-8), unknown fields skipped.
//
// data must not be modified while the batch or any part of it is in use,
// nor afterwards while a string of it is: Event.id and Event.message are
// sub-slices of it, and string fields are strings over its bytes (not a
// copy; a Go string must never change, so data is read-only from here on).
func Decode(data []byte) (*ferryv1.Batch, error) {
	return decode(data, true)
}

// DecodeTrusted is Decode without the UTF-8 check of string fields, for
// bytes that passed Decode or Scan before and were kept safe since (a
// record of the disk buffer, which is CRC-checked): it still rejects bytes
// that are not a well-formed message.
func DecodeTrusted(data []byte) (*ferryv1.Batch, error) {
	return decode(data, false)
}

// DecodeTrustedRawFields is DecodeTrusted that leaves each event's typed
// fields encoded, for a reader that only looks a few of them up and writes
// them out (the aggregator's sinks, through package event): the entries of
// Event.fields, exactly as they came, are the event's unknown fields
// (ProtoReflect().GetUnknown()), and its Fields map is nil. No map and no
// Value per field: an HAProxy line's 40 fields cost a map of 40 entries to
// build and again to read. Encoded again (proto.Marshal, this package's
// encoders), such an event is the same message: unknown fields are written
// as they are. The entries are checked as DecodeTrusted checks them.
func DecodeTrustedRawFields(data []byte) (*ferryv1.Batch, error) {
	return decodeWith(decoder{data: data, build: true, rawFields: true})
}

// DecodeRawFields is Decode (string fields checked as UTF-8, the typed
// fields' entries too) that leaves each event's typed fields encoded, as
// DecodeTrustedRawFields does: for a batch the aggregator receives and
// keeps decoded for its sinks, which read encoded fields for less than a
// map of them costs to build.
func DecodeRawFields(data []byte) (*ferryv1.Batch, error) {
	return decodeWith(decoder{data: data, build: true, validate: true, rawFields: true})
}

func decode(data []byte, validate bool) (*ferryv1.Batch, error) {
	return decodeWith(decoder{data: data, build: true, validate: validate})
}

func decodeWith(d decoder) (*ferryv1.Batch, error) {
	data := d.data
	nev, npod, err := count(data)
	if err != nil {
		return nil, err
	}
	// The strings are views of data, not a copy of it: data is read-only
	// from here on (see Decode).
	d.str = unsafe.String(unsafe.SliceData(data), len(data))
	b := new(ferryv1.Batch)
	if nev > 0 {
		d.events = make([]ferryv1.Event, nev)
		d.nev = nev
		b.Events = make([]*ferryv1.Event, 0, nev)
	}
	if npod > 0 {
		d.pods = make([]ferryv1.Pod, npod)
		b.Pods = make([]*ferryv1.Pod, 0, npod)
	}
	if err := d.batch(data, b, nil); err != nil {
		return nil, err
	}
	return b, nil
}

// Summary is what Scan reports of a batch.
type Summary struct {
	Seq  uint64
	Node string
	// Events and Pods count the batch's events and pods.
	Events, Pods int
}

// Scan checks data exactly as Decode does, without building the batch,
// and calls each (when not nil) with every event in order. The event
// passed has its scalar and bytes fields set (id, time_unix_nano,
// message, stream, flags, kind: the bytes are sub-slices of data), not
// its strings, source, kubernetes or fields; it is valid during the call
// only. An error from each ends the scan and is returned as is.
func Scan(data []byte, each func(i int, e *ferryv1.Event) error) (Summary, error) {
	d := decoder{data: data, validate: true}
	var b ferryv1.Batch
	var sum Summary
	if err := d.batch(data, &b, func(i int, e *ferryv1.Event) error {
		sum.Events++
		if each != nil {
			return each(i, e)
		}
		return nil
	}); err != nil {
		return Summary{}, err
	}
	sum.Seq, sum.Node, sum.Pods = b.Seq, b.Node, d.npods
	return sum, nil
}

// decoder holds one batch's decoding. In build mode (Decode) it fills the
// structs from its arrays; otherwise (Scan) it only checks.
type decoder struct {
	data     []byte
	str      string // data as a string (no copy), build mode only
	build    bool
	validate bool
	// rawFields: Event.fields entries are kept encoded, as the event's
	// unknown fields (DecodeTrustedRawFields), build mode only.
	rawFields bool

	events  []ferryv1.Event
	nev     int // events in the batch (build mode)
	evi     int // the event being decoded
	sources []ferryv1.Source
	kubes   []ferryv1.Kubernetes
	// The kubernetes field of the last event that had one (once), and
	// its struct (build mode): events of the same pod, one after the
	// other as an agent sends them, share it.
	lastKube    []byte
	lastKubePtr *ferryv1.Kubernetes
	// The last strings of Source.
	path, input, fileID recent
	pods                []ferryv1.Pod
	npods               int // scan mode: pods seen
	// Typed fields' values and their oneof wrappers, handed out from
	// arrays of a batch rather than allocated one by one (build mode).
	values  []ferryv1.Value
	strs    []ferryv1.Value_Str
	ints    []ferryv1.Value_Int
	doubles []ferryv1.Value_Double
	bools   []ferryv1.Value_Bool
}

// fieldChunk is how many typed-field values (or wrappers) one array of a
// decoder holds: one allocation for many.
const fieldChunk = 128

// next returns the next zero element of *arr, a new array of n when it
// is full.
func next[T any](arr *[]T, n int) *T {
	if len(*arr) == cap(*arr) {
		*arr = make([]T, 0, n)
	}
	*arr = (*arr)[:len(*arr)+1]
	return &(*arr)[len(*arr)-1]
}

// countFields returns how many Event.fields entries the event b holds (it
// was checked to be well-formed up to the first one; the rest is checked
// as it is decoded, so counting stops quietly at bad bytes).
func countFields(b []byte) int {
	n := 0
	for len(b) > 0 {
		num, typ, k, err := tag(b)
		if err != nil {
			return n
		}
		b = b[k:]
		if num == 7 && typ == protowire.BytesType {
			n++
		}
		k = protowire.ConsumeFieldValue(num, typ, b)
		if k < 0 {
			return n
		}
		b = b[k:]
	}
	return n
}

// Count returns the number of events and pods of a batch, walking only
// its top level: it checks the framing of that level, not the events and
// pods themselves (Decode and Scan do).
func Count(data []byte) (events, pods int, err error) {
	return count(data)
}

func count(b []byte) (events, pods int, err error) {
	for len(b) > 0 {
		num, typ, n, err := tag(b)
		if err != nil {
			return 0, 0, err
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 3 || num == 4) {
			if num == 3 {
				events++
			} else {
				pods++
			}
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, 0, malformed(protowire.ParseError(n))
		}
		b = b[n:]
	}
	return events, pods, nil
}

func invalidUTF8(field string) error { return fmt.Errorf("%w: %s", ErrInvalidUTF8, field) }

func malformed(err error) error { return fmt.Errorf("%w: %v", ErrMalformed, err) }

// tag consumes a field's tag as proto.Unmarshal does: a field number in
// 1..MaxValidNumber, and no end-group tag outside a group. b must not be
// empty (every caller loops while it is not). The one-byte case is small
// enough to be inlined.
func tag(b []byte) (protowire.Number, protowire.Type, int, error) {
	if num, typ, n := tag1(b); n > 0 {
		return num, typ, n, nil
	}
	return tagSlow(b)
}

// tag1 is tag's one-byte case, small enough to be inlined: n is 0 when
// the tag is not one valid byte (then call tagSlow). The hot loops call
// it, and tagSlow themselves.
func tag1(b []byte) (protowire.Number, protowire.Type, int) {
	if c := b[0]; c < 0x80 && c >= 8 && c&7 != byte(protowire.EndGroupType) {
		return protowire.Number(c >> 3), protowire.Type(c & 7), 1
	}
	return 0, 0, 0
}

func tagSlow(b []byte) (protowire.Number, protowire.Type, int, error) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, 0, malformed(protowire.ParseError(n))
	}
	if f := v >> 3; f < uint64(protowire.MinValidNumber) || f > uint64(protowire.MaxValidNumber) {
		return 0, 0, 0, fmt.Errorf("%w: invalid field number %d", ErrMalformed, f)
	}
	typ := protowire.Type(v & 7)
	if typ == protowire.EndGroupType {
		return 0, 0, 0, fmt.Errorf("%w: unexpected end group", ErrMalformed)
	}
	return protowire.Number(v >> 3), typ, n, nil
}

// skip consumes the value of a field this decoder does not keep (unknown,
// or known with another wire type, which proto treats as unknown).
func skip(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, malformed(protowire.ParseError(n))
	}
	return n, nil
}

func varint(b []byte) (uint64, int, error) {
	if x, n := varint1(b); n > 0 {
		return x, n, nil
	}
	return varintSlow(b)
}

// varint1 is varint's one-byte case, inlined: n is 0 when it is not.
func varint1(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return 0, 0
}

func varintSlow(b []byte) (uint64, int, error) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, malformed(protowire.ParseError(n))
	}
	return v, n, nil
}

func fixed64(b []byte) (uint64, int, error) {
	v, n := protowire.ConsumeFixed64(b)
	if n < 0 {
		return 0, 0, malformed(protowire.ParseError(n))
	}
	return v, n, nil
}

// bytesField consumes a length-delimited value; the result keeps the
// capacity of b (string uses it to find its offset). A length below 128
// is inlined.
func bytesField(b []byte) ([]byte, int, error) {
	if v, n := bytes1(b); n > 0 {
		return v, n, nil
	}
	return bytesSlow(b)
}

// bytes1 is bytesField's case of a length below 128, inlined: n is 0 when
// it is not that case.
func bytes1(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) {
		n := int(b[0])
		return b[1 : 1+n], 1 + n
	}
	return nil, 0
}

func bytesSlow(b []byte) ([]byte, int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, malformed(protowire.ParseError(n))
	}
	return v, n, nil
}

// string returns v, a sub-slice of d.data, as a string field: checked as
// UTF-8 when validating; in build mode a substring of d.str, else "".
func (d *decoder) string(v []byte, field string) (string, error) {
	if d.validate && !utf8.Valid(v) {
		return "", invalidUTF8(field)
	}
	if !d.build {
		return "", nil
	}
	off := cap(d.data) - cap(v)
	return d.str[off : off+len(v)], nil
}

// stringField consumes a length-delimited string field.
func (d *decoder) stringField(b []byte, field string) (string, int, error) {
	v, n := bytes1(b)
	if n == 0 {
		var err error
		if v, n, err = bytesSlow(b); err != nil {
			return "", 0, err
		}
	}
	s, err := d.string(v, field)
	return s, n, err
}

// batch decodes a Batch into b; in scan mode, each is called per event.
func (d *decoder) batch(b []byte, out *ferryv1.Batch, each func(int, *ferryv1.Event) error) error {
	var scratch ferryv1.Event
	nev := 0
	for len(b) > 0 {
		num, typ, n := tag1(b)
		var err error
		if n == 0 {
			if num, typ, n, err = tagSlow(b); err != nil {
				return err
			}
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			out.Seq, n, err = varint(b)
		case num == 2 && typ == protowire.BytesType:
			var v []byte
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err == nil {
				if d.build {
					out.Node, err = d.string(v, "ferry.v1.Batch.node")
				} else if _, err = d.string(v, "ferry.v1.Batch.node"); err == nil {
					out.Node = string(v)
				}
			}
		case num == 3 && typ == protowire.BytesType:
			var v []byte
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err != nil {
				break
			}
			e := &scratch
			d.evi = nev
			if d.build {
				e = &d.events[nev]
			} else {
				scratch.Id, scratch.TimeUnixNano, scratch.Message, scratch.Stream, scratch.Flags, scratch.Kind = nil, 0, nil, 0, 0, 0
			}
			if err = d.event(v, e); err != nil {
				break
			}
			if d.build {
				out.Events = append(out.Events, e)
			} else if each != nil {
				err = each(nev, e)
			}
			nev++
		case num == 4 && typ == protowire.BytesType:
			var v []byte
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err != nil {
				break
			}
			var p *ferryv1.Pod
			if d.build {
				p = &d.pods[len(out.Pods)]
			}
			if err = d.pod(v, p); err == nil && d.build {
				out.Pods = append(out.Pods, p)
			}
			d.npods++
		default:
			n, err = skip(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// event decodes an Event into e (merging, as proto does, a field that
// comes twice).
func (d *decoder) event(b []byte, e *ferryv1.Event) error {
	whole := b
	var (
		kubes      int    // kubernetes fields seen
		kubeBytes  []byte // the first one's
		sharedKube bool   // e.Kubernetes is the previous event's
	)
	var raw []byte // rawFields: the entries of fields, encoded
	rawCopied := false
	for len(b) > 0 {
		field := b
		num, typ, n := tag1(b)
		var err error
		if n == 0 {
			if num, typ, n, err = tagSlow(b); err != nil {
				return err
			}
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch {
		case num == 1 && typ == protowire.BytesType:
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err == nil {
				e.Id = v[:len(v):len(v)]
			}
		case num == 7 && typ == protowire.BytesType && d.rawFields && d.build:
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err == nil {
				err = d.checkFieldEntry(v)
			}
			if err == nil {
				// The whole field, tag included: contiguous entries (as
				// an agent writes them) stay a view of the batch.
				field = field[:len(field)-len(b)+n]
				switch {
				case raw == nil:
					raw = field
				case !rawCopied && cap(raw)-len(raw) == cap(field):
					raw = raw[:len(raw)+len(field)]
				default:
					if !rawCopied {
						raw, rawCopied = append([]byte(nil), raw...), true
					}
					raw = append(raw, field...)
				}
			}
		case num == 2 && typ == protowire.Fixed64Type:
			if len(b) >= 8 {
				x, n = binary.LittleEndian.Uint64(b), 8
			} else {
				x, n, err = fixed64(b)
			}
			if err == nil {
				e.TimeUnixNano = int64(x)
			}
		case num == 3 && typ == protowire.BytesType:
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err == nil {
				e.Message = v[:len(v):len(v)]
			}
		case num == 4 && typ == protowire.VarintType:
			if x, n = varint1(b); n == 0 {
				x, n, err = varintSlow(b)
			}
			if err == nil {
				e.Stream = ferryv1.StreamName(int32(x))
			}
		case num == 5 && typ == protowire.BytesType:
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err != nil {
				break
			}
			var s *ferryv1.Source
			if d.build {
				if s = e.Source; s == nil {
					if d.sources == nil {
						d.sources = make([]ferryv1.Source, 0, d.nev)
					}
					// The array is zeroed: take the next one, no copy.
					d.sources = d.sources[:len(d.sources)+1]
					s = &d.sources[len(d.sources)-1]
					e.Source = s
				}
			}
			err = d.source(v, s)
		case num == 6 && typ == protowire.BytesType:
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err != nil {
				break
			}
			kubes++
			if kubes == 1 {
				kubeBytes = v
				if d.lastKube != nil && bytes.Equal(v, d.lastKube) {
					// The previous event's pod: its struct, already
					// decoded (and checked).
					sharedKube = true
					if d.build {
						e.Kubernetes = d.lastKubePtr
					}
					break
				}
			}
			var k *ferryv1.Kubernetes
			if d.build {
				k = e.Kubernetes
				if k == nil || sharedKube {
					// A second kubernetes field merges into the first:
					// into a copy of a shared one.
					nk := d.newKube()
					if k != nil {
						nk.Namespace, nk.Pod, nk.PodUid, nk.Container, nk.ContainerId = k.Namespace, k.Pod, k.PodUid, k.Container, k.ContainerId
					}
					k, e.Kubernetes = nk, nk
				}
			}
			sharedKube = false
			err = d.kubernetes(v, k)
		case num == 7 && typ == protowire.BytesType:
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err == nil {
				if d.build && e.Fields == nil {
					// Sized for all of them: an HAProxy line has 40.
					e.Fields = make(map[string]*ferryv1.Value, countFields(whole))
				}
				err = d.fieldEntry(v, e)
			}
		case num == 8 && typ == protowire.VarintType:
			if x, n = varint1(b); n == 0 {
				x, n, err = varintSlow(b)
			}
			if err == nil {
				e.Flags = uint32(x)
			}
		case num == 9 && typ == protowire.VarintType:
			if x, n = varint1(b); n == 0 {
				x, n, err = varintSlow(b)
			}
			if err == nil {
				e.Kind = ferryv1.Kind(int32(x))
			}
		case num == 10 && typ == protowire.BytesType:
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err == nil {
				var s string
				if s, err = d.string(v, "ferry.v1.Event.original_time"); d.build {
					e.OriginalTime = s
				}
			}
		default:
			n, err = skip(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if raw != nil {
		e.ProtoReflect().SetUnknown(raw[:len(raw):len(raw)])
	}
	// Only a kubernetes field that came once is shared with the next
	// events: a second one changed what the first said. (After an error,
	// nothing more is decoded: no need to get here.)
	switch {
	case kubes > 1:
		d.lastKube, d.lastKubePtr = nil, nil
	case kubes == 1 && !sharedKube:
		d.lastKube, d.lastKubePtr = kubeBytes, e.Kubernetes
	}
	return nil
}

// newKube returns a zero Kubernetes from the batch's arrays: one of 64
// (most events share their pod's), then of twice the last one's size, at
// most one per event left.
func (d *decoder) newKube() *ferryv1.Kubernetes {
	if len(d.kubes) == cap(d.kubes) {
		// The events left (this one included) bound what is needed.
		d.kubes = make([]ferryv1.Kubernetes, 0, min(max(64, 2*cap(d.kubes)), max(d.nev-d.evi, 1)))
	}
	d.kubes = d.kubes[:len(d.kubes)+1]
	return &d.kubes[len(d.kubes)-1]
}

// recent is the last value of a string field: the next event's equal
// bytes (a path, an input, a file id repeat through a file's lines) reuse
// it, checked once. Without the UTF-8 check (DecodeTrusted) there is
// nothing to save: each string is a view of its own bytes.
type recent struct {
	b []byte
	s string
}

// recentString is stringField through r.
func (d *decoder) recentString(b []byte, r *recent, field string) (string, int, error) {
	v, n := bytes1(b)
	if n == 0 {
		var err error
		if v, n, err = bytesSlow(b); err != nil {
			return "", 0, err
		}
	}
	if !d.validate {
		s, _ := d.string(v, field) // no error without validation
		return s, n, nil
	}
	if r.b != nil && string(v) == string(r.b) {
		return r.s, n, nil
	}
	s, err := d.string(v, field)
	if err != nil {
		return "", 0, err
	}
	r.b, r.s = v, s
	return s, n, nil
}

// source decodes a Source into s (nil in scan mode).
func (d *decoder) source(b []byte, s *ferryv1.Source) error {
	for len(b) > 0 {
		num, typ, n := tag1(b)
		var err error
		if n == 0 {
			if num, typ, n, err = tagSlow(b); err != nil {
				return err
			}
		}
		b = b[n:]
		var str string
		var x uint64
		switch {
		case num == 1 && typ == protowire.BytesType:
			if str, n, err = d.recentString(b, &d.path, "ferry.v1.Source.path"); err == nil && s != nil {
				s.Path = str
			}
		case num == 2 && typ == protowire.VarintType:
			if x, n = varint1(b); n == 0 {
				x, n, err = varintSlow(b)
			}
			if err == nil && s != nil {
				s.Offset = int64(x)
			}
		case num == 3 && typ == protowire.BytesType:
			if str, n, err = d.recentString(b, &d.input, "ferry.v1.Source.input"); err == nil && s != nil {
				s.Input = str
			}
		case num == 4 && typ == protowire.BytesType:
			if str, n, err = d.recentString(b, &d.fileID, "ferry.v1.Source.file_id"); err == nil && s != nil {
				s.FileId = str
			}
		case num == 5 && typ == protowire.VarintType:
			if x, n = varint1(b); n == 0 {
				x, n, err = varintSlow(b)
			}
			if err == nil && s != nil {
				s.EndOffset = int64(x)
			}
		case num == 6 && typ == protowire.VarintType:
			if x, n = varint1(b); n == 0 {
				x, n, err = varintSlow(b)
			}
			if err == nil && s != nil {
				s.Lines = uint32(x)
			}
		default:
			n, err = skip(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// kubernetes decodes a Kubernetes into k (nil in scan mode).
func (d *decoder) kubernetes(b []byte, k *ferryv1.Kubernetes) error {
	for len(b) > 0 {
		num, typ, n := tag1(b)
		var err error
		if n == 0 {
			if num, typ, n, err = tagSlow(b); err != nil {
				return err
			}
		}
		b = b[n:]
		var dst *string
		var name string
		if typ == protowire.BytesType && num >= 1 && num <= 5 {
			var scratch string
			dst = &scratch
			if k != nil {
				dst = [...]*string{&k.Namespace, &k.Pod, &k.PodUid, &k.Container, &k.ContainerId}[num-1]
			}
			name = kubeNames[num-1]
		}
		if dst != nil {
			var s string
			if s, n, err = d.stringField(b, name); err == nil {
				*dst = s
			}
		} else {
			n, err = skip(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

var kubeNames = [...]string{"ferry.v1.Kubernetes.namespace", "ferry.v1.Kubernetes.pod", "ferry.v1.Kubernetes.pod_uid",
	"ferry.v1.Kubernetes.container", "ferry.v1.Kubernetes.container_id"}

// fieldEntry decodes one entry of Event.fields into e.Fields: a missing
// key is "", a missing value an empty Value, a later entry with the same
// key replaces an earlier one (as proto does).
func (d *decoder) fieldEntry(b []byte, e *ferryv1.Event) error {
	if !d.build && d.shortEntryOK(b) {
		return nil
	}
	return d.anyFieldEntry(b, e)
}

// anyFieldEntry is fieldEntry's general path.
func (d *decoder) anyFieldEntry(b []byte, e *ferryv1.Event) error {
	var key string
	var val *ferryv1.Value
	if d.build {
		val = next(&d.values, fieldChunk)
	}
	for len(b) > 0 {
		num, typ, n := tag1(b)
		var err error
		if n == 0 {
			if num, typ, n, err = tagSlow(b); err != nil {
				return err
			}
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			key, n, err = d.stringField(b, "ferry.v1.Event.FieldsEntry.key")
		case num == 2 && typ == protowire.BytesType:
			var v []byte
			if v, n = bytes1(b); n == 0 {
				v, n, err = bytesSlow(b)
			}
			if err == nil {
				err = d.value(v, val)
			}
		default:
			n, err = skip(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if d.build {
		if e.Fields == nil {
			e.Fields = make(map[string]*ferryv1.Value, 4)
		}
		e.Fields[key] = val
	}
	return nil
}

// shortEntryOK reports whether b is an entry of Event.fields as encoders
// write a short one, and well-formed (its strings valid UTF-8 when the
// decoder checks them): the key (tag, a length below 128, the bytes),
// then the value (tag, a length below 128) holding nothing or one member:
// a string (tag, a length below 128), an int or a bool of one byte, or a
// double. Anything else, valid or not, is for fieldEntry's general path
// (which also words the errors).
func (d *decoder) shortEntryOK(b []byte) bool {
	if len(b) < 4 || b[0] != 1<<3|byte(protowire.BytesType) || b[1] >= 0x80 {
		return false
	}
	kl := int(b[1])
	if 4+kl > len(b) || b[2+kl] != 2<<3|byte(protowire.BytesType) || b[3+kl] >= 0x80 || 4+kl+int(b[3+kl]) != len(b) {
		return false
	}
	key, v := b[2:2+kl], b[4+kl:]
	if d.validate && !utf8.Valid(key) {
		return false
	}
	switch {
	case len(v) == 0:
		return true
	case v[0] == 1<<3|byte(protowire.BytesType): // str
		return len(v) >= 2 && v[1] < 0x80 && 2+int(v[1]) == len(v) && (!d.validate || utf8.Valid(v[2:]))
	case v[0] == 2<<3|byte(protowire.VarintType), v[0] == 4<<3|byte(protowire.VarintType): // int, bool
		return len(v) == 2 && v[1] < 0x80
	case v[0] == 3<<3|byte(protowire.Fixed64Type): // double
		return len(v) == 9
	}
	return false
}

// checkFieldEntry checks an entry of Event.fields as fieldEntry does,
// building nothing.
func (d *decoder) checkFieldEntry(b []byte) error {
	build := d.build
	d.build = false
	err := d.fieldEntry(b, nil)
	d.build = build
	return err
}

// value decodes a Value into v (nil in scan mode), merging: a later
// member of the oneof replaces an earlier one.
func (d *decoder) value(b []byte, v *ferryv1.Value) error {
	for len(b) > 0 {
		num, typ, n := tag1(b)
		var err error
		if n == 0 {
			if num, typ, n, err = tagSlow(b); err != nil {
				return err
			}
		}
		b = b[n:]
		var x uint64
		switch {
		case num == 1 && typ == protowire.BytesType:
			var s string
			if s, n, err = d.stringField(b, "ferry.v1.Value.str"); err == nil && v != nil {
				k := next(&d.strs, fieldChunk)
				k.Str = s
				v.Kind = k
			}
		case num == 2 && typ == protowire.VarintType:
			if x, n = varint1(b); n == 0 {
				x, n, err = varintSlow(b)
			}
			if err == nil && v != nil {
				k := next(&d.ints, fieldChunk)
				k.Int = int64(x)
				v.Kind = k
			}
		case num == 3 && typ == protowire.Fixed64Type:
			if len(b) >= 8 {
				x, n = binary.LittleEndian.Uint64(b), 8
			} else {
				x, n, err = fixed64(b)
			}
			if err == nil && v != nil {
				k := next(&d.doubles, fieldChunk)
				k.Double = math.Float64frombits(x)
				v.Kind = k
			}
		case num == 4 && typ == protowire.VarintType:
			if x, n = varint1(b); n == 0 {
				x, n, err = varintSlow(b)
			}
			if err == nil && v != nil {
				k := next(&d.bools, fieldChunk)
				k.Bool = protowire.DecodeBool(x)
				v.Kind = k
			}
		default:
			n, err = skip(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// pod decodes a Pod into p (nil in scan mode).
func (d *decoder) pod(b []byte, p *ferryv1.Pod) error {
	for len(b) > 0 {
		num, typ, n := tag1(b)
		var err error
		if n == 0 {
			if num, typ, n, err = tagSlow(b); err != nil {
				return err
			}
		}
		b = b[n:]
		if typ != protowire.BytesType || num < 1 || num > 10 {
			if n, err = skip(num, typ, b); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		v, n, err := bytesField(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case 5, 6, 7, 10:
			var m *map[string]string
			if p != nil {
				switch num {
				case 5:
					m = &p.Labels
				case 6:
					m = &p.Annotations
				case 7:
					m = &p.NamespaceLabels
				default:
					m = &p.ContainerImages
				}
			}
			err = d.stringEntry(v, m, num)
		default:
			var s string
			if s, err = d.string(v, podNames[num-1]); err == nil && p != nil {
				*[...]*string{&p.Uid, &p.Namespace, &p.Name, &p.NodeName, nil, nil, nil, &p.OwnerKind, &p.OwnerName}[num-1] = s
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var podNames = [...]string{"ferry.v1.Pod.uid", "ferry.v1.Pod.namespace", "ferry.v1.Pod.name", "ferry.v1.Pod.node_name",
	"ferry.v1.Pod.labels", "ferry.v1.Pod.annotations", "ferry.v1.Pod.namespace_labels",
	"ferry.v1.Pod.owner_kind", "ferry.v1.Pod.owner_name", "ferry.v1.Pod.container_images"}

// stringEntry decodes one entry of the map<string, string> field num of
// a Pod into *m (m nil in scan mode).
func (d *decoder) stringEntry(b []byte, m *map[string]string, field protowire.Number) error {
	var key, val string
	for len(b) > 0 {
		num, typ, n := tag1(b)
		var err error
		if n == 0 {
			if num, typ, n, err = tagSlow(b); err != nil {
				return err
			}
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			key, n, err = d.stringField(b, podNames[field-1])
		case num == 2 && typ == protowire.BytesType:
			val, n, err = d.stringField(b, podNames[field-1])
		default:
			n, err = skip(num, typ, b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if m != nil {
		if *m == nil {
			*m = make(map[string]string)
		}
		(*m)[key] = val
	}
	return nil
}
