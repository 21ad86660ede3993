package elasticsearch

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/internal/testlog"
	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// metricEvent builds a metric event of dataset for series, at ts.
func metricEvent(node, ns, dataset, series string, ts int64, kube *ferryv1.Kubernetes, fields map[string]*ferryv1.Value) *ferryv1.Event {
	fields["data_stream.dataset"] = event.Str(dataset)
	if ns != "" {
		fields["data_stream.namespace"] = event.Str(ns)
	}
	return &ferryv1.Event{Id: event.MetricID(nil, node, dataset, series, ts), TimeUnixNano: ts, Kind: ferryv1.Kind_KIND_METRIC, Kubernetes: kube, Fields: fields}
}

// TestMetricsTimeSeries: metric data streams are time-series ones on a
// cluster that has them, every field typed by Ferry's template; a sample
// written twice (a re-send) is stored once.
func TestMetricsTimeSeries(t *testing.T) {
	s := newSink(t, testConfig())
	ns := uniqueNS(t)
	node := ns // a node name no other test uses
	ts := time.Now().Add(-time.Minute).UnixNano()
	b := &event.Batch{Node: node, Events: []*ferryv1.Event{
		metricEvent(node, ns, "system.cpu", "", ts, nil, map[string]*ferryv1.Value{"system.cpu.total.norm.pct": event.Float(0.25), "system.cpu.cores": event.Int(2)}),
		metricEvent(node, ns, "system.network", "eth0", ts, nil, map[string]*ferryv1.Value{"system.network.name": event.Str("eth0"), "system.network.in.bytes": event.Int(1 << 40), "system.network.in.bytes_per_sec": event.Float(12.5)}),
		metricEvent(node, ns, "system.network", "eth1", ts, nil, map[string]*ferryv1.Value{"system.network.name": event.Str("eth1"), "system.network.in.bytes": event.Int(7), "system.network.in.bytes_per_sec": event.Float(1)}),
		metricEvent(node, "", "kubernetes.container", "uid/c1", ts, &ferryv1.Kubernetes{PodUid: "uid-" + ns, ContainerId: "c1" + ns},
			map[string]*ferryv1.Value{"kubernetes.container.memory.workingset.bytes": event.Int(1 << 20), "kubernetes.container.cpu.usage.limit.pct": event.Float(0.5)}),
	}}
	checkResult(t, write(t, s, b), 4, 0)
	if !s.TimeSeries() {
		t.Fatal("Setup did not make metric data streams time-series ones on a cluster that has them")
	}
	checkResult(t, write(t, s, b), 4, 0) // a re-send: 409s, delivered
	for stream, want := range map[string]int{"metrics-system.cpu-" + ns: 1, "metrics-system.network-" + ns: 2} {
		if got := count(t, stream); got != want {
			t.Errorf("%s: %d documents, want %d", stream, got, want)
		}
	}
	esDo(t, http.MethodPost, "/metrics-kubernetes.container-default/_refresh", "")
	q := `{"query":{"term":{"host.name":"` + node + `"}}}`
	if got := esDo(t, http.MethodPost, "/metrics-kubernetes.container-default/_count", q)["count"].(float64); got != 1 {
		t.Errorf("container metrics of this node: %v documents, want 1", got)
	}

	set := esDo(t, http.MethodGet, "/metrics-system.network-"+ns+"/_settings", "")
	for _, idx := range set {
		if mode := dig(idx, "settings", "index", "mode"); mode != "time_series" {
			t.Errorf("index.mode %v, want time_series", mode)
		}
	}
	mp := esDo(t, http.MethodGet, "/metrics-system.network-"+ns+"/_mapping", "")
	for _, idx := range mp {
		props := dig(idx, "mappings", "properties")
		for path, want := range map[string]string{
			"@timestamp":                                   "date_nanos",
			"system.network.in.bytes":                      "long",
			"system.network.in.bytes_per_sec":              "float",
			"system.network.name":                          "keyword",
			"system.cpu.total.norm.pct":                    "float",
			"kubernetes.container.memory.workingset.bytes": "long",
			"host.name":                                    "keyword",
		} {
			keys := []string{}
			for _, p := range strings.Split(path, ".") {
				keys = append(keys, p, "properties")
			}
			keys = keys[:len(keys)-1]
			if got := dig(props, append(keys, "type")...); got != want {
				t.Errorf("%s mapped as %v, want %s", path, got, want)
			}
		}
		for _, dim := range []string{"host.name", "system.network.name"} {
			keys := []string{}
			for _, p := range strings.Split(dim, ".") {
				keys = append(keys, p, "properties")
			}
			if dig(props, append(keys[:len(keys)-1], "time_series_dimension")...) != true {
				t.Errorf("%s is not a dimension", dim)
			}
		}
	}
}

