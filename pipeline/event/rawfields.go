package event

import (
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Typed fields left encoded: the aggregator decodes what its disk buffer
// delivers with wire.DecodeTrustedRawFields, which keeps an event's
// Event.fields entries as they came, in the event's unknown fields,
// instead of a map of Values. The functions here read an event's fields
// from both: the map, then the encoded entries (a later entry of a name
// replaces an earlier one, as when the bytes are decoded).

// rawFields returns the encoded fields of e (its unknown fields, which
// may hold other unknown fields too: readers skip them), nil if none.
func rawFields(e *ferryv1.Event) []byte {
	if e == nil {
		return nil
	}
	if unknownAt >= 0 {
		return *(*[]byte)(unsafe.Add(unsafe.Pointer(e), unknownAt))
	}
	return e.ProtoReflect().GetUnknown()
}

// unknownAt is where in a ferryv1.Event its unknown fields are, -1 if the
// generated struct does not keep them as the unexported []byte
// unknownFields (protoc-gen-go does): read there, they cost a load, where
// ProtoReflect().GetUnknown() costs tens of nanoseconds, for every event
// written (TestRawFieldsAt checks that both agree).
var unknownAt = func() int {
	f, ok := reflect.TypeFor[ferryv1.Event]().FieldByName("unknownFields")
	if !ok || f.Type.Kind() != reflect.Slice || f.Type.Elem().Kind() != reflect.Uint8 {
		return -1
	}
	return int(f.Offset)
}()

// HasFields reports whether e has a typed field, in its map or encoded.
func HasFields(e *ferryv1.Event) bool {
	if len(e.GetFields()) > 0 {
		return true
	}
	it := rawIter{b: rawFields(e)}
	_, _, ok := it.next()
	return ok
}

// LookupString returns the string value of field name and whether e has
// that field (a value of another kind is "", true).
func LookupString(e *ferryv1.Event, name string) (string, bool) {
	if raw := rawFields(e); len(raw) > 0 {
		if v, ok := lookupRaw(raw, name); ok {
			return rawStr(v), true
		}
	}
	v, ok := e.GetFields()[name]
	return v.GetStr(), ok
}

// MaterializeFields moves the encoded fields of e into its Fields map
// (what decoding them would have made), keeping any other unknown field
// as it is. For a writer of e.Fields, and for tests comparing events.
func MaterializeFields(e *ferryv1.Event) {
	raw := rawFields(e)
	if len(raw) == 0 {
		return
	}
	var rest []byte
	b := raw
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			break
		}
		if num == 7 && typ == protowire.BytesType {
			entry, _ := protowire.ConsumeBytes(b[n:])
			if k, v, ok := rawEntry(entry); ok {
				if e.Fields == nil {
					e.Fields = make(map[string]*ferryv1.Value, 4)
				}
				e.Fields[strings.Clone(k)] = rawValue(v)
			}
		} else {
			rest = append(rest, b[:n+m]...)
		}
		b = b[n+m:]
	}
	e.ProtoReflect().SetUnknown(rest)
}

// rawIter walks the Event.fields entries of an event's unknown fields,
// skipping other fields; it stops at the first byte it cannot read (the
// decoder checked the entries: nothing it let through is cut short).
type rawIter struct{ b []byte }

// Tags, as one byte, of what the readers meet most: an Event.fields
// entry (7, bytes), its key (1, bytes) and value (2, bytes), and the
// members of a Value (str 1, int 2, double 3, bool 4).
const (
	tagFields = 7<<3 | byte(protowire.BytesType)
	tagKey    = 1<<3 | byte(protowire.BytesType)
	tagValue  = 2<<3 | byte(protowire.BytesType)
	tagStr    = 1<<3 | byte(protowire.BytesType)
	tagInt    = 2<<3 | byte(protowire.VarintType)
	tagDouble = 3<<3 | byte(protowire.Fixed64Type)
	tagBool   = 4<<3 | byte(protowire.VarintType)
)

// lengthAt reads the length of a length-delimited field at b (after its
// tag) and returns the field's bytes and how much of b they and the
// length took; n < 0 when b is cut short.
func lengthAt(b []byte) (v []byte, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		l := int(b[0])
		if l > len(b)-1 {
			return nil, -1
		}
		return b[1 : 1+l], 1 + l
	}
	return protowire.ConsumeBytes(b)
}

// next returns the next entry (see nextEntry) split into its name and
// encoded Value (views of the bytes, valid as long as the event).
func (it *rawIter) next() (name string, value []byte, ok bool) {
	if k, v, n := shortEntry(it.b); n > 0 {
		it.b = it.b[n:]
		return k, v, true
	}
	for {
		entry, ok := it.nextEntry()
		if !ok {
			return "", nil, false
		}
		if name, value, ok = rawEntry(entry); ok {
			return name, value, true
		}
	}
}

