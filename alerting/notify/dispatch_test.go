package notify

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// recorder is a receiver that keeps what it was sent.
type recorder struct {
	mu   sync.Mutex
	name string
	got  []*Notice
	fail func(n *Notice) error
}

func (r *recorder) Send(_ context.Context, n *Notice) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(n); err != nil {
			return "", err
		}
	}
	c := *n
	r.got = append(r.got, &c)
	return "ok", nil
}

// describe renders a notice as "receiver status id id -id" (resolved
// alerts with a minus), or "receiver flapping id".
func describe(n *Notice) string {
	var ids []string
	for _, a := range n.Alerts {
		id := a.Labels["id"]
		if a.State == alert.Resolved {
			id = "-" + id
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	status := n.Status
	if n.Flapping {
		status = "flapping"
	}
	return strings.TrimSpace(n.Receiver + " " + status + " " + strings.Join(ids, " "))
}

type harness struct {
	t     *testing.T
	d     *Dispatcher
	clock *fakeClock
	start time.Time
	recs  map[string]*recorder
	seen  map[string]int
}

func newHarness(t *testing.T, rc RouteConfig, receivers []string, opt func(*Options)) *harness {
	t.Helper()
	return newHarnessDir(t, filepath.Join(t.TempDir(), "outbox"), newClock(), rc, receivers, opt)
}

func newHarnessDir(t *testing.T, dir string, clock *fakeClock, rc RouteConfig, receivers []string, opt func(*Options)) *harness {
	t.Helper()
	root, err := BuildRoute(rc, receivers)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clock: clock, start: clock.Now(), recs: map[string]*recorder{}, seen: map[string]int{}}
	ns := map[string]Notifier{}
	for _, r := range receivers {
		h.recs[r] = &recorder{name: r}
		ns[r] = h.recs[r]
	}
	o := Options{Route: root, Notifiers: ns, OutboxDir: dir, Now: clock.Now, BuiltinRules: true}
	if opt != nil {
		opt(&o)
	}
	if h.d, err = New(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return h
}

// at moves the clock to start+off, hands alerts to the dispatcher (if
// any), flushes and delivers, and returns the notices sent since the last
// call, described.
func (h *harness) at(off time.Duration, alerts ...alert.Alert) []string {
	h.t.Helper()
	h.clock.Set(h.start.Add(off))
	ctx := context.Background()
	if alerts != nil {
		if err := h.d.Notify(ctx, alerts); err != nil {
			h.t.Fatal(err)
		}
	}
	if err := h.d.Flush(ctx); err != nil {
		h.t.Fatal(err)
	}
	h.d.Deliver(ctx)
	var out []string
	for _, name := range slices.Sorted(maps.Keys(h.recs)) {
		r := h.recs[name]
		r.mu.Lock()
		for _, n := range r.got[h.seen[name]:] {
			out = append(out, describe(n))
		}
		h.seen[name] = len(r.got)
		r.mu.Unlock()
	}
	return out
}

// fire returns a firing alert with the labels given as k=v pairs.
func fire(kv ...string) alert.Alert {
	l := map[string]string{}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		l[k] = v
	}
	return alert.Alert{Labels: l, Annotations: map[string]string{"summary": "s"}, State: alert.Firing, StartsAt: time.Unix(0, 0)}
}

func resolve(a alert.Alert) alert.Alert {
	a.State = alert.Resolved
	a.EndsAt = time.Unix(1, 0)
	return a
}

type step struct {
	at     time.Duration
	alerts []alert.Alert
	want   []string
}

func run(t *testing.T, h *harness, steps []step) {
	t.Helper()
	for i, s := range steps {
		got := h.at(s.at, s.alerts...)
		if !slices.Equal(got, s.want) {
			t.Errorf("step %d at %s: notices %q, want %q", i, s.at, got, s.want)
		}
	}
}

func TestDispatchTimings(t *testing.T) {
	a1, a2 := fire("alertname=A", "id=1"), fire("alertname=A", "id=2")
	b1 := fire("alertname=B", "id=3")
	root := RouteConfig{Receiver: "r", GroupBy: []string{"alertname"}, GroupWait: dur(30 * time.Second), GroupInterval: 5 * time.Minute, RepeatInterval: time.Hour}
	for _, tc := range []struct {
		name  string
		route RouteConfig
		steps []step
	}{
		{name: "group_wait, group_interval, repeat_interval, resolved", route: root, steps: []step{
			{at: 0, alerts: []alert.Alert{a1}},
			{at: 29 * time.Second, alerts: []alert.Alert{a1}},
			{at: 30 * time.Second, want: []string{"r firing 1"}},
			{at: time.Minute, alerts: []alert.Alert{a1, a2}}, // waits for group_interval
			{at: 5*time.Minute + 29*time.Second},
			{at: 5*time.Minute + 30*time.Second, want: []string{"r firing 1 2"}},
			{at: 10*time.Minute + 30*time.Second, alerts: []alert.Alert{a1, a2}},                                 // nothing new
			{at: 65*time.Minute + 30*time.Second, alerts: []alert.Alert{a1, a2}, want: []string{"r firing 1 2"}}, // repeat
			{at: 66 * time.Minute, alerts: []alert.Alert{resolve(a1), a2}},
			{at: 70*time.Minute + 30*time.Second, want: []string{"r firing -1 2"}},
			{at: 71 * time.Minute, alerts: []alert.Alert{resolve(a2)}},
			{at: 75*time.Minute + 30*time.Second, want: []string{"r resolved -2"}},
			{at: 80*time.Minute + 30*time.Second}, // the group is gone
		}},
		{name: "group_wait 0s sends at once", route: RouteConfig{Receiver: "r", GroupBy: []string{"alertname"}, GroupWait: dur(0)}, steps: []step{
			{at: 0, alerts: []alert.Alert{a1}, want: []string{"r firing 1"}},
		}},
		{name: "group_by splits groups", route: root, steps: []step{
			{at: 0, alerts: []alert.Alert{a1, b1, a2}},
			{at: 30 * time.Second, want: []string{"r firing 1 2", "r firing 3"}},
		}},
		{name: "group_by nothing: one group", route: RouteConfig{Receiver: "r", GroupBy: []string{}, GroupWait: dur(0)}, steps: []step{
			{at: 0, alerts: []alert.Alert{a1, b1}, want: []string{"r firing 1 3"}},
		}},
		{name: "a resolved alert never notified as firing sends nothing", route: root, steps: []step{
			{at: 0, alerts: []alert.Alert{a1}},
			{at: 10 * time.Second, alerts: []alert.Alert{resolve(a1)}},
			{at: 30 * time.Second},
		}},
		{name: "continue: critical to pager and on", route: RouteConfig{Receiver: "r", GroupWait: dur(0), Routes: []RouteConfig{
			{Matchers: []string{`severity="critical"`}, Receiver: "pager", Continue: true},
			{Matchers: []string{`alertname=~"A|B"`}, Receiver: "team"},
		}}, steps: []step{
			{at: 0, alerts: []alert.Alert{fire("alertname=A", "id=1", "severity=critical"), fire("alertname=C", "id=2", "severity=critical"), fire("alertname=B", "id=3")},
				want: []string{"pager firing 1 2", "team firing 1 3"}}, // C matched pager: the root does not take it
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.route, []string{"r", "pager", "team"}, nil)
			run(t, h, tc.steps)
		})
	}
}

