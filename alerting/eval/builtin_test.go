package eval

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
	"github.com/ferrylogs/ferry/alerting/esq"
	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/test/harness"
)

// ElasticsearchUnreachable fires once Elasticsearch has not answered for a
// minute (two intervals at least) and resolves when it answers again; the
// rules' own alerts are neither fired nor resolved meanwhile.
func TestBuiltinElasticsearchUnreachable(t *testing.T) {
	es := newTestES(t)
	target, _ := url.Parse(harness.ESURL(t))
	var down atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "no route", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := esq.New(config.AlertingElasticsearch{URLs: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := base()
	es.add(t, doc(t0.Add(-time.Second), "message", "x"))
	rec := &recorder{}
	e := New(Options{Client: c, Sink: rec, Interval: 10 * time.Second, MaxCatchUp: -1, Builtin: true})
	e.SetRules(parseRule(t, `
  - name: Any
    type: frequency
    index: `+es.index+`
    window: 5m
    min_count: 1
`))
	ctx := context.Background()
	firing := func() map[string]alert.State {
		m := map[string]alert.State{}
		for _, a := range e.Active() {
			m[a.Labels["alertname"]] = a.State
		}
		return m
	}
	e.Step(ctx, t0)
	if f := firing(); f["Any"] != alert.Firing || len(f) != 1 {
		t.Fatalf("before the outage: %v", f)
	}
	down.Store(true)
	e.Step(ctx, t0.Add(10*time.Second))
	if f := firing(); f[ESUnreachable] != "" {
		t.Fatalf("fired at once: %v", f)
	}
	e.Step(ctx, t0.Add(80*time.Second))
	f := firing()
	if f[ESUnreachable] != alert.Firing || f["Any"] != alert.Firing {
		t.Fatalf("after a minute down: %v, want ElasticsearchUnreachable firing and Any kept", f)
	}
	last := rec.last("alertname")
	if a := last["firing:"+ESUnreachable]; a.Labels["alertname"] != ESUnreachable || a.Labels["severity"] != "critical" {
		t.Errorf("notified %v", last)
	}
	down.Store(false)
	rec.reset()
	e.Step(ctx, t0.Add(90*time.Second))
	if f := firing(); f[ESUnreachable] != "" {
		t.Fatalf("after recovery: %v", f)
	}
	found := false
	for _, a := range rec.calls[0] {
		found = found || a.State == alert.Resolved && a.Labels["alertname"] == ESUnreachable
	}
	if !found {
		t.Errorf("no resolved notice: %v", rec.calls)
	}
}

func TestBuiltinRulesParse(t *testing.T) {
	rs := BuiltinRules()
	if len(rs) != 1 || rs[0].Name != AgentAbsent || !rs[0].Builtin || rs[0].GroupBy[0] != "host.name" {
		t.Fatalf("builtin rules %+v", rs)
	}
}
