package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// duplicateKey returns the first key that appears twice in one object of
// doc (Elasticsearch refuses such a document), or an error for invalid JSON.
func duplicateKey(doc []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	type frame struct {
		keys  map[string]bool
		isObj bool
		key   bool // next token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if top != nil && top.isObj {
					top.key = true
				}
				stack = append(stack, &frame{keys: map[string]bool{}, isObj: d == '{', key: d == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top != nil && top.isObj {
			if top.key {
				k := tok.(string)
				if top.keys[k] {
					return k, nil
				}
				top.keys[k] = true
				top.key = false
			} else {
				top.key = true
			}
		}
	}
}

// lookup returns the value at a path of object keys ("a/b/c") in doc.
func lookup(t *testing.T, doc []byte, path string) any {
	t.Helper()
	var cur any
	if err := json.Unmarshal(doc, &cur); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, doc)
	}
	for _, k := range strings.Split(path, "/") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[k]
	}
	return cur
}

func enrichedBatch() *Batch {
	ev := &ferryv1.Event{
		Id:         ID(nil, "node-1", "f", 7),
		Message:    []byte("hello"),
		Stream:     ferryv1.StreamName_STREAM_STDOUT,
		Source:     &ferryv1.Source{Path: "/var/log/containers/x.log", Offset: 1, Input: "container-0"},
		Kubernetes: &ferryv1.Kubernetes{Namespace: "shop-prod", Pod: "web-7d9f8-x2x4z", PodUid: "u-1", Container: "app", ContainerId: "abc"},
	}
	m := &Meta{
		ServiceName: "web", Environment: "Prod", Cluster: "eu-1", NodeName: "node-a",
		OwnerKind: "Deployment", OwnerName: "web", ReplicaSet: "web-7d9f8",
		Labels:          map[string]string{"app.kubernetes.io/name": "web", "team": "shop"},
		NamespaceLabels: map[string]string{"environment": "prod"},
		Annotations:     map[string]string{"ferry.io/owner": "ops"},
		Images:          map[string]string{"app": "registry/web:1.2", "sidecar": "envoy:1"},
	}
	m.Seal()
	return &Batch{Node: "node-1", Seq: 1, Events: []*ferryv1.Event{ev}, Meta: []*Meta{m}}
}

func TestEnrichedDocument(t *testing.T) {
	b := enrichedBatch()
	doc := b.AppendDocument(nil, 0, time.Unix(0, 0))
	if k, err := duplicateKey(doc); err != nil || k != "" {
		t.Fatalf("duplicate key %q (err %v):\n%s", k, err, doc)
	}
	want := map[string]any{
		"kubernetes/labels/app_kubernetes_io/name":     "web",
		"kubernetes/labels/team":                       "shop",
		"kubernetes/namespace_labels/environment":      "prod",
		"kubernetes/annotations/ferry_io/owner":        "ops",
		"kubernetes/deployment/name":                   "web",
		"kubernetes/replicaset/name":                   "web-7d9f8",
		"kubernetes/node/name":                         "node-a",
		"kubernetes/namespace":                         "shop-prod",
		"kubernetes/pod/name":                          "web-7d9f8-x2x4z",
		"container/id":                                 "abc",
		"container/image/name":                         "registry/web:1.2",
		"service/name":                                 "web",
		"service/environment":                          "Prod",
		"orchestrator/type":                            "kubernetes",
		"orchestrator/cluster/name":                    "eu-1",
		"data_stream/namespace":                        "prod",
		"data_stream/dataset":                          "kubernetes.container",
		"host/name":                                    "node-1",
		"message":                                      "hello",
		"kubernetes/labels/app.kubernetes.io/name":     nil, // dots replaced
		"kubernetes/annotations/ferry.io/owner":        nil,
		"kubernetes/statefulset/name":                  nil,
		"ferry/flags":                                  nil,
		"kubernetes/labels/app_kubernetes_io_name/x":   nil,
		"kubernetes/namespace_labels/environment/name": nil,
	}
	// Paths with '/' inside a key: look the label up directly.
	labels, _ := lookup(t, doc, "kubernetes/labels").(map[string]any)
	if labels["app_kubernetes_io/name"] != "web" {
		t.Errorf("labels = %v", labels)
	}
	ann, _ := lookup(t, doc, "kubernetes/annotations").(map[string]any)
	if ann["ferry_io/owner"] != "ops" {
		t.Errorf("annotations = %v", ann)
	}
	for p, w := range want {
		if strings.Contains(p, "io/") {
			continue
		}
		if got := lookup(t, doc, p); got != w {
			t.Errorf("%s = %#v, want %#v", p, got, w)
		}
	}
	if got := b.DataStream(0); got != "logs-kubernetes.container-prod" {
		t.Errorf("DataStream = %q", got)
	}
	// Without enrichment the document and stream are what they were.
	plain := &Batch{Node: "node-1", Events: b.Events}
	if got, want := plain.AppendDocument(nil, 0, time.Unix(0, 0)), AppendDocument(nil, "node-1", b.Events[0], time.Unix(0, 0)); !bytes.Equal(got, want) {
		t.Errorf("unenriched document differs:\n%s\n%s", got, want)
	}
	if got := plain.DataStream(0); got != "logs-kubernetes.container-default" {
		t.Errorf("unenriched DataStream = %q", got)
	}
}