func TestDispatchSilences(t *testing.T) {
	store := &FileStore{Path: filepath.Join(t.TempDir(), "silences.json")}
	h := newHarness(t, RouteConfig{Receiver: "r", GroupBy: []string{"id"}, GroupWait: dur(0), GroupInterval: time.Minute}, []string{"r"},
		func(o *Options) { o.Silences = store })
	ctx := context.Background()
	s, err := NewSilence([]string{`severity="warning"`, `service.name=~"api.*"`}, h.clock.Now(), time.Hour, "test", "deploy")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	h.d.ReloadSilences(ctx)
	w := fire("alertname=A", "id=1", "severity=warning", "service.name=api-gw")
	run(t, h, []step{
		{at: 0, alerts: []alert.Alert{w, fire("alertname=A", "id=2", "severity=critical", "service.name=api-gw")}, want: []string{"r firing 2"}},
		{at: 2 * time.Minute, alerts: []alert.Alert{w}},
	})
	if _, err := Expire(ctx, store, s.ID, h.start.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// The dispatcher reads the store again after SilenceRefresh (5s).
	run(t, h, []step{{at: 4 * time.Minute, alerts: []alert.Alert{w}, want: []string{"r firing 1"}}})
	// A silence that ends by itself.
	s2, _ := NewSilence([]string{`id="3"`}, h.start.Add(4*time.Minute), 10*time.Minute, "", "")
	_ = store.Put(ctx, s2)
	a3 := fire("alertname=A", "id=3")
	run(t, h, []step{
		{at: 5 * time.Minute, alerts: []alert.Alert{a3}},
		{at: 13 * time.Minute, alerts: []alert.Alert{a3}},
		{at: 14 * time.Minute, alerts: []alert.Alert{a3}, want: []string{"r firing 3"}},
	})
	all, _ := store.List(ctx)
	if len(all) != 2 || !all[0].EndsAt.Equal(h.start.Add(3*time.Minute)) {
		t.Errorf("silences %+v: want both kept, the first expired at +3m", all)
	}
	if _, err := Expire(ctx, store, "nope", h.clock.Now()); err == nil {
		t.Error("expired an unknown silence")
	}
}

func TestDispatchInhibition(t *testing.T) {
	es := fire("alertname=ElasticsearchUnreachable", "id=es")
	absent := fire("alertname=AgentAbsent", "id=absent", "host.name=n1")
	onHost := fire("alertname=HighCPU", "id=cpu-n1", "host.name=n1")
	onNode := fire("alertname=Errors", "id=err-n1", "kubernetes.node.name=n1")
	other := fire("alertname=HighCPU", "id=cpu-n2", "host.name=n2")
	for _, tc := range []struct {
		name    string
		builtin bool
		alerts  []alert.Alert
		want    []string
	}{
		{"es unreachable mutes all others", true, []alert.Alert{es, absent, onHost, other}, []string{"r firing es"}},
		{"agent absent mutes its host's and node's alerts", true, []alert.Alert{absent, onHost, onNode, other}, []string{"r firing absent cpu-n2"}},
		{"builtin_rules false: nothing muted", false, []alert.Alert{es, absent, onHost, onNode, other}, []string{"r firing absent cpu-n1 cpu-n2 err-n1 es"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, RouteConfig{Receiver: "r", GroupBy: []string{}, GroupWait: dur(0)}, []string{"r"}, func(o *Options) { o.BuiltinRules = tc.builtin })
			run(t, h, []step{{at: 0, alerts: tc.alerts, want: tc.want}})
		})
	}
	// Once Elasticsearch is back, the muted alerts are notified.
	h := newHarness(t, RouteConfig{Receiver: "r", GroupBy: []string{}, GroupWait: dur(0), GroupInterval: time.Minute}, []string{"r"}, nil)
	run(t, h, []step{
		{at: 0, alerts: []alert.Alert{es, other}, want: []string{"r firing es"}},
		{at: time.Minute, alerts: []alert.Alert{resolve(es), other}, want: []string{"r firing -es cpu-n2"}},
	})
}

