package notify

import (
	"slices"
	"testing"
	"time"
)

func TestParseMatcher(t *testing.T) {
	for _, tc := range []struct {
		in     string
		labels map[string]string
		want   bool
		err    bool
	}{
		{in: `severity="critical"`, labels: map[string]string{"severity": "critical"}, want: true},
		{in: `severity="critical"`, labels: map[string]string{"severity": "warning"}},
		{in: `severity = critical`, labels: map[string]string{"severity": "critical"}, want: true},
		{in: `severity!="critical"`, labels: map[string]string{"severity": "warning"}, want: true},
		{in: `severity!="critical"`, labels: map[string]string{}, want: true},
		{in: `service.name=~"api|web"`, labels: map[string]string{"service.name": "web"}, want: true},
		{in: `service.name=~"api|web"`, labels: map[string]string{"service.name": "webby"}}, // anchored
		{in: `service.name!~"api.*"`, labels: map[string]string{"service.name": "apiserver"}},
		{in: `service.name!~"api.*"`, labels: map[string]string{"service.name": "web"}, want: true},
		{in: `env=""`, labels: map[string]string{}, want: true}, // absent is ""
		{in: `msg="a \"quoted\" value"`, labels: map[string]string{"msg": `a "quoted" value`}, want: true},
		{in: `severity~"x"`, err: true},
		{in: `="x"`, err: true},
		{in: `a=~"("`, err: true},
		{in: `a="unterminated`, err: true},
	} {
		m, err := ParseMatcher(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("%s: parsed; want an error", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := m.Matches(tc.labels); got != tc.want {
			t.Errorf("%s on %v: %v, want %v", tc.in, tc.labels, got, tc.want)
		}
	}
}

func dur(d time.Duration) *time.Duration { return &d }

func TestRouteMatch(t *testing.T) {
	cfg := RouteConfig{
		Receiver: "default", GroupBy: []string{"alertname"}, GroupWait: dur(10 * time.Second), RepeatInterval: time.Hour,
		Routes: []RouteConfig{
			{Matchers: []string{`severity="critical"`}, Receiver: "pager", Continue: true, GroupWait: dur(0)},
			{Matchers: []string{`service.name=~"db-.*"`}, Receiver: "dba", GroupBy: []string{"service.name"},
				Routes: []RouteConfig{{Matchers: []string{`env="prod"`}, Receiver: "dba-prod", GroupInterval: time.Minute}}},
			{Matchers: []string{`service.name=~"db-.*"`}, Receiver: "never"}, // after a match without continue
			{Matchers: []string{`team="web"`}, Receiver: "web"},
		},
	}
	root, err := BuildRoute(cfg, []string{"default", "pager", "dba", "dba-prod", "never", "web"})
	if err != nil {
		t.Fatal(err)
	}
	recv := func(rs []*Route) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Receiver)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   []string
	}{
		{"no child matches: root", map[string]string{"alertname": "X"}, []string{"default"}},
		{"critical continues to the next match", map[string]string{"severity": "critical", "team": "web"}, []string{"pager", "web"}},
		{"critical alone: only pager", map[string]string{"severity": "critical"}, []string{"pager"}},
		{"first match without continue stops", map[string]string{"service.name": "db-1", "team": "web"}, []string{"dba"}},
		{"nested child", map[string]string{"service.name": "db-1", "env": "prod"}, []string{"dba-prod"}},
		{"critical and nested", map[string]string{"severity": "critical", "service.name": "db-1", "env": "prod"}, []string{"pager", "dba-prod"}},
	} {
		if got := recv(root.Match(tc.labels)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: receivers %v, want %v", tc.name, got, tc.want)
		}
	}
	// Inheritance: group_wait 0s kept, group_by and timings inherited.
	pager, dba, dbaProd := root.Routes[0], root.Routes[1], root.Routes[1].Routes[0]
	if pager.GroupWait != 0 || !slices.Equal(pager.GroupBy, []string{"alertname"}) || pager.RepeatInterval != time.Hour {
		t.Errorf("pager %+v", pager)
	}
	if dbaProd.GroupWait != 10*time.Second || !slices.Equal(dbaProd.GroupBy, []string{"service.name"}) || dbaProd.GroupInterval != time.Minute || dba.GroupInterval != DefaultGroupInterval {
		t.Errorf("dba-prod %+v, dba %+v", dbaProd, dba)
	}
	if _, err := BuildRoute(RouteConfig{Receiver: "nope"}, []string{"default"}); err == nil {
		t.Error("unknown receiver accepted")
	}
}

func TestGroupLabels(t *testing.T) {
	l := map[string]string{"alertname": "A", "host.name": "n1", "severity": "x"}
	r := &Route{ID: "0", Receiver: "r", GroupBy: []string{"alertname", "service.environment"}}
	if g := r.groupLabels(l); len(g) != 1 || g["alertname"] != "A" {
		t.Errorf("group labels %v", g)
	}
	all := &Route{ID: "0", Receiver: "r", GroupBy: []string{"..."}}
	if g := all.groupLabels(l); len(g) != 3 {
		t.Errorf("group by ...: %v", g)
	}
	if groupKey(r, map[string]string{"b": "2", "a": "1"}) != `0:r:{a="1",b="2"}` {
		t.Errorf("group key %q", groupKey(r, map[string]string{"b": "2", "a": "1"}))
	}
}