// TestEnrichedDocumentKeepsFixedFields: typed fields named like any field
// the document writes (or an object above, or a field below one) are left
// out, so no fixed field is overwritten or written twice; labels named like
// fixed fields stay inside kubernetes.labels.
func TestEnrichedDocumentKeepsFixedFields(t *testing.T) {
	b := enrichedBatch()
	ev := b.Events[0]
	ev.Fields = map[string]*ferryv1.Value{}
	for _, f := range append(append([]string{}, fixedFields...), metaFields...) {
		ev.Fields[f] = Str("EVIL")
		ev.Fields[f+".sub"] = Str("EVIL")
		if i := strings.LastIndexByte(f, '.'); i > 0 {
			ev.Fields[f[:i]] = Str("EVIL")
		}
	}
	ev.Fields["http.response.status_code"] = Int(200) // not fixed: written
	m := b.Meta[0]
	m2 := &Meta{Labels: map[string]string{"message": "EVIL", "@timestamp": "EVIL", "event.id": "EVIL"}, Environment: m.Environment}
	m2.Seal()
	b.Meta[0] = m2
	doc := b.AppendDocument(nil, 0, time.Unix(0, 0))
	if k, err := duplicateKey(doc); err != nil || k != "" {
		t.Fatalf("duplicate key %q (err %v):\n%s", k, err, doc)
	}
	if bytes.Contains(doc, []byte(`:"EVIL"`)) && !bytes.Contains(doc, []byte(`"labels":{"@timestamp":"EVIL","event_id":"EVIL","message":"EVIL"}`)) {
		t.Errorf("a typed field named like a fixed one was written:\n%s", doc)
	}
	if strings.Count(string(doc), "EVIL") != 3 {
		t.Errorf("want EVIL only in the three labels:\n%s", doc)
	}
	if lookup(t, doc, "message") != "hello" || lookup(t, doc, "event/id") != IDString(ev.Id) || lookup(t, doc, "data_stream/namespace") != "prod" {
		t.Errorf("fixed fields changed:\n%s", doc)
	}
	if !bytes.Contains(doc, []byte(`"http.response.status_code":200`)) {
		t.Errorf("a free typed field was left out:\n%s", doc)
	}
}

func TestMetaCut(t *testing.T) {
	cases := []struct {
		name   string
		labels map[string]string
		want   map[string]string // written labels
		cut    bool
	}{
		{"plain", map[string]string{"a": "1"}, map[string]string{"a": "1"}, false},
		{"invalid utf8", map[string]string{"a": "x\xffy"}, map[string]string{"a": "x\ufffdy"}, true},
		{"huge", map[string]string{"a": strings.Repeat("é", MaxMetaValueBytes)}, map[string]string{"a": strings.Repeat("é", MaxMetaValueBytes/2)}, true},
		{"dots collide", map[string]string{"a.b": "1", "a_b": "2"}, map[string]string{"a_b": "1"}, true},
		{"huge key", map[string]string{strings.Repeat("k", 400): "v"}, map[string]string{strings.Repeat("k", MaxMetaKeyBytes): "v"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := enrichedBatch()
			m := &Meta{Labels: c.labels}
			m.Seal()
			b.Meta[0] = m
			doc := b.AppendDocument(nil, 0, time.Unix(0, 0))
			got, _ := lookup(t, doc, "kubernetes/labels").(map[string]any)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("labels = %v, want %v", got, c.want)
			}
			flags, _ := lookup(t, doc, "ferry/flags").([]any)
			if flagged := len(flags) == 1 && flags[0] == metaTruncated; flagged != c.cut {
				t.Errorf("ferry.flags = %v, want flagged %v", flags, c.cut)
			}
		})
	}
	m := &Meta{Labels: map[string]string{}}
	for i := range MaxMetaEntries + 5 {
		m.Labels[fmt.Sprintf("l%04d", i)] = "v"
	}
	m.Seal()
	if !m.Truncated() || bytes.Count(m.k8s, []byte(`"v"`)) != MaxMetaEntries {
		t.Errorf("entries beyond %d: truncated %v, written %d", MaxMetaEntries, m.Truncated(), bytes.Count(m.k8s, []byte(`"v"`)))
	}
}