func TestDispatchFlapping(t *testing.T) {
	a := fire("alertname=A", "id=1")
	r := resolve(a)
	h := newHarness(t, RouteConfig{Receiver: "r", GroupBy: []string{"alertname"}, GroupWait: dur(0), GroupInterval: time.Minute, RepeatInterval: 24 * time.Hour}, []string{"r"},
		func(o *Options) { o.Flap = FlapOptions{Changes: 4, Window: time.Hour, Stable: 30 * time.Minute} })
	m := time.Minute
	run(t, h, []step{
		{at: 0, alerts: []alert.Alert{a}, want: []string{"r firing 1"}},
		{at: 2 * m, alerts: []alert.Alert{r}, want: []string{"r resolved -1"}},
		{at: 4 * m, alerts: []alert.Alert{a}, want: []string{"r firing 1"}},
		{at: 6 * m, alerts: []alert.Alert{r}, want: []string{"r flapping -1"}}, // 4th change: one flapping notice
		{at: 8 * m, alerts: []alert.Alert{a}},
		{at: 10 * m, alerts: []alert.Alert{r}},
		{at: 12 * m, alerts: []alert.Alert{a}},
		{at: 14 * m, alerts: []alert.Alert{r}},
		{at: 43 * m},                                                         // 29m without change: still quiet
		{at: 44 * m, want: []string{"r resolved -1"}},                        // stable: its state, once
		{at: 50 * m, alerts: []alert.Alert{a}, want: []string{"r firing 1"}}, // counts afresh
	})
	if n := h.recs["r"].got[3]; !n.Flapping || !strings.Contains(n.Alerts[0].Annotations["flapping"], "changed state 4 times within 1h0m0s") {
		t.Errorf("flapping notice %+v", n)
	}
}

func TestOutboxSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	clock := newClock()
	route := RouteConfig{Receiver: "r", GroupBy: []string{"alertname"}, GroupWait: dur(0), GroupInterval: time.Minute, RepeatInterval: 24 * time.Hour}
	h1 := newHarnessDir(t, dir, clock, route, []string{"r"}, nil)
	h1.recs["r"].fail = func(*Notice) error { return &SendError{Err: fmt.Errorf("503"), Retry: true} }
	a := fire("alertname=A", "id=1")
	run(t, h1, []step{{at: 0, alerts: []alert.Alert{a}}}) // attempted, failed, waiting
	if h1.d.Count("r", "retry") != 1 || h1.d.box.len() != 1 {
		t.Fatalf("retry %d pending %d: want one failed attempt, one notice waiting", h1.d.Count("r", "retry"), h1.d.box.len())
	}
	// Restart: a new dispatcher over the same directory delivers it once,
	// and does not notify the alert again when the evaluator repeats it.
	h2 := newHarnessDir(t, dir, clock, route, []string{"r"}, nil)
	h2.start = h1.start
	run(t, h2, []step{
		{at: 2 * time.Second, want: []string{"r firing 1"}},
		{at: 3 * time.Second},
		{at: time.Minute, alerts: []alert.Alert{a}},
		{at: 2 * time.Minute, alerts: []alert.Alert{a}},
		{at: 3 * time.Minute, alerts: []alert.Alert{resolve(a)}, want: []string{"r resolved -1"}},
	})
	if h2.d.Count("r", "sent") != 2 || h2.d.box.len() != 0 {
		t.Errorf("sent %d pending %d", h2.d.Count("r", "sent"), h2.d.box.len())
	}
}

func TestOutboxCrashBeforeLogWrite(t *testing.T) {
	// A notice written to the outbox whose notification log entry was
	// lost (crash between the two writes): after the restart it is
	// delivered, and the alert is not notified a second time.
	dir := filepath.Join(t.TempDir(), "outbox")
	clock := newClock()
	route := RouteConfig{Receiver: "r", GroupBy: []string{"alertname"}, GroupWait: dur(0), GroupInterval: time.Minute, RepeatInterval: 24 * time.Hour}
	h1 := newHarnessDir(t, dir, clock, route, []string{"r"}, nil)
	a := fire("alertname=A", "id=1")
	h1.clock.Set(h1.start)
	if err := h1.d.Notify(context.Background(), []alert.Alert{a}); err != nil { // queued, not delivered
		t.Fatal(err)
	}
	if err := removeFile(filepath.Join(dir, "nflog.json")); err != nil {
		t.Fatal(err)
	}
	h2 := newHarnessDir(t, dir, clock, route, []string{"r"}, nil)
	h2.start = h1.start
	run(t, h2, []step{
		{at: time.Second, alerts: []alert.Alert{a}, want: []string{"r firing 1"}},
		{at: 2 * time.Minute, alerts: []alert.Alert{a}},
	})
}

func removeFile(p string) error { return os.Remove(p) }

// TestHandoverSharedLog: two replicas share the notification log in the
// real Elasticsearch; when the second takes over evaluation it does not
// notify again what the first did, and it sends the resolved notice.
func TestHandoverSharedLog(t *testing.T) {
	es := testES(t)
	index := fmt.Sprintf("ferry-test-nflog-%d", time.Now().UnixNano())
	t.Cleanup(func() { _ = es.Do(context.Background(), "DELETE", "/"+index, nil, nil) })
	clock := newClock()
	route := RouteConfig{Receiver: "r", GroupBy: []string{"alertname"}, GroupWait: dur(0), GroupInterval: time.Minute, RepeatInterval: 24 * time.Hour}
	shared := func(o *Options) { o.NotifyLog = &ESLog{ES: es, Index: index} }
	first := newHarnessDir(t, filepath.Join(t.TempDir(), "a"), clock, route, []string{"r"}, shared)
	a, b := fire("alertname=A", "id=1"), fire("alertname=B", "id=2")
	run(t, first, []step{{at: 0, alerts: []alert.Alert{a}, want: []string{"r firing 1"}}})
	second := newHarnessDir(t, filepath.Join(t.TempDir(), "b"), clock, route, []string{"r"}, shared)
	second.start = first.start
	run(t, second, []step{
		{at: 30 * time.Second, alerts: []alert.Alert{a, b}, want: []string{"r firing 2"}}, // A was told by the first
		{at: 2 * time.Minute, alerts: []alert.Alert{resolve(a), b}, want: []string{"r resolved -1"}},
	})
}

