package eval

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
	"github.com/ferrylogs/ferry/alerting/esq"
	"github.com/ferrylogs/ferry/alerting/rules"
	"github.com/ferrylogs/ferry/alerting/state"
	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/test/harness"
)

// recorder is a Sink that keeps every call.
type recorder struct {
	mu    sync.Mutex
	calls [][]alert.Alert
}

func (r *recorder) Notify(_ context.Context, as []alert.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, as)
	return nil
}

// last returns the alerts of the last call by state and alertname/group
// ("HighCPU/node-1"), keyed by the value of groupField.
func (r *recorder) last(groupField string) map[string]alert.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]alert.Alert{}
	if len(r.calls) == 0 {
		return out
	}
	for _, a := range r.calls[len(r.calls)-1] {
		out[string(a.State)+":"+a.Labels[groupField]] = a
	}
	return out
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.calls = nil
	r.mu.Unlock()
}

// testES is a temporary index on the real Elasticsearch.
type testES struct {
	c     *esq.Client
	index string
}

func newTestES(t testing.TB) *testES {
	t.Helper()
	c, err := esq.New(config.AlertingElasticsearch{URLs: []string{harness.ESURL(t)}})
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	rand.Read(b[:])
	idx := "ferry-alerting-test-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + hex.EncodeToString(b[:])
	mapping := map[string]any{"mappings": map[string]any{"properties": map[string]any{
		"@timestamp": map[string]any{"type": "date_nanos"},
		"message":    map[string]any{"type": "text"},
		"host":       map[string]any{"properties": map[string]any{"name": map[string]any{"type": "keyword"}}},
		"service":    map[string]any{"properties": map[string]any{"name": map[string]any{"type": "keyword"}}},
		"kubernetes": map[string]any{"properties": map[string]any{"pod": map[string]any{"properties": map[string]any{"name": map[string]any{"type": "keyword"}}}}},
		"cpu":        map[string]any{"type": "float"},
	}}}
	if err := c.Do(context.Background(), http.MethodPut, "/"+idx, mapping, nil); err != nil {
		t.Fatal(err)
	}
	es := &testES{c: c, index: idx}
	t.Cleanup(func() {
		c.Do(context.Background(), http.MethodDelete, "/"+idx+"*", nil, nil)
	})
	return es
}

// add indexes docs (each gets @timestamp from its "at" time) and refreshes.
func (es *testES) add(t *testing.T, docs ...map[string]any) {
	t.Helper()
	var b bytes.Buffer
	for _, d := range docs {
		b.WriteString(`{"create":{}}` + "\n")
		j, _ := json.Marshal(d)
		b.Write(j)
		b.WriteByte('\n')
	}
	var res struct {
		Errors bool `json:"errors"`
	}
	if err := es.c.Do(context.Background(), http.MethodPost, "/"+es.index+"/_bulk?refresh=true", b.Bytes(), &res); err != nil || res.Errors {
		t.Fatalf("bulk: %v errors=%v", err, res.Errors)
	}
}

func doc(at time.Time, kv ...any) map[string]any {
	d := map[string]any{"@timestamp": at.UTC().Format(time.RFC3339Nano)}
	for i := 0; i+1 < len(kv); i += 2 {
		d[kv[i].(string)] = kv[i+1]
	}
	return d
}

