// Package event defines what one event is once it leaves the agent: its
// deterministic id, the batch that carries it through the aggregator, and the
// one JSON document (ECS field names) that every sink writes.
//
// The wire type ferryv1.Event is the event type: both binaries share it, so no
// copy is made between receiving a batch and writing it.
package event

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
	"unicode"
	"unicode/utf8"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// IDLen is the length in bytes of an event id.
const IDLen = 16

// ID returns the deterministic id of the line that starts at offset in the
// file whose identity is fileID, read on node. It depends only on where the
// line was, never on what it says, so two identical lines get two ids and a
// re-sent line gets the same id. The result is appended to dst.
func ID(dst []byte, node, fileID string, offset int64) []byte {
	// The hashed input is node, 0, fileID, 0, offset (8 bytes big endian).
	// Built in a stack buffer and hashed with Sum256, nothing escapes; an
	// input too long for the buffer takes the streaming hash (same bytes).
	n := len(node) + len(fileID) + 10
	var sum [sha256.Size]byte
	if n <= idStackBuf {
		var buf [idStackBuf]byte
		i := copy(buf[:], node)
		buf[i] = 0
		i++
		i += copy(buf[i:], fileID)
		buf[i] = 0
		i++
		binary.BigEndian.PutUint64(buf[i:], uint64(offset))
		sum = sha256.Sum256(buf[:n])
	} else {
		h := sha256.New()
		var off [8]byte
		h.Write([]byte(node))
		h.Write([]byte{0})
		h.Write([]byte(fileID))
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(off[:], uint64(offset))
		h.Write(off[:])
		h.Sum(sum[:0])
	}
	return append(dst, sum[:IDLen]...)
}

// idStackBuf is the longest id input ID hashes without allocating: node
// names (at most 253 bytes in Kubernetes) and file identities fit.
const idStackBuf = 512

// IDString renders an id as the string used for Elasticsearch's _id and
// ECS's event.id: unpadded URL-safe base64 (22 characters for 16 bytes).
func IDString(id []byte) string {
	return base64.RawURLEncoding.EncodeToString(id)
}

// Batch is one agent batch inside the aggregator. Node is the agent's node
// name; the events are the wire events, owned by whoever holds the batch.
// Pods is the Kubernetes metadata the agent sent with the batch, each pod
// once; events refer to their pod by Kubernetes.pod_uid.
//
// Meta, set by enrichment (pipeline/enrich), is parallel to Events: the
// enrichment of each event's pod, nil for an event without one. Several
// events share one *Meta. A batch without Meta is written unenriched.
//
// Added, set by per-event enrichment (pipeline/enrich's GeoIP), is
// parallel to Events too: what each event's document gets from its own
// fields, nil for none (see Addition).
type Batch struct {
	Node   string
	Seq    uint64
	Events []*ferryv1.Event
	Pods   []*ferryv1.Pod
	Meta   []*Meta
	Added  []*Addition
	// Raw, when set, is the batch's wire encoding (a ferry.v1.Batch) as
	// the aggregator received it or as its disk buffer stored it: Seq,
	// Node, Events and Pods are what it says, so a disk buffer appends it
	// as is rather than encode the batch again. The receiver hands a sink
	// that takes raw batches (a disk buffer, see sinks/buffer's TakesRaw)
	// Raw, Seq and Node only: Events and Pods nil, not decoded, the raw
	// bytes already checked as the decoder checks them (package
	// proto/ferry/v1/wire). Raw is read-only, for everyone: decoded
	// events may share its memory (their id and message). It belongs to
	// the batch, like the events: a sink that keeps it past Write copies
	// it.
	Raw []byte
}

// meta returns the enrichment of event i, or nil.
func (b *Batch) meta(i int) *Meta {
	if i < len(b.Meta) {
		return b.Meta[i]
	}
	return nil
}

// AppendDocument appends the document of event i (see AppendDocument) with
// its enrichment.
func (b *Batch) AppendDocument(dst []byte, i int, ingested time.Time) []byte {
	var add *Addition
	if i < len(b.Added) {
		add = b.Added[i]
	}
	return appendDocument(dst, b.Node, b.Events[i], b.meta(i), add, ingested, nil)
}

// DataStream returns the data stream of event i: as DataStream, with the
// environment of its enrichment as namespace.
func (b *Batch) DataStream(i int) string {
	e, m := b.Events[i], b.meta(i)
	if m == nil || !m.sealed || HasFields(e) || e.GetKind() == ferryv1.Kind_KIND_METRIC || e.GetKubernetes().GetPod() == "" {
		return Type(e) + "-" + Dataset(e) + "-" + namespace(e, m)
	}
	return m.stream // the common case, prepared once per pod
}

// Dataset returns the data stream dataset of an event: the field
// "data_stream.dataset" when enrichment set it, else "kubernetes.container"
// for container logs, "node" for node metrics and "file" for plain files.
func Dataset(e *ferryv1.Event) string {
	if v := FieldString(e, "data_stream.dataset"); v != "" {
		return SanitizeDataStreamPart(v, "generic")
	}
	return defaultDataset(e)
}