// shortEntry reads, at the head of b, an entry written as encoders write
// a short one: its tag, its length, the key's tag, length and bytes, the
// value's tag, length and bytes, every length one byte (below 128). It
// returns the key, the value and how many bytes of b the field took; n
// is 0 when the head of b is anything else (rawIter reads it then).
func shortEntry(b []byte) (key string, value []byte, n int) {
	if len(b) < 6 || b[0] != tagFields || b[1] >= 0x80 || b[2] != tagKey || b[3] >= 0x80 {
		return "", nil, 0
	}
	n, kl := 2+int(b[1]), int(b[3])
	v := 6 + kl // the value's first byte
	if n > len(b) || v > n || b[v-2] != tagValue || b[v-1] >= 0x80 || v+int(b[v-1]) != n {
		return "", nil, 0
	}
	return unsafe.String(&b[4], kl), b[v:n], n
}

// nextEntry returns the bytes of the next Event.fields entry.
func (it *rawIter) nextEntry() ([]byte, bool) {
	for len(it.b) > 0 {
		if it.b[0] == tagFields {
			entry, n := lengthAt(it.b[1:])
			if n < 0 {
				it.b = nil
				return nil, false
			}
			it.b = it.b[1+n:]
			return entry, true
		}
		num, typ, n := protowire.ConsumeTag(it.b)
		if n < 0 {
			it.b = nil
			return nil, false
		}
		it.b = it.b[n:]
		if num == 7 && typ == protowire.BytesType { // a tag written long
			entry, m := protowire.ConsumeBytes(it.b)
			if m < 0 {
				it.b = nil
				return nil, false
			}
			it.b = it.b[m:]
			return entry, true
		}
		m := protowire.ConsumeFieldValue(num, typ, it.b)
		if m < 0 {
			it.b = nil
			return nil, false
		}
		it.b = it.b[m:]
	}
	return nil, false
}

// lookupRaw returns the encoded Value of the last entry named name in raw,
// and whether there is one. Most entries are told apart by the length of
// their key, at its head, without reading further.
func lookupRaw(raw []byte, name string) (value []byte, found bool) {
	value, _, found, _ = lookupRaw2(raw, name, name)
	return value, found
}

// lookupRaw2 is lookupRaw of two names (of different lengths or not) in
// one walk.
func lookupRaw2(raw []byte, a, b string) (va, vb []byte, fa, fb bool) {
	it := rawIter{b: raw}
	for {
		if k, v, n := shortEntry(it.b); n > 0 {
			it.b = it.b[n:]
			if len(k) == len(a) && k == a {
				va, fa = v, true
			}
			if len(k) == len(b) && k == b {
				vb, fb = v, true
			}
			continue
		}
		entry, ok := it.nextEntry()
		if !ok {
			return va, vb, fa, fb
		}
		if kl, ok := soleKeyLen(entry); ok && kl != len(a) && kl != len(b) {
			continue // the key comes first, as written, and is neither
		}
		if k, v, ok := rawEntry(entry); ok {
			if k == a {
				va, fa = v, true
			}
			if k == b {
				vb, fb = v, true
			}
		}
	}
}

// soleKeyLen returns the length of an entry's key when the entry is
// written as encoders write it: the key (its length below 128), then at
// most the value, nothing else. A key field may come twice in an entry
// (the last one counts), so a first key tells nothing otherwise.
func soleKeyLen(entry []byte) (int, bool) {
	if len(entry) < 2 || entry[0] != tagKey || entry[1] >= 0x80 {
		return 0, false
	}
	kl := int(entry[1])
	if 2+kl > len(entry) {
		return 0, false
	}
	rest := entry[2+kl:]
	if len(rest) == 0 {
		return kl, true
	}
	if rest[0] != tagValue {
		return 0, false
	}
	_, n := lengthAt(rest[1:])
	return kl, n >= 0 && 1+n == len(rest)
}

// rawEntry splits a map entry into its key (a view, no copy) and its
// encoded Value; a missing key is "", a missing value an empty Value.
func rawEntry(b []byte) (key string, value []byte, ok bool) {
	for len(b) > 0 {
		if t := b[0]; t == tagKey || t == tagValue {
			v, n := lengthAt(b[1:])
			if n < 0 {
				return "", nil, false
			}
			b = b[1+n:]
			if t == tagKey {
				key = unsafe.String(unsafe.SliceData(v), len(v))
			} else {
				value = v
			}
			continue
		}
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", nil, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return "", nil, false
			}
			key, b = unsafe.String(unsafe.SliceData(v), len(v)), b[m:]
		case num == 2 && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return "", nil, false
			}
			value, b = v, b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return "", nil, false
			}
			b = b[m:]
		}
	}
	return key, value, true
}

