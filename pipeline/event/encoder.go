package event

import (
	"slices"
	"strings"
	"time"
	"unsafe"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// DocumentEncoder writes the documents of one batch, as a sink does in one
// Write: the same bytes as Batch.AppendDocument, but the parts of a
// document that depend only on what runs of events share (ingested with
// dataset and data_stream; the file path; the input; host, kubernetes,
// container and the pod's enrichment) are rendered once per run and
// copied. The wire decoder makes consecutive events of one pod share one
// Kubernetes struct and their source strings, so a run is usually a whole
// file's events in the batch.
//
// An encoder is for one batch and one goroutine: it remembers the
// Kubernetes structs and Meta of the batch by identity, which hold only
// while the batch is neither changed nor released. A sink makes one per
// Write (the batch may be written by several sinks at once, see
// sinks.Fanout, each with its own encoder).
type DocumentEncoder struct {
	b        *Batch
	ingested time.Time
	// Each part is valid when its buf is not empty (no part renders
	// empty), for the key beside it.
	stream struct {
		ds, ns, typ string
		buf         []byte
	}
	path, input struct {
		key string
		buf []byte
	}
	// sec is the second of the last @timestamp written, head its
	// rendering ("2006-01-02T15:04:05.000000000Z"); valid when head[0] is
	// not 0.
	sec  int64
	head [len(timeLayout)]byte
	host struct {
		k      *ferryv1.Kubernetes
		m      *Meta
		metric bool
		buf    []byte
	}
	// names are the typed fields' names of the last event that had any,
	// in order: the events of one parser (HAProxy: 40 fields) have the
	// same names, which need not be sorted again.
	names []string
	// wire holds the names of the last event whose fields were left
	// encoded (see rawFields), in their order, and perm the order that
	// sorts them into names (the last of equal names only): the next
	// such event with the same names in the same order is put in order
	// by perm. Valid when wire is not empty (sortedFields empties it).
	wire []string
	perm []int
	// fixed[i] is fixedField(names[i], fixedEnriched), when fixedSet.
	fixed                   []bool
	fixedSet, fixedEnriched bool
	// keyBuf holds `,"name":` of each of names, ending at keyEnds[i],
	// when keysSet.
	keyBuf  []byte
	keyEnds []int
	keysSet bool
	// cur is the event Append is writing; id, when not nil, its
	// IDString (AppendWithID).
	cur int
	id  []byte
	// routed holds the data stream parts of event i, as DataStream
	// computed them, for Append to use (valid when ok).
	routed struct {
		i           int
		ok          bool
		ds, ns, typ string
	}
	// name is the data stream name of the parts beside it.
	name struct{ ds, ns, typ, name string }
}

// NewDocumentEncoder returns the encoder of b's documents, taken by the
// aggregator at ingested.
func NewDocumentEncoder(b *Batch, ingested time.Time) DocumentEncoder {
	return DocumentEncoder{b: b, ingested: ingested}
}

// Append appends the document of event i of the batch to dst: what
// b.AppendDocument(dst, i, ingested) appends.
func (enc *DocumentEncoder) Append(dst []byte, i int) []byte {
	b := enc.b
	var add *Addition
	if i < len(b.Added) {
		add = b.Added[i]
	}
	enc.cur = i
	return appendDocument(dst, b.Node, b.Events[i], b.meta(i), add, enc.ingested, enc)
}

// AppendWithID is Append for a caller that has the event's IDString
// already (a sink writes it as the _id): id, which must be
// IDString(event's id), is copied instead of encoded again.
func (enc *DocumentEncoder) AppendWithID(dst []byte, i int, id []byte) []byte {
	enc.id = id
	dst = enc.Append(dst, i)
	enc.id = nil
	return dst
}

// DataStream returns b.DataStream(i), the name of event i's data stream,
// without a new string for each event of a run with the same one. Its
// parts are kept for Append(i) when it comes next, which then need not
// compute them again.
func (enc *DocumentEncoder) DataStream(i int) string {
	b := enc.b
	e, m := b.Events[i], b.meta(i)
	if m != nil && !m.sealed {
		return b.DataStream(i) // an enrichment bug: written as it always was
	}
	ds, ns, typ := dataStreamParts(e, m)
	r := &enc.routed
	r.i, r.ok, r.ds, r.ns, r.typ = i, true, ds, ns, typ
	p := &enc.name
	if p.name == "" || p.ds != ds || p.ns != ns || p.typ != typ {
		p.ds, p.ns, p.typ = ds, ns, typ
		p.name = typ + "-" + ds + "-" + ns
	}
	return p.name
}

// streamParts returns the data stream dataset, namespace and type of e,
// the event Append is writing, enriched with m: Dataset(e), namespace(e,
// m), Type(e), as DataStream computed them if it did for this event.
func (enc *DocumentEncoder) streamParts(e *ferryv1.Event, m *Meta) (ds, ns, typ string) {
	if r := &enc.routed; r.ok && r.i == enc.cur && enc.b.Events[r.i] == e {
		return r.ds, r.ns, r.typ
	}
	return dataStreamParts(e, m)
}

// appendTimestamp appends appendTime(time.Unix(0, ns)), with the date and
// time of day copied from the previous @timestamp when in the same second:
// the events of a batch fall on a few seconds.
func (enc *DocumentEncoder) appendTimestamp(dst []byte, ns int64) []byte {
	sec, frac := ns/1e9, int(ns%1e9)
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	if enc.head[0] == 0 || sec != enc.sec {
		// An int64 of nanoseconds is within years 1677 to 2262: the
		// rendering always has the layout's length.
		appendTime(enc.head[:0], time.Unix(sec, 0))
		enc.sec = sec
	}
	// The second's rendering (its fraction zero and 'Z' included), then
	// the fraction over it.
	n := len(dst)
	dst = append(dst, enc.head[:]...)
	putFraction(dst[n+20:n+29], frac)
	return dst
}

func (enc *DocumentEncoder) streamPart(ds, ns, typ string) []byte {
	p := &enc.stream
	if len(p.buf) == 0 || p.ds != ds || p.ns != ns || p.typ != typ {
		p.ds, p.ns, p.typ = ds, ns, typ
		p.buf = appendStreamPart(grown(p.buf, 256), enc.ingested, ds, ns, typ)
	}
	return p.buf
}

func (enc *DocumentEncoder) pathPart(path string) []byte {
	p := &enc.path
	if len(p.buf) == 0 || p.key != path {
		p.key = path
		p.buf = appendPathPart(grown(p.buf, 256), path)
	}
	return p.buf
}

func (enc *DocumentEncoder) inputPart(in string) []byte {
	p := &enc.input
	if len(p.buf) == 0 || p.key != in {
		p.key = in
		p.buf = appendInputPart(grown(p.buf, 64), in)
	}
	return p.buf
}

// hostPart is appendHostPart for the batch's node. The Kubernetes struct k
// (nil for none) and m are compared by identity: within one batch neither
// changes.
func (enc *DocumentEncoder) hostPart(node string, k *ferryv1.Kubernetes, m *Meta, metric bool) []byte {
	p := &enc.host
	if len(p.buf) == 0 || p.k != k || p.m != m || p.metric != metric {
		p.k, p.m, p.metric = k, m, metric
		p.buf = appendHostPart(grown(p.buf, 1024), node, k, m, metric)
	}
	return p.buf
}

// sortedFields is sortFields(dst, fs), in the order of the last event's
// names when fs has exactly those (looking each up instead of sorting).
func (enc *DocumentEncoder) sortedFields(dst []field, fs map[string]*ferryv1.Value) []field {
	if len(enc.names) == len(fs) {
		same := true
		for _, k := range enc.names {
			v, ok := fs[k]
			if !ok {
				same = false
				break
			}
			dst = append(dst, field{name: k, value: v})
		}
		if same {
			return dst
		}
		dst = dst[:0]
	}
	dst = sortFields(dst, fs)
	enc.wire = enc.wire[:0]
	enc.names = enc.names[:0]
	for _, f := range dst {
		enc.names = append(enc.names, f.name)
	}
	enc.fixedSet, enc.keysSet = false, false
	return dst
}

// span is where an encoded Value lies in its event's encoded fields.
type span struct{ at, n int32 }

// appendRawFields appends the typed fields encoded in raw (see rawFields)
// as appendDocument appends those of a map: in name order, one per name
// (the last, as allFields), those the document has already left out. The
// names, their order and their keys are those of the last event when its
// names came in the same order (the events of one parser); else they are
// sorted afresh.
func (enc *DocumentEncoder) appendRawFields(dst []byte, raw []byte, enriched bool, add *Addition) []byte {
	var arr [48]span // on the stack: HAProxy sets 40 at most
	vals := arr[:0]
	same := len(enc.wire) > 0
	it := rawIter{b: raw}
	for i := 0; ; i++ {
		k, v, ok := it.next()
		if !ok {
			same = same && i == len(enc.wire)
			break
		}
		same = same && i < len(enc.wire) && k == enc.wire[i]
		var at int32
		if len(v) > 0 { // a view of raw
			at = int32(uintptr(unsafe.Pointer(unsafe.SliceData(v))) - uintptr(unsafe.Pointer(unsafe.SliceData(raw))))
		}
		vals = append(vals, span{at, int32(len(v))})
	}
	if !same {
		enc.sortRaw(raw)
	}
	fixed := enc.fixedFields(enriched)
	keys, ends := enc.keys()
	for i, p := range enc.perm {
		if fixed[i] || add.has(enc.names[i]) {
			continue // the document has it already (data_stream.* is read above)
		}
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		dst = append(dst, keys[start:ends[i]]...)
		v := vals[p]
		dst = appendRawValue(dst, raw[v.at:v.at+v.n])
	}
	return dst
}

// sortRaw sets wire to the names of the fields encoded in raw, perm to
// the order that sorts them (the last of equal names only) and names to
// them in that order.
func (enc *DocumentEncoder) sortRaw(raw []byte) {
	enc.wire, enc.perm = enc.wire[:0], enc.perm[:0]
	it := rawIter{b: raw}
	for i := 0; ; i++ {
		k, _, ok := it.next()
		if !ok {
			break
		}
		enc.wire = append(enc.wire, k)
		enc.perm = append(enc.perm, i)
	}
	w := enc.wire
	slices.SortStableFunc(enc.perm, func(a, b int) int { return strings.Compare(w[a], w[b]) })
	keep := enc.perm[:0]
	for j, p := range enc.perm {
		if j+1 < len(enc.perm) && w[enc.perm[j+1]] == w[p] {
			continue // a later one of the same name replaces it
		}
		keep = append(keep, p)
	}
	enc.perm = keep
	enc.names = enc.names[:0]
	for _, p := range enc.perm {
		enc.names = append(enc.names, w[p])
	}
	enc.fixedSet, enc.keysSet = false, false
}

// keys returns `,"name":` of each of the names sortedFields just returned
// the fields of, in one buffer: keys[ends[i-1]:ends[i]] is names[i]'s.
func (enc *DocumentEncoder) keys() (keys []byte, ends []int) {
	if !enc.keysSet {
		enc.keyBuf, enc.keyEnds = enc.keyBuf[:0], enc.keyEnds[:0]
		for _, k := range enc.names {
			enc.keyBuf = append(appendString(append(enc.keyBuf, ','), k), ':')
			enc.keyEnds = append(enc.keyEnds, len(enc.keyBuf))
		}
		enc.keysSet = true
	}
	return enc.keyBuf, enc.keyEnds
}

// fixedFields returns fixedField of each of the names sortedFields just
// returned the fields of, for a document enriched or not.
func (enc *DocumentEncoder) fixedFields(enriched bool) []bool {
	if !enc.fixedSet || enc.fixedEnriched != enriched {
		enc.fixed = enc.fixed[:0]
		for _, k := range enc.names {
			enc.fixed = append(enc.fixed, fixedField(k, enriched))
		}
		enc.fixedSet, enc.fixedEnriched = true, enriched
	}
	return enc.fixed
}

// grown returns buf emptied, with room for n bytes at least: a part's
// buffer grows once rather than by doubling from nothing.
func grown(buf []byte, n int) []byte {
	if cap(buf) < n {
		return make([]byte, 0, n)
	}
	return buf[:0]
}
