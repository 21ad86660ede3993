package event

import (
	"slices"
	"unicode/utf8"
)

// Bounds of the metadata written into a document. A value or key beyond them
// is cut (at a character boundary) and the document flagged
// "metadata_truncated" in ferry.flags: a huge annotation must never make a
// document fail to index (Lucene refuses terms above 32766 bytes) nor bloat
// every document of a pod.
const (
	MaxMetaValueBytes = 1024 // a label, annotation or image value; keyword's ignore_above
	MaxMetaKeyBytes   = 320  // a label or annotation key (Kubernetes allows 253+1+63)
	MaxMetaEntries    = 256  // labels (or annotations) of one pod written
)

// Meta is the enrichment of the events of one pod (or, when the agent sent
// no metadata for it, of one namespace and pod name): what pipeline/enrich
// derives from the pod's Kubernetes metadata and the aggregator's rules. It
// is built once per pod per batch and shared by the pod's events. The
// enrichment stages fill the exported fields; Seal then encodes them once,
// so that writing a document appends prepared bytes and allocates nothing
// per event.
//
// Every field Meta writes has its own place in the document (see
// AppendDocument): it can neither overwrite nor duplicate a fixed field
// such as message, @timestamp, event.id or data_stream.*.
type Meta struct {
	ServiceName string // service.name
	Environment string // service.environment; its sanitized form is the data stream namespace
	Cluster     string // orchestrator.cluster.name
	NodeName    string // kubernetes.node.name from the API (else the agent's node)
	// OwnerKind and OwnerName: the pod's controller (Deployment web, CronJob
	// backup, ...), written as kubernetes.<kind>.name.
	OwnerKind, OwnerName string
	// ReplicaSet and Job: the intermediate controllers, when known.
	ReplicaSet, Job string
	// Labels, NamespaceLabels and Annotations are read, never modified.
	Labels, NamespaceLabels, Annotations map[string]string
	// Images is the image of each container, by container name.
	Images map[string]string

	sealed    bool
	namespace string // data stream namespace
	stream    string // logs-kubernetes.container-<namespace>
	k8s       []byte // members appended inside "kubernetes"
	top       []byte // top-level members: service, orchestrator
	images    []image
	cut       bool // something was cut: flag metadata_truncated
}

type image struct {
	container string
	json      []byte // the JSON string of the image name
}

// ownerKeys maps a controller kind to its ECS object under kubernetes.
var ownerKeys = map[string]string{
	"Deployment":  "deployment",
	"StatefulSet": "statefulset",
	"DaemonSet":   "daemonset",
	"CronJob":     "cronjob",
	"Job":         "job",
	"ReplicaSet":  "replicaset",
}

// Namespace returns the data stream namespace of m's events: the
// environment, sanitized; "default" without one.
func (m *Meta) Namespace() string {
	if m.sealed {
		return m.namespace
	}
	return SanitizeDataStreamPart(m.Environment, "default")
}

// Truncated reports whether Seal cut a key or value, or dropped entries.
func (m *Meta) Truncated() bool { return m.cut }