func TestStaleAlertForgotten(t *testing.T) {
	a := fire("alertname=A", "id=1")
	h := newHarness(t, RouteConfig{Receiver: "r", GroupBy: []string{"alertname"}, GroupWait: dur(0), GroupInterval: time.Minute, RepeatInterval: 5 * time.Minute}, []string{"r"},
		func(o *Options) { o.StaleAfter = 10 * time.Minute })
	run(t, h, []step{
		{at: 0, alerts: []alert.Alert{a}, want: []string{"r firing 1"}},
		{at: 6 * time.Minute, alerts: []alert.Alert{a}, want: []string{"r firing 1"}}, // repeat while handed over
		{at: 12 * time.Minute, want: []string{"r firing 1"}},                          // not handed over since 6m, not stale yet: repeated
		{at: 17 * time.Minute}, // stale: forgotten, neither repeated (it would be due) nor resolved
		{at: 30 * time.Minute},
	})
	if len(h.d.groups) != 0 {
		t.Errorf("groups %v: want the stale group gone", h.d.groups)
	}
}

// failingLog is a notification log whose store is down.
type failingLog struct{}

func (failingLog) Get(context.Context, string) (*Sent, error) { return nil, fmt.Errorf("unreachable") }
func (failingLog) Put(context.Context, string, *Sent) error   { return fmt.Errorf("unreachable") }

// TestLogDown: with the notification log's store down (Elasticsearch
// unreachable) notices still go, once each, and Notify reports no error:
// the notices are in the outbox and this process remembers them.
func TestLogDown(t *testing.T) {
	h := newHarness(t, RouteConfig{Receiver: "r", GroupBy: []string{"alertname"}, GroupWait: dur(0), GroupInterval: time.Minute, RepeatInterval: time.Hour}, []string{"r"},
		func(o *Options) { o.NotifyLog = failingLog{} })
	es := fire("alertname=ElasticsearchUnreachable", "id=es")
	run(t, h, []step{
		{at: 0, alerts: []alert.Alert{es}, want: []string{"r firing es"}},
		{at: 2 * time.Minute, alerts: []alert.Alert{es}},
		{at: 4 * time.Minute, alerts: []alert.Alert{resolve(es)}, want: []string{"r resolved -es"}},
	})
}

// TestThread: a group's notices share the thread of its first (email
// In-Reply-To/References); once resolved, the next incident starts anew.
func TestThread(t *testing.T) {
	a, b := fire("alertname=A", "id=1"), fire("alertname=A", "id=2")
	h := newHarness(t, RouteConfig{Receiver: "r", GroupBy: []string{"alertname"}, GroupWait: dur(0), GroupInterval: time.Minute}, []string{"r"}, nil)
	run(t, h, []step{
		{at: 0, alerts: []alert.Alert{a}, want: []string{"r firing 1"}},
		{at: time.Minute, alerts: []alert.Alert{a, b}, want: []string{"r firing 1 2"}},
		{at: 2 * time.Minute, alerts: []alert.Alert{resolve(a), resolve(b)}, want: []string{"r resolved -1 -2"}},
		{at: 3 * time.Minute, alerts: []alert.Alert{a}, want: []string{"r firing 1"}},
	})
	got := h.recs["r"].got
	if got[0].Thread != got[0].ID || got[1].Thread != got[0].ID || got[2].Thread != got[0].ID {
		t.Errorf("threads %q %q %q: want all on the first notice %q", got[0].Thread, got[1].Thread, got[2].Thread, got[0].ID)
	}
	if got[3].Thread != got[3].ID {
		t.Errorf("new incident's thread %q: want its own ID %q", got[3].Thread, got[3].ID)
	}
}
