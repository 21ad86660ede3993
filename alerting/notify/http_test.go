package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
)

// capture is a loopback receiver: it keeps each request body and answers
// with the next of its scripted answers (then 200).
type capture struct {
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	answers []func(w http.ResponseWriter)
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies = append(c.bodies, b)
	c.headers = append(c.headers, r.Header.Clone())
	var answer func(http.ResponseWriter)
	if len(c.answers) > 0 {
		answer, c.answers = c.answers[0], c.answers[1:]
	}
	c.mu.Unlock()
	if answer != nil {
		answer(w)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func (c *capture) count() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.bodies) }

func testAlert() alert.Alert {
	return alert.Alert{
		Labels:      map[string]string{"alertname": "HighCPU", "host.name": "node-1", "severity": "critical"},
		Annotations: map[string]string{"summary": "CPU 97% on node-1"},
		State:       alert.Firing, Value: 0.97,
		StartsAt:     time.Date(2026, 3, 1, 11, 50, 0, 0, time.UTC),
		GeneratorURL: "http://kibana:5601/app/discover#/?_g=(time:(from:now-5m))",
		Evidence: alert.Evidence{
			TopContributors: []alert.Count{{Key: "web-7f9", Value: 0.61}, {Key: "db-0\nsecond line", Value: 0.2}},
			TopMessages:     []alert.Count{{Key: "OOM killed <pid>", Count: 12}},
			ErrorLines:      40,
		},
	}
}

func TestWebhookPayload(t *testing.T) {
	c := &capture{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	a := testAlert()
	r := a
	r.Labels = map[string]string{"alertname": "HighCPU", "host.name": "node-2", "severity": "critical"}
	r.Annotations = map[string]string{"summary": "CPU 91% on node-2"}
	r.State, r.EndsAt, r.GeneratorURL = alert.Resolved, time.Date(2026, 3, 1, 11, 55, 0, 0, time.UTC), ""
	n := &Notice{ID: "id1", Receiver: "hook", GroupKey: `0:hook:{alertname="HighCPU"}`, GroupLabels: map[string]string{"alertname": "HighCPU"},
		Status: "firing", Alerts: []alert.Alert{a, r}, ExternalURL: "http://aggregator:8082"}
	w := &Webhook{URL: srv.URL + "/alerts", BearerToken: "tok"}
	answer, err := w.Send(context.Background(), n)
	if err != nil || answer != "200 OK: ok" {
		t.Fatalf("answer %q, err %v", answer, err)
	}
	if got := c.headers[0].Get("Authorization"); got != "Bearer tok" {
		t.Errorf("authorization %q", got)
	}
	if got := c.headers[0].Get("Content-Type"); got != "application/json" {
		t.Errorf("content type %q", got)
	}
	var got map[string]any
	if err := json.Unmarshal(c.bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version": "4", "groupKey": `0:hook:{alertname="HighCPU"}`, "truncatedAlerts": 0.0, "status": "firing", "receiver": "hook",
		"groupLabels":       map[string]any{"alertname": "HighCPU"},
		"commonLabels":      map[string]any{"alertname": "HighCPU", "severity": "critical"},
		"commonAnnotations": map[string]any{},
		"externalURL":       "http://aggregator:8082",
		"alerts": []any{
			map[string]any{"status": "firing", "labels": map[string]any{"alertname": "HighCPU", "host.name": "node-1", "severity": "critical"},
				"annotations": map[string]any{"summary": "CPU 97% on node-1"}, "startsAt": "2026-03-01T11:50:00Z", "endsAt": "0001-01-01T00:00:00Z",
				"generatorURL": "http://kibana:5601/app/discover#/?_g=(time:(from:now-5m))", "fingerprint": a.Fingerprint()},
			map[string]any{"status": "resolved", "labels": map[string]any{"alertname": "HighCPU", "host.name": "node-2", "severity": "critical"},
				"annotations": map[string]any{"summary": "CPU 91% on node-2"}, "startsAt": "2026-03-01T11:50:00Z", "endsAt": "2026-03-01T11:55:00Z",
				"generatorURL": "", "fingerprint": r.Fingerprint()},
		},
	}
	if !reflect.DeepEqual(got, want) {
		gb, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("payload:\n%s", gb)
	}
}

func TestSlackPayload(t *testing.T) {
	c := &capture{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	n := &Notice{ID: "id1", Receiver: "slack", GroupLabels: map[string]string{"alertname": "HighCPU", "host.name": "node-1"}, Status: "firing", Alerts: []alert.Alert{testAlert()}}
	s := &Slack{WebhookURL: srv.URL + "/services/T/B/x", Channel: "#ops"}
	if _, err := s.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Text        string           `json:"text"`
		Channel     string           `json:"channel"`
		Blocks      []map[string]any `json:"blocks"`
		Attachments []struct {
			Color    string           `json:"color"`
			Fallback string           `json:"fallback"`
			Blocks   []map[string]any `json:"blocks"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(c.bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	if got.Text != "[FIRING:1] HighCPU (node-1)" || got.Channel != "#ops" {
		t.Errorf("text %q channel %q", got.Text, got.Channel)
	}
	if len(got.Blocks) != 1 || got.Blocks[0]["type"] != "header" {
		t.Errorf("blocks %v: want the header", got.Blocks)
	}
	if len(got.Attachments) != 1 || got.Attachments[0].Color != "#d00000" || got.Attachments[0].Fallback != got.Text {
		t.Fatalf("attachments %+v: want one, red for critical", got.Attachments)
	}
	body, _ := json.Marshal(got.Attachments[0].Blocks)
	for _, want := range []string{
		`*FIRING* CPU 97% on node-1`,
		"`host.name=node-1`",
		`Top messages:\n  12 × OOM killed \u0026lt;pid\u0026gt;`, // escaped for Slack
		`  db-0…: 0.2`,                                           // cut to one line
		`Error lines in the window: 40`,
		`"url":"http://kibana:5601/app/discover#/?_g=(time:(from:now-5m))"`,
		`"type":"button"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("attachment blocks lack %s:\n%s", want, body)
		}
	}
	// Resolved: green.
	n.Status = "resolved"
	n.Alerts[0].State = alert.Resolved
	if _, err := s.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(c.bodies[1]), `"color":"#2eb886"`) {
		t.Errorf("resolved colour: %s", c.bodies[1])
	}
}

