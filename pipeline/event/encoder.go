package event

import (
	"time"

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
	// rendering up to the fraction ("2006-01-02T15:04:05."); valid when
	// head[0] is not 0.
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
	// fixed[i] is fixedField(names[i], fixedEnriched), when fixedSet.
	fixed                   []bool
	fixedSet, fixedEnriched bool
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
	return appendDocument(dst, b.Node, b.Events[i], b.meta(i), add, enc.ingested, enc)
}

// appendTimestamp appends appendTime(time.Unix(0, ns)), with the date and
// time of day copied from the previous @timestamp when in the same second:
// the events of a batch fall on a few seconds.
func (enc *DocumentEncoder) appendTimestamp(dst []byte, ns int64) []byte {
	t := time.Unix(0, ns)
	sec := t.Unix()
	if sec < firstSecond || sec > lastSecond {
		return appendTime(dst, t) // never for an int64 of nanoseconds: years 1677 to 2262
	}
	if enc.head[0] == 0 || sec != enc.sec {
		appendTime(enc.head[:0], t)
		enc.sec = sec
	}
	var b [len(timeLayout)]byte
	copy(b[:20], enc.head[:20])
	putFraction(b[20:29], t.Nanosecond())
	b[29] = 'Z'
	return append(dst, b[:]...)
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
			dst = append(dst, field{k, v})
		}
		if same {
			return dst
		}
		dst = dst[:0]
	}
	dst = sortFields(dst, fs)
	enc.names = enc.names[:0]
	for _, f := range dst {
		enc.names = append(enc.names, f.name)
	}
	enc.fixedSet = false
	return dst
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