// TestMetricsTemplateConflict: the check before the first write covers
// metric data streams too: a user's template outranking Ferry's for
// metrics-system.load-<ns> is refused with an error naming it.
func TestMetricsTemplateConflict(t *testing.T) {
	ns := uniqueNS(t)
	stream := "metrics-system.load-" + ns
	tmpl := "ferry-test-user-" + ns
	esDo(t, http.MethodPut, "/_index_template/"+tmpl, `{"index_patterns":["`+stream+`*"],"priority":500,"data_stream":{}}`)
	t.Cleanup(func() { esStatus(t, http.MethodDelete, "/_index_template/"+tmpl, "") })
	log, _ := testlog.New(t, "sink")
	s, err := New(context.Background(), testConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := time.Now().UnixNano()
	b := &event.Batch{Node: ns, Events: []*ferryv1.Event{
		metricEvent(ns, ns, "system.load", "", ts, nil, map[string]*ferryv1.Value{"system.load.1": event.Float(1)}),
		metricEvent(ns, ns, "system.uptime", "", ts, nil, map[string]*ferryv1.Value{"system.uptime.duration.ms": event.Int(5)}),
	}}
	res, err := s.Write(ctx, b)
	if err != nil || res.Delivered != 1 || len(res.Failed) != 1 || !res.Retryable() {
		t.Fatalf("Write = %+v, %v; want the load event failed (retryable), uptime delivered", res, err)
	}
	if msg := res.Failed[0].Err.Error(); !strings.Contains(msg, tmpl) || !strings.Contains(msg, "outranks Ferry's") {
		t.Errorf("error %q does not name the template outranking Ferry's", msg)
	}
}

// A cluster without time-series data streams gets plain metric data
// streams, says so once, and metric events keep their _id (the only
// dedupe there).
func TestMetricsPlainWithoutTimeSeries(t *testing.T) {
	var mu sync.Mutex
	var metricsPuts []string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPut && r.URL.Path == "/_index_template/"+metricsTemplate {
			mu.Lock()
			metricsPuts = append(metricsPuts, string(body))
			mu.Unlock()
			if strings.Contains(string(body), `"time_series"`) {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"error":{"type":"illegal_argument_exception","reason":"unknown value for [index.mode] must be one of [standard, logsdb] but was [time_series]"},"status":400}`)
				return
			}
		}
		io.WriteString(w, `{"acknowledged":true}`)
	}))
	defer fake.Close()
	log, logs := testlog.New(t, "sink")
	s, err := New(context.Background(), Config{URLs: []string{fake.URL}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	for range 2 {
		if err := s.Setup(context.Background()); err != nil {
			t.Fatalf("Setup: %v", err)
		}
	}
	if s.TimeSeries() {
		t.Error("TimeSeries() after the cluster refused it")
	}
	if len(metricsPuts) != 3 || strings.Contains(metricsPuts[1], "time_series") || strings.Contains(metricsPuts[2], "time_series") {
		t.Errorf("ferry-metrics PUTs: %d, want one refused with time_series, then plain ones", len(metricsPuts))
	}
	if n := logs.Count("plain data streams"); n != 1 {
		t.Errorf("%d lines about plain data streams, want 1:\n%s", n, logs.String())
	}
	ev := metricEvent("n", "x", "system.cpu", "", 1, nil, map[string]*ferryv1.Value{})
	items := new(writeBufs).build(newWaiter(context.Background(), 1), &event.Batch{Events: []*ferryv1.Event{ev}}, time.Now(), s.TimeSeries())
	if id := event.IDString(ev.GetId()); items[0].id != id || !strings.Contains(string(items[0].line), `"_id":"`+id+`"`) {
		t.Errorf("a metric event lost its _id on plain data streams: %q", items[0].line)
	}
}