// TestRetryAfter: a receiver answering 429 with Retry-After is tried again
// exactly when it asked, not before; a 5xx without it after the backoff; a
// 4xx is not tried again.
func TestRetryAfter(t *testing.T) {
	c := &capture{answers: []func(http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		},
		func(w http.ResponseWriter) { http.Error(w, "oops", http.StatusBadGateway) },
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	clock := newClock()
	root, _ := BuildRoute(RouteConfig{Receiver: "hook", GroupBy: []string{"alertname"}, GroupWait: dur(0)}, []string{"hook"})
	d, err := New(context.Background(), Options{Route: root, OutboxDir: filepath.Join(t.TempDir(), "o"), Now: clock.Now,
		Notifiers: map[string]Notifier{"hook": &Webhook{URL: srv.URL, Now: clock.Now}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m0 := map[string]uint64{}
	d.Stats(m0)
	if v, ok := m0[`ferry_aggregator_alert_notices_total{receiver="hook",result="expired"}`]; !ok || v != 0 {
		t.Errorf("stats before any notice %v: want every series at 0", m0)
	}
	t0 := clock.Now()
	if err := d.Notify(ctx, []alert.Alert{testAlert()}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		at   time.Duration
		hits int
	}{
		{0, 1},               // 429, Retry-After: 7
		{6 * time.Second, 1}, // not before
		{7 * time.Second, 2}, // 502, no Retry-After: backoff 2s (second attempt)
		{8 * time.Second, 2},
		{9 * time.Second, 3}, // delivered
		{60 * time.Second, 3},
	} {
		clock.Set(t0.Add(s.at))
		d.Deliver(ctx)
		if c.count() != s.hits {
			t.Fatalf("at +%s: %d requests, want %d", s.at, c.count(), s.hits)
		}
	}
	m := map[string]uint64{}
	d.Stats(m)
	if m[`ferry_aggregator_alert_notices_total{receiver="hook",result="retry"}`] != 2 || m[`ferry_aggregator_alert_notices_total{receiver="hook",result="sent"}`] != 1 || m["ferry_aggregator_alert_outbox_pending"] != 0 {
		t.Errorf("stats %v", m)
	}

	// 400: dropped at once, counted failed.
	c.answers = []func(http.ResponseWriter){func(w http.ResponseWriter) { http.Error(w, "bad payload", http.StatusBadRequest) }}
	b := testAlert()
	b.Labels = map[string]string{"alertname": "Other"}
	if err := d.Notify(ctx, []alert.Alert{b}); err != nil {
		t.Fatal(err)
	}
	d.Deliver(ctx)
	clock.Set(clock.Now().Add(time.Hour))
	d.Deliver(ctx)
	if c.count() != 4 || d.Count("hook", "failed") != 1 {
		t.Errorf("after a 400: %d requests, failed %d: want one attempt, counted failed", c.count(), d.Count("hook", "failed"))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{"": 0, "7": 7 * time.Second, "x": 0, "-1": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
	if !slices.Contains([]string{oneLine("a\nb", 10)}, "a…") || oneLine("abcdef", 3) != "abc…" {
		t.Error("oneLine")
	}
}