// defaultDataset is the dataset of an event without the field
// data_stream.dataset.
func defaultDataset(e *ferryv1.Event) string {
	switch {
	case e.GetKind() == ferryv1.Kind_KIND_METRIC:
		return "node"
	case e.GetKubernetes().GetPod() != "":
		return "kubernetes.container"
	default:
		return "file"
	}
}

// Namespace returns the data stream namespace of an event: the field
// "data_stream.namespace" (the environment, once enrichment sets it),
// else "default".
func Namespace(e *ferryv1.Event) string {
	return namespace(e, nil)
}

// namespace returns the data stream namespace of e enriched with m (or
// nil): m's environment, else the field data_stream.namespace, else
// "default".
func namespace(e *ferryv1.Event, m *Meta) string {
	if m != nil {
		return m.Namespace()
	}
	return SanitizeDataStreamPart(FieldString(e, "data_stream.namespace"), "default")
}

// dataStreamParts returns Dataset(e), namespace(e, m) and Type(e), reading
// encoded fields once for both names (an HAProxy request carries some 40:
// two lookups walked them twice, for every event).
func dataStreamParts(e *ferryv1.Event, m *Meta) (ds, ns, typ string) {
	raw := rawFields(e)
	if len(raw) == 0 || len(e.GetFields()) > 0 {
		return Dataset(e), namespace(e, m), Type(e)
	}
	dv, nv, dok, nok := lookupRaw2(raw, "data_stream.dataset", "data_stream.namespace")
	if dok {
		ds = rawStr(dv)
	}
	if ds != "" {
		ds = SanitizeDataStreamPart(ds, "generic")
	} else {
		ds = defaultDataset(e)
	}
	if m != nil {
		ns = m.Namespace()
	} else {
		n := ""
		if nok {
			n = rawStr(nv)
		}
		ns = SanitizeDataStreamPart(n, "default")
	}
	return ds, ns, Type(e)
}

// Type returns the data stream type: "metrics" or "logs".
func Type(e *ferryv1.Event) string {
	if e.GetKind() == ferryv1.Kind_KIND_METRIC {
		return "metrics"
	}
	return "logs"
}

// DataStream returns the data stream name {type}-{dataset}-{namespace}.
func DataStream(e *ferryv1.Event) string {
	return Type(e) + "-" + Dataset(e) + "-" + Namespace(e)
}

// SanitizeDataStreamPart makes s usable as a data stream dataset or
// namespace: lower case, at most 100 bytes, with '-', space and
// \ / * ? " < > | , # : (and invalid UTF-8) replaced by '_', without a
// leading '_', '.' or '+'. An empty result becomes def.
func SanitizeDataStreamPart(s, def string) string {
	var buf [100]byte
	out := buf[:0]
	for _, r := range s {
		switch r {
		case '-', ' ', '\\', '/', '*', '?', '"', '<', '>', '|', ',', '#', ':', utf8.RuneError:
			r = '_'
		default:
			r = unicode.ToLower(r)
		}
		if len(out) == 0 && (r == '_' || r == '.' || r == '+') {
			continue
		}
		if len(out)+utf8.RuneLen(r) > len(buf) {
			break
		}
		out = utf8.AppendRune(out, r)
	}
	if len(out) == 0 {
		return def
	}
	if string(out) == s {
		return s // unchanged: no copy
	}
	return string(out)
}

// FieldString returns the string value of field name, or "".
func FieldString(e *ferryv1.Event, name string) string {
	s, _ := LookupString(e, name)
	return s
}

// SetField sets a typed field on e.
func SetField(e *ferryv1.Event, name string, v *ferryv1.Value) {
	MaterializeFields(e) // else an encoded one of that name would win
	if e.Fields == nil {
		e.Fields = make(map[string]*ferryv1.Value, 4)
	}
	e.Fields[name] = v
}

// Str, Int, Float and Bool build field values.
func Str(s string) *ferryv1.Value { return &ferryv1.Value{Kind: &ferryv1.Value_Str{Str: s}} }

// Int builds an integer field value.
func Int(i int64) *ferryv1.Value { return &ferryv1.Value{Kind: &ferryv1.Value_Int{Int: i}} }

// Float builds a floating point field value.
func Float(f float64) *ferryv1.Value { return &ferryv1.Value{Kind: &ferryv1.Value_Double{Double: f}} }

// Bool builds a boolean field value.
func Bool(b bool) *ferryv1.Value { return &ferryv1.Value{Kind: &ferryv1.Value_Bool{Bool: b}} }

// AppendIDString appends IDString(id) to dst.
func AppendIDString(dst, id []byte) []byte {
	return appendBase64ID(dst, id)
}

// AppendDataStream appends DataStream(i) to dst, without making a string
// of it.
func (b *Batch) AppendDataStream(dst []byte, i int) []byte {
	e, m := b.Events[i], b.meta(i)
	if m == nil || !m.sealed || HasFields(e) || e.GetKind() == ferryv1.Kind_KIND_METRIC || e.GetKubernetes().GetPod() == "" {
		dst = append(dst, Type(e)...)
		dst = append(dst, '-')
		dst = append(dst, Dataset(e)...)
		dst = append(dst, '-')
		return append(dst, namespace(e, m)...)
	}
	return append(dst, m.stream...)
}