func parseRule(t testing.TB, src string) []*rules.Rule {
	t.Helper()
	rs, err := rules.Parse("test.yaml", []byte("rules:\n"+src))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func newEval(t *testing.T, es *testES, sink Sink, src string) *Evaluator {
	t.Helper()
	e := New(Options{Client: es.c, Sink: sink, Interval: time.Minute, Delay: 0, MaxCatchUp: -1, KibanaURL: "http://kibana:5601"})
	e.SetRules(parseRule(t, strings.ReplaceAll(src, "INDEX", es.index)))
	return e
}

func step(t *testing.T, e *Evaluator, at time.Time) {
	t.Helper()
	if err := e.Step(context.Background(), at); err != nil {
		t.Fatal(err)
	}
}

// base is a whole minute in the recent past, so fixtures sit at known
// offsets from it.
func base() time.Time { return time.Now().Truncate(time.Minute).Add(-2 * time.Hour) }

func TestFrequency(t *testing.T) {
	es := newTestES(t)
	t0 := base()
	var docs []map[string]any
	for i := range 60 {
		msg := "ERROR db timeout\n\tat Foo.bar(Foo.java:1)"
		if i%3 == 0 {
			msg = "ERROR cache miss"
		}
		docs = append(docs, doc(t0.Add(-time.Duration(i)*time.Second), "service.name", "api", "message", msg))
	}
	for i := range 10 {
		docs = append(docs, doc(t0.Add(-time.Duration(i)*time.Second), "service.name", "web", "message", "ERROR x"))
	}
	docs = append(docs, doc(t0.Add(-10*time.Minute), "service.name", "web", "message", "ERROR old")) // outside the window
	es.add(t, docs...)
	rec := &recorder{}
	e := newEval(t, es, rec, `
  - name: ErrorBurst
    type: frequency
    index: INDEX
    filter: { match: { message: "ERROR" } }
    group_by: [service.name]
    window: 5m
    min_count: 50
    severity: critical
    annotations: { summary: '{{ .Value }} errors in {{ index .Labels "service.name" }}' }
`)
	step(t, e, t0.Add(time.Second))
	got := rec.last("service.name")
	a, ok := got["firing:api"]
	if !ok || len(got) != 1 {
		t.Fatalf("notified %v, want api firing only", got)
	}
	if a.Value != 60 || a.Labels["alertname"] != "ErrorBurst" || a.Labels["severity"] != "critical" || a.Annotations["summary"] != "60 errors in api" {
		t.Errorf("alert %+v", a)
	}
	want := []alert.Count{{Key: "ERROR db timeout", Count: 40}, {Key: "ERROR cache miss", Count: 20}}
	if fmt.Sprint(a.Evidence.TopMessages) != fmt.Sprint(want) {
		t.Errorf("top messages %v, want %v", a.Evidence.TopMessages, want)
	}
	if !strings.HasPrefix(a.GeneratorURL, "http://kibana:5601/app/discover#/?_g=") || !strings.Contains(a.GeneratorURL, "service.name") {
		t.Errorf("generator URL %s", a.GeneratorURL)
	}
	// Ten minutes later the window is empty: resolved.
	rec.reset()
	step(t, e, t0.Add(10*time.Minute))
	if r, ok := rec.last("service.name")["resolved:api"]; !ok || !r.EndsAt.Equal(t0.Add(10*time.Minute)) || !r.StartsAt.Equal(a.StartsAt) {
		t.Fatalf("after the burst: %v, want api resolved", rec.last("service.name"))
	}
	if len(e.Active()) != 0 {
		t.Errorf("active after resolution: %v", e.Active())
	}
}

// cpuSeries indexes one cpu sample per minute per host, at minute i + 30s
// after t0, value vals[i].
func cpuSeries(t *testing.T, es *testES, t0 time.Time, host string, vals ...float64) {
	var docs []map[string]any
	for i, v := range vals {
		docs = append(docs, doc(t0.Add(time.Duration(i)*time.Minute+30*time.Second), "host.name", host, "cpu", v, "kubernetes.pod.name", fmt.Sprintf("pod-%d", i%2)))
	}
	es.add(t, docs...)
}

func TestThresholdForHysteresisKeepFiring(t *testing.T) {
	es := newTestES(t)
	t0 := base()
	//                          m0    m1    m2    m3    m4   m5   m6
	cpuSeries(t, es, t0, "n1", 0.95, 0.95, 0.95, 0.85, 0.7, 0.7, 0.7)
	cpuSeries(t, es, t0, "n2", 0.95, 0.95, 0.95, 0.5, 0.5, 0.5, 0.5)
	rec := &recorder{}
	e := newEval(t, es, rec, `
  - name: HighCPU
    type: threshold
    index: INDEX
    field: cpu
    aggregation: avg
    group_by: [host.name]
    window: 1m
    above: 0.9
    clear: 0.8
    for: 2m
    annotations: { summary: 'CPU {{ humanizePercentage .Value }}' }
  - name: HighCPUKeep
    type: threshold
    index: INDEX
    field: cpu
    aggregation: max
    group_by: [host.name]
    window: 1m
    above: 0.9
    keep_firing_for: 2m
`)
	states := func() map[string]string {
		m := map[string]string{}
		for _, a := range e.Active() {
			m[a.Labels["alertname"]+"/"+a.Labels["host.name"]] = string(a.State)
		}
		return m
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i+1) * time.Minute) } // window [i, i+1)
	type want map[string]string
	for i, w := range []want{
		{"HighCPU/n1": "pending", "HighCPU/n2": "pending", "HighCPUKeep/n1": "firing", "HighCPUKeep/n2": "firing"},
		{"HighCPU/n1": "pending", "HighCPU/n2": "pending", "HighCPUKeep/n1": "firing", "HighCPUKeep/n2": "firing"},
		{"HighCPU/n1": "firing", "HighCPU/n2": "firing", "HighCPUKeep/n1": "firing", "HighCPUKeep/n2": "firing"},
		// 0.85: n1 stays firing (above clear), n2 at 0.5 resolves; Keep holds both for 2m.
		{"HighCPU/n1": "firing", "HighCPUKeep/n1": "firing", "HighCPUKeep/n2": "firing"},
		{"HighCPUKeep/n1": "firing", "HighCPUKeep/n2": "firing"},
		{},
	} {
		rec.reset()
		step(t, e, at(i))
		if got := states(); fmt.Sprint(got) != fmt.Sprint(map[string]string(w)) {
			t.Fatalf("minute %d: %v, want %v", i, got, w)
		}
		switch i {
		case 2:
			a := rec.last("host.name")["firing:n1"]
			if a.Annotations["summary"] != "CPU 95%" || !a.StartsAt.Equal(at(2)) {
				t.Errorf("firing n1: %+v", a)
			}
			// A node rule's evidence: its top pods and error lines.
			if len(a.Evidence.TopContributors) == 0 || a.Evidence.ErrorLines != 0 {
				t.Errorf("evidence %+v", a.Evidence)
			}
		case 3:
			if _, ok := rec.last("host.name")["resolved:n2"]; !ok {
				t.Errorf("minute 3: n2 not resolved: %v", rec.last("host.name"))
			}
		}
	}
}

