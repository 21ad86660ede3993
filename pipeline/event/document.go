package event

import (
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// flagNames lists the names written to ferry.flags, in bit order.
var flagNames = []struct {
	bit  ferryv1.Flag
	name string
}{
	{ferryv1.Flag_FLAG_TRUNCATED, "truncated"},
	{ferryv1.Flag_FLAG_INVALID_UTF8, "invalid_utf8"},
	{ferryv1.Flag_FLAG_JOINED, "joined"},
	{ferryv1.Flag_FLAG_UNPARSED, "unparsed"},
	{ferryv1.Flag_FLAG_PARTIAL, "partial"},
	{ferryv1.Flag_FLAG_TIMESTAMP_OUT_OF_RANGE, "timestamp_out_of_range"},
	{ferryv1.Flag_FLAG_MULTILINE, "multiline"},
}

// AppendDocument appends the JSON document of e, with ECS field names, to
// dst. It is the single place that builds the document: the file and stdout
// sinks write it as one NDJSON line and the Elasticsearch sink indexes it.
// node is the agent's node name; ingested is when the aggregator took the
// event. Typed fields are written under their dotted names, which
// Elasticsearch expands into objects; a typed field that would overwrite or
// duplicate a field the document already has (see fixedFields) is left out.
func AppendDocument(dst []byte, node string, e *ferryv1.Event, ingested time.Time) []byte {
	return appendDocument(dst, node, e, nil, nil, ingested, nil)
}

// appendDocument is AppendDocument with the enrichment m (nil for none) of
// the event's pod: kubernetes labels, annotations, owners and node inside
// "kubernetes", the image inside "container", service and orchestrator at
// the top level, each in its own place so that no fixed field is written
// twice; and the event's own enrichment add (nil for none) after its typed
// fields, whose typed fields in add's objects are left out. With an
// encoder enc (nil for none), the parts that many events share are copied
// from what enc rendered for an earlier event (see DocumentEncoder), and
// ingested is enc's: the bytes are the same.
func appendDocument(dst []byte, node string, e *ferryv1.Event, m *Meta, add *Addition, ingested time.Time, enc *DocumentEncoder) []byte {
	if m != nil && !m.sealed {
		m = nil // not ready to be written: an enrichment bug, not the event's fault
	}
	dst = append(dst, `{"@timestamp":"`...)
	if enc != nil {
		dst = enc.appendTimestamp(dst, e.GetTimeUnixNano())
	} else {
		dst = appendTime(dst, time.Unix(0, e.GetTimeUnixNano()))
	}
	dst = append(dst, `","message":`...)
	dst = appendBytes(dst, e.GetMessage())
	dst = append(dst, `,"event":{"id":"`...)
	if enc != nil && enc.id != nil {
		dst = append(dst, enc.id...)
	} else {
		dst = appendBase64ID(dst, e.GetId())
	}
	var ds, ns, typ string
	if enc != nil {
		ds, ns, typ = enc.streamParts(e, m)
	} else {
		ds, ns, typ = Dataset(e), namespace(e, m), Type(e)
	}
	if enc != nil {
		dst = append(dst, enc.streamPart(ds, ns, typ)...)
	} else {
		dst = appendStreamPart(dst, ingested, ds, ns, typ)
	}
	if src := e.GetSource(); src != nil && src.GetPath() != "" {
		if enc != nil {
			dst = append(dst, enc.pathPart(src.GetPath())...)
		} else {
			dst = appendPathPart(dst, src.GetPath())
		}
		dst = strconv.AppendInt(dst, src.GetOffset(), 10)
		if n := src.GetLines(); n > 0 {
			// A multiline event: offset is its first line's, end_offset
			// just past its last.
			dst = append(dst, `,"end_offset":`...)
			dst = strconv.AppendInt(dst, src.GetEndOffset(), 10)
			dst = append(dst, `,"lines":`...)
			dst = strconv.AppendUint(dst, uint64(n), 10)
		}
		dst = append(dst, '}')
	}
	metaCut := m != nil && m.cut
	if in := e.GetSource().GetInput(); in != "" || e.GetFlags() != 0 || e.GetOriginalTime() != "" || metaCut {
		if enc != nil {
			dst = append(dst, enc.inputPart(in)...)
		} else {
			dst = appendInputPart(dst, in)
		}
		dst = appendFlags(dst, e.GetFlags(), metaCut)
		if ot := e.GetOriginalTime(); ot != "" {
			// The line's time as written, when @timestamp could not be it
			// (out of date_nanos's range): a keyword, kept verbatim.
			dst = append(dst, `,"original_timestamp":`...)
			dst = appendString(dst, ot)
		}
		dst = append(dst, '}')
	}
	switch e.GetStream() {
	case ferryv1.StreamName_STREAM_STDOUT:
		dst = append(dst, `,"stream":"stdout"`...)
	case ferryv1.StreamName_STREAM_STDERR:
		dst = append(dst, `,"stream":"stderr"`...)
	}
	metric := e.GetKind() == ferryv1.Kind_KIND_METRIC
	if enc != nil {
		dst = append(dst, enc.hostPart(node, e.GetKubernetes(), m, metric)...)
	} else {
		dst = appendHostPart(dst, node, e.GetKubernetes(), m, metric)
	}
	fs, raw := e.GetFields(), rawFields(e)
	if enc != nil && len(fs) == 0 && len(raw) > 0 {
		dst = enc.appendRawFields(dst, raw, m != nil, add)
	} else if len(fs) > 0 || len(raw) > 0 {
		var arr [48]field // on the stack: HAProxy sets 40 at most
		var sorted []field
		var fixed []bool // fixedField of each, when known
		var keys []byte  // `,"name":` of each, ending at ends[i], when known
		var ends []int
		cached := enc != nil
		switch {
		case cached && len(raw) == 0:
			sorted = enc.sortedFields(arr[:0], fs)
		case len(raw) == 0:
			sorted = sortFields(arr[:0], fs)
		default:
			sorted, cached = allFields(arr[:0], fs, raw), false
		}
		if cached {
			fixed = enc.fixedFields(m != nil)
			keys, ends = enc.keys()
		}
		for i, f := range sorted {
			if fixed != nil && fixed[i] || fixed == nil && fixedField(f.name, m != nil) || add.has(f.name) {
				continue // the document has it already (data_stream.* is read above)
			}
			if keys != nil {
				start := 0
				if i > 0 {
					start = ends[i-1]
				}
				dst = append(dst, keys[start:ends[i]]...)
			} else {
				dst = append(dst, ',')
				dst = appendString(dst, f.name)
				dst = append(dst, ':')
			}
			if f.encoded {
				dst = appendRawValue(dst, f.raw)
			} else {
				dst = appendValue(dst, f.value)
			}
		}
	}
	if add != nil {
		dst = append(dst, add.members...)
	}
	return append(dst, '}')
}

// The parts of a document that depend only on what many events share: a
// DocumentEncoder renders each once per run of events that share it.

// appendStreamPart appends the end of "event" from ingested on, and
// "data_stream": the same for every event of one dataset and namespace.
func appendStreamPart(dst []byte, ingested time.Time, ds, ns, typ string) []byte {
	dst = append(dst, `","ingested":"`...)
	dst = appendTime(dst, ingested)
	dst = append(dst, `","dataset":`...)
	dst = appendString(dst, ds)
	if typ == "metrics" {
		dst = appendMetricKind(dst, ds)
	} else {
		dst = append(dst, `,"kind":"event"}`...)
	}
	dst = append(dst, `,"data_stream":{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","dataset":`...)
	dst = appendString(dst, ds)
	dst = append(dst, `,"namespace":`...)
	dst = appendString(dst, ns)
	return append(dst, '}')
}

// appendPathPart appends "log" up to its offset's value: the same for
// every line of one file.
func appendPathPart(dst []byte, path string) []byte {
	dst = append(dst, `,"log":{"file":{"path":`...)
	dst = appendString(dst, path)
	return append(dst, `},"offset":`...)
}

// appendInputPart appends "ferry" up to its flags: the same for every event
// of one input.
func appendInputPart(dst []byte, in string) []byte {
	dst = append(dst, `,"ferry":{"input":`...)
	return appendString(dst, in)
}

// appendHostPart appends "host", "kubernetes", "container" and the
// top-level fields of the enrichment m (nil for none): the same for every
// event of one pod's container (k) of one kind (metric or not).
func appendHostPart(dst []byte, node string, k *ferryv1.Kubernetes, m *Meta, metric bool) []byte {
	dst = append(dst, `,"host":{"name":`...)
	dst = appendString(dst, node)
	dst = append(dst, '}')
	if k == nil || (k.GetPod() == "" && k.GetNamespace() == "") {
		dst = append(dst, `,"kubernetes":{"node":{"name":`...)
		dst = appendString(dst, node)
		dst = append(dst, '}')
		return appendKubeRef(dst, k)
	}
	dst = append(dst, `,"kubernetes":{"namespace":`...)
	dst = appendString(dst, k.GetNamespace())
	dst = append(dst, `,"pod":{"name":`...)
	dst = appendString(dst, k.GetPod())
	if k.GetPodUid() != "" {
		dst = append(dst, `,"uid":`...)
		dst = appendString(dst, k.GetPodUid())
	}
	if c := k.GetContainer(); c != "" || !metric {
		dst = append(dst, `},"container":{"name":`...)
		dst = appendString(dst, c)
	} // a container metric's name is not known from its cgroup
	dst = append(dst, `},"node":{"name":`...)
	if m != nil && m.NodeName != "" {
		dst = appendString(dst, m.NodeName)
	} else {
		dst = appendString(dst, node)
	}
	dst = append(dst, '}')
	if m != nil {
		dst = append(dst, m.k8s...)
	}
	dst = append(dst, '}')
	var img []byte
	if m != nil {
		img = m.image(k.GetContainer())
	}
	if k.GetContainerId() != "" || img != nil {
		dst = append(dst, `,"container":{`...)
		if k.GetContainerId() != "" {
			dst = append(dst, `"id":`...)
			dst = appendString(dst, k.GetContainerId())
			if img != nil {
				dst = append(dst, ',')
			}
		}
		if img != nil {
			dst = append(dst, `"image":{"name":`...)
			dst = append(dst, img...)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	if m != nil {
		dst = append(dst, m.top...)
	}
	return dst
}

// field is a typed field of an event, for writing them in name order.
type field struct {
	name  string
	value *ferryv1.Value
	// raw is the encoded Value of a field left encoded (encoded true).
	raw     []byte
	encoded bool
}

// sortFields appends the fields of fs to dst in name order.
func sortFields(dst []field, fs map[string]*ferryv1.Value) []field {
	for k, v := range fs {
		dst = append(dst, field{name: k, value: v})
	}
	slices.SortFunc(dst, func(a, b field) int { return strings.Compare(a.name, b.name) })
	return dst
}

// fixedFields are the fields AppendDocument writes itself, from the event
// and its enrichment: a typed field named like one of them, like an object
// holding one (event), or like a field inside one (message.x, labels are
// objects of the enrichment) would overwrite or duplicate it.
var fixedFields = []string{
	"@timestamp", "message", "event.id", "event.ingested", "event.dataset", "event.kind",
	"data_stream.type", "data_stream.dataset", "data_stream.namespace",
	"log.file.path", "log.offset", "log.end_offset", "log.lines", "ferry.input", "ferry.flags", "ferry.original_timestamp", "stream", "host.name",
	"kubernetes.namespace", "kubernetes.pod.name", "kubernetes.pod.uid", "kubernetes.container.name", "kubernetes.node.name",
	"container.id", "event.module", "metricset.name",
}

// metaFields are the fields an enrichment (Meta) writes: fixed too in the
// document of an enriched event.
var metaFields = []string{
	"kubernetes.labels", "kubernetes.namespace_labels", "kubernetes.annotations",
	"kubernetes.deployment.name", "kubernetes.statefulset.name", "kubernetes.daemonset.name",
	"kubernetes.cronjob.name", "kubernetes.job.name", "kubernetes.replicaset.name",
	"container.image.name", "service.name", "service.environment",
	"orchestrator.type", "orchestrator.cluster.name",
}

// fixedField reports whether a typed field k clashes with a field of the
// document (of an enriched one with enriched): equal to one, an object
// above one, or a field below one.
func fixedField(k string, enriched bool) bool {
	top, _, _ := strings.Cut(k, ".")
	switch top {
	case "@timestamp", "message", "event", "data_stream", "log", "ferry", "stream", "host", "kubernetes", "container", "metricset":
		return clashes(k, fixedFields) || (enriched && clashes(k, metaFields))
	case "service", "orchestrator":
		return enriched && clashes(k, metaFields)
	}
	return false // no fixed field below another top-level name: most typed fields
}

func clashes(k string, fields []string) bool {
	for _, f := range fields {
		if k == f || (len(f) > len(k) && f[len(k)] == '.' && f[:len(k)] == k) ||
			(len(k) > len(f) && k[len(f)] == '.' && k[:len(f)] == f) {
			return true
		}
	}
	return false
}

// metaTruncated is the ferry.flags name of a document whose enrichment was
// cut (see Meta).
const metaTruncated = "metadata_truncated"

func appendFlags(dst []byte, flags uint32, metaCut bool) []byte {
	if flags == 0 && !metaCut {
		return dst
	}
	dst = append(dst, `,"flags":[`...)
	first := true
	for _, f := range flagNames {
		if flags&uint32(f.bit) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, f.name...)
		dst = append(dst, '"')
	}
	if metaCut {
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, `"`+metaTruncated+`"`...)
	}
	return append(dst, ']')
}

func appendValue(dst []byte, v *ferryv1.Value) []byte {
	switch k := v.GetKind().(type) {
	case *ferryv1.Value_Str:
		return appendString(dst, k.Str)
	case *ferryv1.Value_Int:
		return strconv.AppendInt(dst, k.Int, 10)
	case *ferryv1.Value_Double:
		if math.IsNaN(k.Double) || math.IsInf(k.Double, 0) {
			return append(dst, "null"...)
		}
		return strconv.AppendFloat(dst, k.Double, 'g', -1, 64)
	case *ferryv1.Value_Bool:
		return strconv.AppendBool(dst, k.Bool)
	default:
		return append(dst, "null"...)
	}
}

// base64URL is the alphabet of base64.RawURLEncoding.
const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// appendBase64ID appends IDString(id): unpadded URL-safe base64. An id of
// IDLen bytes, every event's, is encoded here directly: five groups of
// three bytes and one byte left.
func appendBase64ID(dst []byte, id []byte) []byte {
	if len(id) != IDLen {
		return base64.RawURLEncoding.AppendEncode(dst, id)
	}
	var b [(IDLen*8 + 5) / 6]byte
	for g := range 5 {
		v := uint(id[3*g])<<16 | uint(id[3*g+1])<<8 | uint(id[3*g+2])
		b[4*g] = base64URL[v>>18&63]
		b[4*g+1] = base64URL[v>>12&63]
		b[4*g+2] = base64URL[v>>6&63]
		b[4*g+3] = base64URL[v&63]
	}
	b[20] = base64URL[id[15]>>2]
	b[21] = base64URL[id[15]<<4&63]
	return append(dst, b[:]...)
}
