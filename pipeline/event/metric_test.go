package event

import (
	"encoding/json"
	"testing"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// TestMetricDocument: a metric event's document has Metricbeat's
// event.module and metricset.name, its data stream, host.name and
// kubernetes.node.name, and for a container known by its pod uid only,
// kubernetes.pod.uid and container.id.
func TestMetricDocument(t *testing.T) {
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	for _, tc := range []struct {
		name   string
		stream string
		ev     *ferryv1.Event
		want   map[string]any
		none   []string
	}{{
		name: "node", stream: "metrics-system.cpu-prod",
		ev: &ferryv1.Event{Id: MetricID(nil, "n1", "system.cpu", "", ts), TimeUnixNano: ts, Kind: ferryv1.Kind_KIND_METRIC,
			Fields: map[string]*ferryv1.Value{"data_stream.dataset": Str("system.cpu"), "data_stream.namespace": Str("prod"), "system.cpu.total.norm.pct": Float(0.25)}},
		want: map[string]any{"event.module": "system", "metricset.name": "cpu", "event.kind": "metric", "event.dataset": "system.cpu",
			"data_stream.type": "metrics", "data_stream.dataset": "system.cpu", "data_stream.namespace": "prod",
			"host.name": "n1", "kubernetes.node.name": "n1", "system.cpu.total.norm.pct": 0.25},
		none: []string{"kubernetes.pod", "container"},
	}, {
		name: "container", stream: "metrics-kubernetes.container-default",
		ev: &ferryv1.Event{Id: MetricID(nil, "n1", "kubernetes.container", "u/c", ts), TimeUnixNano: ts, Kind: ferryv1.Kind_KIND_METRIC,
			Kubernetes: &ferryv1.Kubernetes{PodUid: "u-1", ContainerId: "c0ffee"},
			Fields:     map[string]*ferryv1.Value{"data_stream.dataset": Str("kubernetes.container"), "kubernetes.container.memory.workingset.bytes": Int(1 << 20)}},
		want: map[string]any{"event.module": "kubernetes", "metricset.name": "container", "data_stream.namespace": "default",
			"kubernetes.pod.uid": "u-1", "container.id": "c0ffee", "kubernetes.node.name": "n1",
			"kubernetes.container.memory.workingset.bytes": float64(1 << 20)},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			doc := AppendDocument(nil, "n1", tc.ev, time.Now())
			var m map[string]any
			if err := json.Unmarshal(doc, &m); err != nil {
				t.Fatalf("%v: %s", err, doc)
			}
			for k, v := range tc.want {
				if got, ok := docField(m, k); !ok || got != v {
					t.Errorf("%s = %v (%v), want %v in %s", k, got, ok, v, doc)
				}
			}
			for _, k := range tc.none {
				if _, ok := docField(m, k); ok {
					t.Errorf("%s present in %s", k, doc)
				}
			}
			if got := DataStream(tc.ev); got != tc.stream {
				t.Errorf("data stream %s, want %s", got, tc.stream)
			}
		})
	}
}

// docField finds a dotted key in a decoded document, as an object path or a
// dotted top-level name.
func docField(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for i := range key {
		if key[i] != '.' {
			continue
		}
		if sub, ok := m[key[:i]].(map[string]any); ok {
			if v, ok := docField(sub, key[i+1:]); ok {
				return v, true
			}
		}
	}
	return nil, false
}

func TestMetricModule(t *testing.T) {
	for _, c := range [][3]string{{"system.cpu", "system", "cpu"}, {"kubernetes.container", "kubernetes", "container"}, {"node", "node", "node"}} {
		if m, s := MetricModule(c[0]); m != c[1] || s != c[2] {
			t.Errorf("MetricModule(%q) = %q, %q", c[0], m, s)
		}
	}
}

// TestMetricEnriched: a container metric named by the agent's metadata
// (namespace, pod, uid) and enriched goes to its pod's environment and
// carries the pod's labels and service, as the pod's lines do.
func TestMetricEnriched(t *testing.T) {
	ev := &ferryv1.Event{Id: MetricID(nil, "n1", "kubernetes.container", "u/c", 1), TimeUnixNano: 1, Kind: ferryv1.Kind_KIND_METRIC,
		Kubernetes: &ferryv1.Kubernetes{Namespace: "shop-prod", Pod: "web-1", PodUid: "u", ContainerId: "c"},
		Fields:     map[string]*ferryv1.Value{"data_stream.dataset": Str("kubernetes.container"), "kubernetes.container.memory.workingset.bytes": Int(5)}}
	m := &Meta{Environment: "prod", ServiceName: "web", Labels: map[string]string{"app": "web"}}
	m.Seal()
	b := &Batch{Node: "n1", Events: []*ferryv1.Event{ev}, Meta: []*Meta{m}}
	if got := b.DataStream(0); got != "metrics-kubernetes.container-prod" {
		t.Errorf("data stream %s, want metrics-kubernetes.container-prod", got)
	}
	var doc map[string]any
	raw := b.AppendDocument(nil, 0, time.Now())
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	for k, v := range map[string]any{
		"service.name": "web", "kubernetes.labels.app": "web", "kubernetes.pod.uid": "u", "kubernetes.namespace": "shop-prod",
		"container.id": "c", "metricset.name": "container", "kubernetes.container.memory.workingset.bytes": float64(5),
	} {
		if got, ok := docField(doc, k); !ok || got != v {
			t.Errorf("%s = %v, want %v in %s", k, got, v, raw)
		}
	}
}

// TestMetricNoEmptyContainerName: a metric named by its pod has no
// kubernetes.container.name (unknown, not empty); a line keeps its own.
func TestMetricNoEmptyContainerName(t *testing.T) {
	k := &ferryv1.Kubernetes{Namespace: "shop", Pod: "web-1", PodUid: "u"}
	metric := &ferryv1.Event{Id: MetricID(nil, "n", "kubernetes.pod", "u/", 1), Kind: ferryv1.Kind_KIND_METRIC, Kubernetes: k,
		Fields: map[string]*ferryv1.Value{"data_stream.dataset": Str("kubernetes.pod")}}
	line := &ferryv1.Event{Id: ID(nil, "n", "f", 0), Kind: ferryv1.Kind_KIND_LOG, Kubernetes: &ferryv1.Kubernetes{Namespace: "shop", Pod: "web-1", Container: "app"}}
	for _, c := range []struct {
		ev   *ferryv1.Event
		want any
	}{{metric, nil}, {line, "app"}} {
		var doc map[string]any
		raw := AppendDocument(nil, "n", c.ev, time.Now())
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%v: %s", err, raw)
		}
		if got, _ := docField(doc, "kubernetes.container.name"); got != c.want {
			t.Errorf("kubernetes.container.name = %v, want %v in %s", got, c.want, raw)
		}
		if got, _ := docField(doc, "kubernetes.pod.name"); got != "web-1" {
			t.Errorf("kubernetes.pod.name = %v in %s", got, raw)
		}
	}
}