// rawKind is the member of an encoded Value that is set (the last one
// written, as when decoded): 0 none, 1 str, 2 int, 3 double, 4 bool; s
// the string, x the other members' bits.
func rawKind(b []byte) (kind int, s string, x uint64) {
	for len(b) > 0 {
		var m int
		switch t := b[0]; t {
		case tagStr:
			var v []byte
			if v, m = lengthAt(b[1:]); m >= 0 {
				kind, s, m = 1, unsafe.String(unsafe.SliceData(v), len(v)), m+1
			}
		case tagInt, tagBool:
			if len(b) > 1 && b[1] < 0x80 {
				kind, x, m = int(t>>3), uint64(b[1]), 2
			} else if x, m = protowire.ConsumeVarint(b[1:]); m >= 0 {
				kind, m = int(t>>3), m+1
			}
		case tagDouble:
			if x, m = protowire.ConsumeFixed64(b[1:]); m >= 0 {
				kind, m = 3, m+1
			}
		default:
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return kind, s, x
			}
			switch {
			case num == 1 && typ == protowire.BytesType:
				var v []byte
				if v, m = protowire.ConsumeBytes(b[n:]); m >= 0 {
					kind, s = 1, unsafe.String(unsafe.SliceData(v), len(v))
				}
			case (num == 2 || num == 4) && typ == protowire.VarintType:
				var v uint64
				if v, m = protowire.ConsumeVarint(b[n:]); m >= 0 {
					kind, x = int(num), v
				}
			case num == 3 && typ == protowire.Fixed64Type:
				var v uint64
				if v, m = protowire.ConsumeFixed64(b[n:]); m >= 0 {
					kind, x = 3, v
				}
			default:
				m = protowire.ConsumeFieldValue(num, typ, b[n:])
			}
			if m >= 0 {
				m += n
			}
		}
		if m < 0 {
			return kind, s, x
		}
		b = b[m:]
	}
	return kind, s, x
}

// rawStr returns the string member of an encoded Value, "" if another is
// set.
func rawStr(b []byte) string {
	if kind, s, _ := rawKind(b); kind == 1 {
		return s
	}
	return ""
}

// rawValue decodes an encoded Value (its string copied).
func rawValue(b []byte) *ferryv1.Value {
	switch kind, s, x := rawKind(b); kind {
	case 1:
		return Str(strings.Clone(s))
	case 2:
		return Int(int64(x))
	case 3:
		return Float(math.Float64frombits(x))
	case 4:
		return Bool(protowire.DecodeBool(x))
	}
	return &ferryv1.Value{}
}

// appendRawValue appends the JSON of an encoded Value, as appendValue
// does for the decoded one.
func appendRawValue(dst []byte, b []byte) []byte {
	if len(b) >= 2 && b[0] == tagStr && b[1] < 0x80 && 2+int(b[1]) == len(b) {
		return appendString(dst, unsafe.String(unsafe.SliceData(b[2:]), len(b)-2)) // a short string, alone
	}
	switch kind, s, x := rawKind(b); kind {
	case 1:
		return appendString(dst, s)
	case 2:
		return strconv.AppendInt(dst, int64(x), 10)
	case 3:
		f := math.Float64frombits(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(dst, "null"...)
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case 4:
		return strconv.AppendBool(dst, protowire.DecodeBool(x))
	}
	return append(dst, "null"...)
}

// allFields appends the fields of fs and the encoded ones of raw to dst,
// in name order, one per name: an encoded one replaces the map's, a later
// encoded one an earlier.
func allFields(dst []field, fs map[string]*ferryv1.Value, raw []byte) []field {
	n0 := len(dst)
	for k, v := range fs {
		dst = append(dst, field{name: k, value: v})
	}
	it := rawIter{b: raw}
	for {
		k, v, ok := it.next()
		if !ok {
			break
		}
		dst = append(dst, field{name: k, raw: v, encoded: true})
	}
	return dedupeLast(dst, n0)
}

// dedupeLast sorts dst[n0:] by name, stably, and keeps the last of each
// name.
func dedupeLast(dst []field, n0 int) []field {
	fs := dst[n0:]
	slices.SortStableFunc(fs, func(a, b field) int { return strings.Compare(a.name, b.name) })
	out := n0
	for i := range fs {
		if i+1 < len(fs) && fs[i+1].name == fs[i].name {
			continue
		}
		dst[out] = fs[i]
		out++
	}
	return dst[:out]
}