// Seal encodes m for the documents of its events. It is called once, after
// the last stage; m must not change afterwards.
func (m *Meta) Seal() {
	m.namespace = SanitizeDataStreamPart(m.Environment, "default")
	m.stream = "logs-kubernetes.container-" + m.namespace
	k := m.k8s[:0]
	k = m.appendMap(k, "labels", m.Labels)
	k = m.appendMap(k, "namespace_labels", m.NamespaceLabels)
	k = m.appendMap(k, "annotations", m.Annotations)
	owners := [...]struct{ kind, name string }{
		{m.OwnerKind, m.OwnerName}, {"ReplicaSet", m.ReplicaSet}, {"Job", m.Job},
	}
	var written [len(owners)]string
	for i, o := range owners {
		key := ownerKeys[o.kind]
		if key == "" || o.name == "" || key == written[0] || key == written[1] {
			continue
		}
		written[i] = key
		k = append(k, ',', '"')
		k = append(k, key...)
		k = append(k, `":{"name":`...)
		k = m.appendValue(k, o.name)
		k = append(k, '}')
	}
	m.k8s = k
	t := m.top[:0]
	if m.ServiceName != "" || m.Environment != "" {
		t = append(t, `,"service":{`...)
		sep := ""
		if m.ServiceName != "" {
			t = append(t, `"name":`...)
			t = m.appendValue(t, m.ServiceName)
			sep = ","
		}
		if m.Environment != "" {
			t = append(t, sep...)
			t = append(t, `"environment":`...)
			t = m.appendValue(t, m.Environment)
		}
		t = append(t, '}')
	}
	t = append(t, `,"orchestrator":{"type":"kubernetes"`...)
	if m.Cluster != "" {
		t = append(t, `,"cluster":{"name":`...)
		t = m.appendValue(t, m.Cluster)
		t = append(t, '}')
	}
	m.top = append(t, '}')
	m.images = m.images[:0]
	for c, img := range m.Images {
		if img != "" {
			m.images = append(m.images, image{container: c, json: m.appendValue(nil, img)})
		}
	}
	m.sealed = true
}

// image returns the JSON string of container c's image, or nil.
func (m *Meta) image(c string) []byte {
	for i := range m.images {
		if m.images[i].container == c {
			return m.images[i].json
		}
	}
	return nil
}

// appendMap appends `,"name":{...}` with the entries of kv sorted by key,
// dots in keys replaced by '_' (as Filebeat does, so that a label app and a
// label app.kubernetes.io/name do not clash as object and value). Of keys
// that become the same (a.b and a_b, or once cut) the first in key order is
// kept, the others dropped and m flagged, as are entries beyond
// MaxMetaEntries.
func (m *Meta) appendMap(dst []byte, name string, kv map[string]string) []byte {
	if len(kv) == 0 {
		return dst
	}
	var arr [32]string
	keys := arr[:0]
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, `":{`...)
	var spans [32][2]int // written keys, as offsets into dst
	written := spans[:0]
	var many map[string]bool // written keys, when there are many
	for _, k := range keys {
		if len(written) == MaxMetaEntries {
			m.cut = true
			break
		}
		mark := len(dst)
		if len(written) > 0 {
			dst = append(dst, ',')
		}
		at := len(dst)
		dst = m.appendKey(dst, k)
		key := dst[at:]
		dup := false
		if many != nil {
			dup = many[string(key)]
		} else {
			for _, sp := range written {
				if string(dst[sp[0]:sp[1]]) == string(key) {
					dup = true
					break
				}
			}
		}
		if dup {
			dst = dst[:mark]
			m.cut = true
			continue
		}
		written = append(written, [2]int{at, len(dst)})
		if many == nil && len(written) > 32 {
			many = make(map[string]bool, len(kv))
			for _, sp := range written {
				many[string(dst[sp[0]:sp[1]])] = true
			}
		} else if many != nil {
			many[string(key)] = true
		}
		dst = append(dst, ':')
		dst = m.appendValue(dst, kv[k])
	}
	return append(dst, '}')
}

// appendKey appends the JSON string of a label or annotation key: dots
// become '_', cut to MaxMetaKeyBytes.
func (m *Meta) appendKey(dst []byte, k string) []byte {
	k = m.cutString(k, MaxMetaKeyBytes)
	at := len(dst)
	dst = appendString(dst, k)
	for i := at; i < len(dst); i++ {
		if dst[i] == '.' {
			dst[i] = '_'
		}
	}
	return dst
}

// appendValue appends the JSON string of v cut to MaxMetaValueBytes;
// invalid UTF-8 becomes U+FFFD. Either flags m.
func (m *Meta) appendValue(dst []byte, v string) []byte {
	return appendString(dst, m.cutString(v, MaxMetaValueBytes))
}

// cutString returns s cut to at most max bytes at a character boundary,
// flagging m when it cuts or when s is not valid UTF-8.
func (m *Meta) cutString(s string, max int) string {
	if !utf8.ValidString(s) {
		m.cut = true
	}
	if len(s) <= max {
		return s
	}
	m.cut = true
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
