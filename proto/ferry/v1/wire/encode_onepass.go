package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
	"unsafe"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// The one-pass encoder (AppendBatch, AppendBatchExtra): no sizing pass
// over the batch first. Each event's length prefix is reserved before the
// event is written, as many bytes as the previous event's took, and
// filled in after; an event whose length needs another number of bytes
// moves by the difference (rare: the events of a batch are of a size).
// Strings are checked for UTF-8 as they are written; on invalid UTF-8 the
// output is dropped. Submessages and map entries are sized as they are
// written (their fields are few). The bytes are those of the two-pass
// encoder (MarshalBatch).

// AppendBatchExtra appends the encoding of b, with the encoded fields
// extra of its events (see MarshalBatchExtra), to dst, growing it as
// needed: with room enough, it writes into dst's array. On error (invalid
// UTF-8 in a string field, wrapping ErrInvalidUTF8) it returns nil; what
// dst's spare capacity holds is then undefined.
func AppendBatchExtra(dst []byte, b *ferryv1.Batch, extra [][]byte) ([]byte, error) {
	e := getEncoder()
	defer putEncoder(e)
	e.extra = extra
	out, err := e.appendBatch1(dst, b)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (e *encoder) appendBatch1(b []byte, x *ferryv1.Batch) ([]byte, error) {
	if x == nil {
		return b, nil
	}
	if !utf8.ValidString(x.Node) {
		return nil, utf8Error("ferry.v1.Batch.node")
	}
	b = appendUvarintNZ(b, 0x08, x.Seq)
	b = appendStringNZ(b, 0x12, x.Node)
	w := checkedWriter{e: e}
	reserve := 2 // bytes for an event's length: events of 128 B to 16 KiB
	for i, ev := range x.Events {
		b = append(b, 0x1a)
		at := len(b)
		b = append(b, make([]byte, reserve)...)
		var extra []byte
		if i < len(e.extra) {
			extra = e.extra[i]
		}
		var err error
		if b, err = w.appendEvent(b, ev, extra); err != nil {
			return nil, err
		}
		n := len(b) - at - reserve
		if n > math.MaxUint32 {
			return nil, fmt.Errorf("wire: event %d of %d bytes", i, n)
		}
		if k := sizeVarint(uint64(n)); k != reserve {
			b = shift(b, at+reserve, k-reserve)
			w.moved(at+reserve, k-reserve)
			reserve = k
		}
		putVarint(b[at:at+reserve], uint64(n))
	}
	for _, p := range x.Pods {
		s, err := sizePod(p)
		if err != nil {
			return nil, err
		}
		b = appendVarint(append(b, 0x22), uint64(s))
		b = appendPod(b, p)
	}
	return append(b, unknown(x, batchUnknown)...), nil
}

// shift moves b[from:] by delta bytes (right if positive), growing or
// shrinking b.
func shift(b []byte, from, delta int) []byte {
	if delta > 0 {
		end := len(b)
		b = append(b, make([]byte, delta)...)
		copy(b[from+delta:], b[from:end])
		return b
	}
	copy(b[from+delta:], b[from:])
	return b[:len(b)+delta]
}

// putVarint writes v into p, which is exactly its varint's length.
func putVarint(p []byte, v uint64) {
	for i := range len(p) - 1 {
		p[i] = byte(v) | 0x80
		v >>= 7
	}
	p[len(p)-1] = byte(v)
}

// checkedWriter is eventWriter for the one-pass encoder: it checks
// strings for UTF-8 and sizes what it writes itself.
type checkedWriter struct {
	e              *encoder // the strings checked last (path, input, ...)
	kube           *ferryv1.Kubernetes
	kubeAt, kubeTo int
	fields         unsafe.Pointer
	fsAt, fsTo     int
}

// moved notes that the output from from on moved by delta bytes.
func (w *checkedWriter) moved(from, delta int) {
	if w.kube != nil && w.kubeAt >= from {
		w.kubeAt += delta
		w.kubeTo += delta
	}
	if w.fields != nil && w.fsAt >= from {
		w.fsAt += delta
		w.fsTo += delta
	}
}

func (w *checkedWriter) appendEvent(b []byte, ev *ferryv1.Event, extra []byte) ([]byte, error) {
	if ev == nil {
		return b, nil
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
		n, err := w.e.sizeSource(s) // checks its strings
		if err != nil {
			return nil, err
		}
		b = appendVarint(append(b, 0x2a), uint64(n))
		b = appendStringNZ(b, 0x0a, s.Path)
		b = appendUvarintNZ(b, 0x10, uint64(s.Offset))
		b = appendStringNZ(b, 0x1a, s.Input)
		b = appendStringNZ(b, 0x22, s.FileId)
		b = appendUvarintNZ(b, 0x28, uint64(s.EndOffset))
		b = appendUvarintNZ(b, 0x30, uint64(s.Lines))
		b = append(b, unknown(s, sourceUnknown)...)
	}
	if k := ev.Kubernetes; k != nil {
		if k == w.kube {
			b = append(b, b[w.kubeAt:w.kubeTo]...)
		} else {
			n, err := sizeKubernetes(k) // checks its strings
			if err != nil {
				return nil, err
			}
			at := len(b)
			b = appendVarint(append(b, 0x32), uint64(n))
			b = appendStringNZ(b, 0x0a, k.Namespace)
			b = appendStringNZ(b, 0x12, k.Pod)
			b = appendStringNZ(b, 0x1a, k.PodUid)
			b = appendStringNZ(b, 0x22, k.Container)
			b = appendStringNZ(b, 0x2a, k.ContainerId)
			b = append(b, unknown(k, kubeUnknown)...)
			w.kube, w.kubeAt, w.kubeTo = k, at, len(b)
		}
	}
	if len(ev.Fields) > 0 {
		if id := mapID(ev.Fields); id == w.fields {
			b = append(b, b[w.fsAt:w.fsTo]...)
		} else {
			at := len(b)
			var err error
			if b, err = w.e.appendFieldsChecked(b, ev.Fields); err != nil {
				return nil, err
			}
			w.fields, w.fsAt, w.fsTo = id, at, len(b)
		}
	}
	b = append(b, extra...)
	b = appendUvarintNZ(b, 0x40, uint64(ev.Flags))
	b = appendUvarintNZ(b, 0x48, uint64(int64(ev.Kind)))
	if ev.OriginalTime != "" {
		if !utf8.ValidString(ev.OriginalTime) {
			return nil, utf8Error("ferry.v1.Event.original_time")
		}
		b = appendString(b, 0x52, ev.OriginalTime)
	}
	return append(b, unknown(ev, eventUnknown)...), nil
}

// appendFieldsChecked writes the entries of m, each with its tag and
// length, checking keys and string values.
func (e *encoder) appendFieldsChecked(b []byte, m map[string]*ferryv1.Value) ([]byte, error) {
	for k, v := range m {
		ref := strRef{unsafe.StringData(k), len(k)}
		slot := &e.keys[(uintptr(unsafe.Pointer(ref.p))>>3^uintptr(ref.n))%uintptr(len(e.keys))]
		if *slot != ref {
			if !utf8.ValidString(k) {
				return nil, utf8Error("ferry.v1.Event.fields (a key)")
			}
			*slot = ref
		}
		var u []byte
		vs := 0
		if v != nil {
			switch x := v.Kind.(type) {
			case *ferryv1.Value_Str:
				if x != nil {
					if !utf8.ValidString(x.Str) {
						return nil, utf8Error("ferry.v1.Value.str")
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
			u = unknown(v, valueUnknown)
			vs += len(u)
		}
		if vs > math.MaxUint32 {
			return nil, fmt.Errorf("wire: a field value of %d bytes", vs)
		}
		en := [1]entry{{k: k, v: v, size: uint32(vs), unknown: len(u) > 0}}
		b = appendFields(b, en[:])
	}
	return b, nil
}