// validDataStreamPart checks Elasticsearch's rules for a data stream
// namespace or dataset.
func validDataStreamPart(s string) error {
	switch {
	case s == "" || len(s) > 100:
		return fmt.Errorf("length %d", len(s))
	case !utf8.ValidString(s):
		return errors.New("invalid UTF-8")
	case strings.ToLower(s) != s:
		return errors.New("not lower case")
	case strings.ContainsAny(s, "\\/*?\"<>| ,#:-"):
		return errors.New("forbidden character")
	case strings.IndexAny(s[:1], "_.+") == 0:
		return errors.New("forbidden first character")
	}
	return nil
}

func FuzzMeta(f *testing.F) {
	f.Add("app.kubernetes.io/name", "web", "Prod-EU", "ns")
	f.Add("a\xff.b", "\xff\xfe", "_.+-", "x.y")
	f.Add("", strings.Repeat("v", 2000), "ÉTÉ:#", "")
	f.Fuzz(func(t *testing.T, key, val, env, node string) {
		if ns := SanitizeDataStreamPart(env, "default"); validDataStreamPart(ns) != nil {
			t.Fatalf("SanitizeDataStreamPart(%q) = %q: %v", env, ns, validDataStreamPart(ns))
		}
		m := &Meta{Environment: env, ServiceName: val, NodeName: node, OwnerKind: "Deployment", OwnerName: val,
			Labels:      map[string]string{key: val, key + ".x": val, strings.ReplaceAll(key, ".", "_"): "z"},
			Annotations: map[string]string{key: val}, Images: map[string]string{"app": val}}
		m.Seal()
		b := enrichedBatch()
		b.Meta[0] = m
		doc := b.AppendDocument(nil, 0, time.Unix(0, 0))
		if k, err := duplicateKey(doc); err != nil || k != "" {
			t.Fatalf("duplicate key %q (err %v):\n%s", k, err, doc)
		}
		if !utf8.Valid(doc) {
			t.Fatalf("invalid UTF-8:\n%q", doc)
		}
		for _, p := range []string{"kubernetes/labels", "kubernetes/annotations"} {
			obj, _ := lookup(t, doc, p).(map[string]any)
			for k, v := range obj {
				if len(k) > MaxMetaKeyBytes+2 || len(v.(string)) > MaxMetaValueBytes+3 || strings.Contains(k, ".") {
					t.Fatalf("%s: key %q (%d bytes), value of %d bytes", p, k, len(k), len(v.(string)))
				}
			}
		}
		if err := validDataStreamPart(b.DataStream(0)[len("logs-kubernetes.container-"):]); err != nil {
			t.Fatalf("data stream %q: %v", b.DataStream(0), err)
		}
	})
}

// leaves appends the dotted paths of the leaves of a decoded JSON value.
func leaves(out []string, prefix string, v any) []string {
	obj, ok := v.(map[string]any)
	if !ok {
		return append(out, prefix)
	}
	for k, c := range obj {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		out = leaves(out, p, c)
	}
	return out
}

// TestFixedFieldsComplete: every field a document can have without typed
// fields is in fixedFields or metaFields, so that a typed field can never
// overwrite or duplicate it (a new field of the document must be added
// there).
func TestFixedFieldsComplete(t *testing.T) {
	b := enrichedBatch()
	ev := b.Events[0]
	ev.Flags = uint32(ferryv1.Flag_FLAG_TRUNCATED)
	ev.OriginalTime = "99999-01-01T00:00:00Z"
	ev.Source.Lines, ev.Source.EndOffset = 3, 300
	b.Meta[0].Job, b.Meta[0].OwnerKind = "backup-1", "CronJob"
	b.Meta[0].Labels = map[string]string{"huge": strings.Repeat("x", MaxMetaValueBytes+1)}
	b.Meta[0].Seal()
	metric := &ferryv1.Event{Id: ID(nil, "n", "m", 1), Kind: ferryv1.Kind_KIND_METRIC,
		Kubernetes: &ferryv1.Kubernetes{PodUid: "u", ContainerId: "c"}}
	file := &ferryv1.Event{Id: ID(nil, "n", "f", 1), Source: &ferryv1.Source{Path: "/var/log/x", Input: "file-0"}}
	docs := [][]byte{b.AppendDocument(nil, 0, time.Unix(0, 0)), AppendDocument(nil, "n", metric, time.Unix(0, 0)), AppendDocument(nil, "n", file, time.Unix(0, 0))}
	for _, doc := range docs {
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			t.Fatalf("%v: %s", err, doc)
		}
		for _, p := range leaves(nil, "", v) {
			if !clashes(p, fixedFields) && !clashes(p, metaFields) {
				t.Errorf("field %s of the document is in neither fixedFields nor metaFields:\n%s", p, doc)
			}
		}
	}
}