func TestBaseline(t *testing.T) {
	es := newTestES(t)
	end := base()
	var docs []map[string]any
	// 12 history windows of 5m (the last hour): 8 or 12 lines per window
	// (mean 10, stddev 2) for a, b and c; now a has 10 (inside), b 30.
	for w := 1; w <= 12; w++ {
		n := 8
		if w%2 == 0 {
			n = 12
		}
		for i := range n {
			at := end.Add(-time.Duration(w)*5*time.Minute - time.Duration(i+1)*time.Second)
			docs = append(docs, doc(at, "host.name", "a"), doc(at, "host.name", "b"))
			if w <= 2 { // c has only two windows of history
				docs = append(docs, doc(at, "host.name", "c"))
			}
		}
	}
	for i := range 30 {
		at := end.Add(-time.Duration(i+1) * time.Second)
		if i < 10 {
			docs = append(docs, doc(at, "host.name", "a"))
		}
		docs = append(docs, doc(at, "host.name", "b"), doc(at, "host.name", "c"))
	}
	es.add(t, docs...)
	for _, tc := range []struct{ name, band string }{
		{"stddev", "stddev: 3"},
		{"percentile band", "band: [5, 95]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			e := newEval(t, es, rec, `
  - name: LineRate
    type: baseline
    index: INDEX
    group_by: [host.name]
    window: 5m
    history_hours: 1
    `+tc.band+`
    min_history: 5
`)
			step(t, e, end)
			got := rec.last("host.name")
			if _, ok := got["firing:b"]; !ok || len(got) != 1 {
				t.Fatalf("notified %v, want b only (a inside the band, c without enough history)", got)
			}
			if got["firing:b"].Value != 30 {
				t.Errorf("value %v", got["firing:b"].Value)
			}
		})
	}
}

func TestAbsence(t *testing.T) {
	es := newTestES(t)
	now := base()
	es.add(t,
		doc(now.Add(-2*time.Minute), "host.name", "alive"),
		doc(now.Add(-30*time.Minute), "host.name", "alive"),
		doc(now.Add(-20*time.Minute), "host.name", "gone"),
		doc(now.Add(-3*time.Hour), "host.name", "long-gone"), // outside the lookback
	)
	rec := &recorder{}
	e := newEval(t, es, rec, `
  - name: Quiet
    type: absence
    index: INDEX
    group_by: [host.name]
    window: 10m
    lookback: 1h
    annotations: { summary: 'silent for {{ humanizeDuration .Value }}' }
`)
	step(t, e, now)
	got := rec.last("host.name")
	a, ok := got["firing:gone"]
	if !ok || len(got) != 1 {
		t.Fatalf("notified %v, want gone only", got)
	}
	if a.Annotations["summary"] != "silent for 20m" {
		t.Errorf("summary %q", a.Annotations["summary"])
	}
}

func TestSpike(t *testing.T) {
	es := newTestES(t)
	now := base()
	var docs []map[string]any
	add := func(svc string, prev, cur int) {
		for i := range prev {
			docs = append(docs, doc(now.Add(-6*time.Minute-time.Duration(i)*time.Second), "service.name", svc))
		}
		for i := range cur {
			docs = append(docs, doc(now.Add(-time.Minute-time.Duration(i)*time.Second), "service.name", svc))
		}
	}
	add("up", 5, 20)    // ratio 4
	add("flat", 10, 12) // ratio 1.2
	add("down", 20, 2)  // ratio 0.1
	add("small", 0, 3)  // below min_count
	es.add(t, docs...)
	for _, tc := range []struct{ dir, want string }{
		{"up", "up"}, {"down", "down"}, {"both", "down,up"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			rec := &recorder{}
			e := newEval(t, es, rec, `
  - name: Spike
    type: spike
    index: INDEX
    group_by: [service.name]
    window: 5m
    ratio: 3
    min_count: 10
    direction: `+tc.dir+`
`)
			step(t, e, now)
			var got []string
			for _, a := range e.Active() {
				got = append(got, a.Labels["service.name"])
			}
			if strings.Join(got, ",") != tc.want {
				t.Fatalf("firing %v, want %s", got, tc.want)
			}
		})
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	es := newTestES(t)
	ctx := context.Background()
	store, err := state.Open(ctx, es.c, es.index+"-state")
	if err != nil {
		t.Fatal(err)
	}
	t0 := base()
	var docs []map[string]any
	for i := range 20 {
		docs = append(docs, doc(t0.Add(-time.Duration(i)*time.Second), "service.name", "api", "message", "ERROR boom"))
	}
	es.add(t, docs...)
	src := strings.ReplaceAll(`
  - name: Burst
    type: frequency
    index: INDEX
    group_by: [service.name]
    window: 5m
    min_count: 10
  - name: Pending
    type: frequency
    index: INDEX
    window: 5m
    min_count: 1
    for: 1h
`, "INDEX", es.index)
	start := func(rec *recorder) *Evaluator {
		e := New(Options{Client: es.c, Store: store, Sink: rec, Interval: time.Minute, MaxCatchUp: -1})
		e.SetRules(parseRule(t, src))
		return e
	}
	rec1 := &recorder{}
	e1 := start(rec1)
	step(t, e1, t0.Add(time.Second))
	first := rec1.last("service.name")["firing:api"]
	if first.StartsAt.IsZero() {
		t.Fatalf("first evaluator: %v", rec1.calls)
	}
	// A new evaluator (a restart, or another leader) resumes the state: the
	// same alert, started at the same time, and the pending one still
	// pending since then.
	rec2 := &recorder{}
	e2 := start(rec2)
	step(t, e2, t0.Add(90*time.Second))
	again := rec2.last("service.name")["firing:api"]
	if !again.StartsAt.Equal(first.StartsAt) || again.Fingerprint() != first.Fingerprint() {
		t.Fatalf("after restart: %+v, want StartsAt %s", again, first.StartsAt)
	}
	for _, a := range e2.Active() {
		if a.Labels["alertname"] == "Pending" && (a.State != alert.Pending || !a.StartsAt.Equal(t0.Add(time.Second))) {
			t.Errorf("pending alert after restart: %+v", a)
		}
	}
	// It is not forgotten: once the burst is out of the window, resolved.
	rec3 := &recorder{}
	e3 := start(rec3)
	step(t, e3, t0.Add(10*time.Minute))
	if r, ok := rec3.last("service.name")["resolved:api"]; !ok || !r.StartsAt.Equal(first.StartsAt) {
		t.Fatalf("after the burst: %v, want api resolved", rec3.calls)
	}
	entries, _, err := store.Load(ctx)
	if err != nil || len(entries) != 0 {
		t.Fatalf("state after resolution: %v %v", entries, err)
	}
}

func TestCatchUpNotifiesWhatHappenedWhileDown(t *testing.T) {
	es := newTestES(t)
	ctx := context.Background()
	store, err := state.Open(ctx, es.c, es.index+"-state")
	if err != nil {
		t.Fatal(err)
	}
	t0 := base()
	src := strings.ReplaceAll(`
  - name: Burst
    type: frequency
    index: INDEX
    window: 5m
    min_count: 10
`, "INDEX", es.index)
	e1 := New(Options{Client: es.c, Store: store, Interval: time.Minute, MaxCatchUp: time.Hour})
	e1.SetRules(parseRule(t, src))
	step(t, e1, t0) // nothing yet; the rule's last evaluation is t0
	// While no evaluator runs, a burst 20 to 15 minutes after t0.
	var docs []map[string]any
	for i := range 20 {
		docs = append(docs, doc(t0.Add(17*time.Minute+time.Duration(i)*time.Second), "message", "ERROR"))
	}
	es.add(t, docs...)
	rec := &recorder{}
	e2 := New(Options{Client: es.c, Store: store, Sink: rec, Interval: time.Minute, MaxCatchUp: time.Hour})
	e2.SetRules(parseRule(t, src))
	if err := e2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	e2.CatchUp(ctx, t0.Add(40*time.Minute))
	var firing, resolved int
	for _, c := range rec.calls {
		for _, a := range c {
			switch a.State {
			case alert.Firing:
				firing++
			case alert.Resolved:
				resolved++
			}
		}
	}
	if firing == 0 || resolved != 1 {
		t.Fatalf("caught up: %d firing and %d resolved notices, want the burst's firing and resolved", firing, resolved)
	}
}

func TestSetRulesKeepsStateOfUnchangedRules(t *testing.T) {
	es := newTestES(t)
	t0 := base()
	es.add(t, doc(t0.Add(-time.Second), "message", "x"))
	src := `
  - name: A
    type: frequency
    index: INDEX
    window: 5m
    min_count: 1
    for: 1h
  - name: B
    type: frequency
    index: INDEX
    window: 5m
    min_count: 1
    for: 1h
`
	e := newEval(t, es, nil, src)
	step(t, e, t0)
	// B changes (for: 2h); A does not.
	changed := src[:strings.LastIndex(src, "for: 1h")] + "for: 2h\n"
	e.SetRules(parseRule(t, strings.ReplaceAll(changed, "INDEX", es.index)))
	step(t, e, t0.Add(time.Minute))
	since := map[string]time.Time{}
	for _, a := range e.Active() {
		since[a.Labels["alertname"]] = a.StartsAt
	}
	if !since["A"].Equal(t0) || !since["B"].Equal(t0.Add(time.Minute)) {
		t.Fatalf("pending since %v: want A kept (%s), B started over", since, t0)
	}
}

// frequency with max_count: a group that goes silent (count 0) still
// holds "at most", so its alert keeps firing.
func TestFrequencyMaxCountSilentGroup(t *testing.T) {
	es := newTestES(t)
	t0 := base()
	es.add(t, doc(t0.Add(-time.Second), "service.name", "quiet"))
	for i := range 10 {
		es.add(t, doc(t0.Add(-time.Duration(i+1)*time.Second), "service.name", "busy"))
	}
	e := newEval(t, es, nil, `
  - name: TooQuiet
    type: frequency
    index: INDEX
    group_by: [service.name]
    window: 5m
    max_count: 5
`)
	firing := func() string {
		var s []string
		for _, a := range e.Active() {
			s = append(s, a.Labels["service.name"]+":"+string(a.State))
		}
		return strings.Join(s, ",")
	}
	step(t, e, t0)
	if got := firing(); got != "quiet:firing" {
		t.Fatalf("first: %s", got)
	}
	step(t, e, t0.Add(10*time.Minute)) // nothing in the window any more
	if got := firing(); got != "quiet:firing" {
		t.Fatalf("silent: %s, want quiet still firing", got)
	}
}

// Alerts in the state of a rule that is no longer evaluated (removed, or
// a built-in rule turned off while no evaluator ran) are resolved at load,
// not handed over as firing forever.
func TestStateOfRemovedRuleResolvedAtLoad(t *testing.T) {
	es := newTestES(t)
	ctx := context.Background()
	store, err := state.Open(ctx, es.c, es.index+"-state")
	if err != nil {
		t.Fatal(err)
	}
	t0 := base()
	es.add(t, doc(t0.Add(-time.Second), "message", "x"))
	rule := func(name string) string {
		return "\n  - {name: " + name + ", type: frequency, index: " + es.index + ", window: 5m, min_count: 1}\n"
	}
	e1 := New(Options{Client: es.c, Store: store, Interval: time.Minute, MaxCatchUp: -1})
	e1.SetRules(parseRule(t, rule("Old")))
	step(t, e1, t0)
	rec := &recorder{}
	e2 := New(Options{Client: es.c, Store: store, Sink: rec, Interval: time.Minute, MaxCatchUp: -1})
	e2.SetRules(parseRule(t, rule("New")))
	step(t, e2, t0.Add(time.Minute))
	got := rec.last("alertname")
	if _, ok := got["resolved:Old"]; !ok {
		t.Errorf("notified %v, want Old resolved", got)
	}
	if _, ok := got["firing:Old"]; ok {
		t.Errorf("Old handed over as firing: %v", got)
	}
	for _, a := range e2.Active() {
		if a.Labels["alertname"] == "Old" {
			t.Errorf("Old still active: %+v", a)
		}
	}
}
