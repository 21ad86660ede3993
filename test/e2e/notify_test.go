package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// TestAlertingNotifyCLIAndAPI runs the real aggregator with an alerting
// block (issue 18, notify side): silences added over its HTTP API are seen
// by `aggregator silence list` (both go through Elasticsearch), `silence
// expire` ends them for the API too, `notify test` sends a real notice to a
// webhook and prints its answer, and /metrics exports the notice counters.
func TestAlertingNotifyCLIAndAPI(t *testing.T) {
	es := harness.ESURL(t)
	var mu sync.Mutex
	var hooks []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		hooks = append(hooks, m)
		mu.Unlock()
		_, _ = io.WriteString(w, "got it")
	}))
	defer hook.Close()

	dir, rulesDir := t.TempDir(), t.TempDir() // no rules: the notify side alone
	httpAddr := harness.FreePort(t)
	cfg := filepath.Join(dir, "aggregator.yaml")
	src := `listen: ` + harness.FreePort(t) + `
http: ` + httpAddr + `
sinks: [ { type: file, path: ` + filepath.Join(dir, "out.ndjson") + ` } ]
buffer: { dir: ` + filepath.Join(dir, "buffer") + ` }
alerting:
  rules_dir: ` + rulesDir + `
  builtin_rules: false           # no alert from the shared Elasticsearch's history
  elasticsearch: { urls: ["` + es + `"] }
  receivers:
    - { name: hook, webhook: { url: "` + hook.URL + `/alerts" } }
  route: { receiver: hook, group_wait: 0s }
`
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(harness.BinDir(t), "aggregator")
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(args, "--config", cfg)...).CombinedOutput()
		if err != nil {
			t.Fatalf("aggregator %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := cli("validate"); !strings.Contains(out, ": ok") {
		t.Fatalf("validate: %s", out)
	}
	agg := harness.StartProc(t, dir, "aggregator", "--config", cfg)
	if !harness.Poll(30*time.Second, 50*time.Millisecond, func() bool { _, err := harness.HTTPGet(httpAddr, "/healthz"); return err == nil }) {
		t.Fatalf("aggregator /healthz not answering after 30s:\n%s", agg.LogTail())
	}

	// A silence over HTTP, listed by the CLI.
	comment := "e2e " + time.Now().Format(time.RFC3339Nano)
	res, err := http.Post("http://"+httpAddr+"/api/silences", "application/json",
		strings.NewReader(`{"matchers":["alertname=\"Noisy\""],"duration":"1h","created_by":"e2e","comment":"`+comment+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID     string `json:"id"`
		Active bool   `json:"active"`
	}
	_ = json.NewDecoder(res.Body).Decode(&created)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || !created.Active || created.ID == "" {
		t.Fatalf("POST /api/silences: %d %+v\n%s", res.StatusCode, created, agg.LogTail())
	}
	if out := cli("silence", "list"); !strings.Contains(out, created.ID+"  active") || !strings.Contains(out, comment) {
		t.Errorf("silence list lacks the silence added over HTTP:\n%s", out)
	}
	// Expired by the CLI, inactive for the API.
	if out := cli("silence", "expire", created.ID); !strings.Contains(out, created.ID+" expired at") {
		t.Errorf("silence expire: %s", out)
	}
	body, err := harness.HTTPGet(httpAddr, "/api/silences")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		ID     string `json:"id"`
		Active bool   `json:"active"`
	}
	_ = json.Unmarshal(body, &list)
	found := false
	for _, s := range list {
		if s.ID == created.ID {
			found = true
			if s.Active {
				t.Errorf("silence %s still active after expire", s.ID)
			}
		}
	}
	if !found {
		t.Errorf("GET /api/silences lacks %s: %s", created.ID, body)
	}

	// notify test: one real notice, the receiver's answer printed.
	if out := cli("notify", "test", "hook"); strings.TrimSpace(out) != "hook: 200 OK: got it" {
		t.Errorf("notify test: %q", out)
	}
	mu.Lock()
	if len(hooks) != 1 || hooks[0]["version"] != "4" || hooks[0]["receiver"] != "hook" {
		t.Errorf("webhook received %v", hooks)
	}
	mu.Unlock()

	metrics, err := harness.HTTPGet(httpAddr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# TYPE ferry_aggregator_alert_notices_total counter\n", `ferry_aggregator_alert_notices_total{receiver="hook",result="sent"} 0`, "ferry_aggregator_alert_outbox_pending 0"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestAlertingNotifyTestEmail: `aggregator notify test` with an email
// receiver as configured (password_file, ca_file, STARTTLS by default)
// delivers to a real SMTP server (aiosmtpd) over STARTTLS with AUTH, and
// prints the server's answer.
func TestAlertingNotifyTestEmail(t *testing.T) {
	srv := harness.StartSMTP(t, "starttls")
	dir := t.TempDir()
	pw := filepath.Join(dir, "smtp-password")
	if err := os.WriteFile(pw, []byte(srv.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "aggregator.yaml")
	src := `alerting:
  rules_dir: ` + t.TempDir() + `
  elasticsearch: { urls: ["http://127.0.0.1:1"] }
  receivers:
    - name: ops-mail
      email: { smarthost: "` + srv.Addr + `", from: "Ferry <ferry@example.org>", to: [ops@example.org, oncall@example.org], username: ` + srv.User + `, password_file: ` + pw + `, ca_file: ` + srv.CAFile + ` }
  route: { receiver: ops-mail }
`
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(harness.BinDir(t), "aggregator"), "notify", "test", "ops-mail", "--config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("notify test ops-mail: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "ops-mail: 250 Message accepted for delivery as 1") {
		t.Errorf("printed %q: want the server's answer", out)
	}
	m := srv.Message(t, 1)
	if !m.TLS || m.Auth != "PLAIN" || m.MailFrom != "ferry@example.org" || strings.Join(m.RcptTos, ",") != "ops@example.org,oncall@example.org" {
		t.Errorf("session tls=%v auth=%q from %q to %v", m.TLS, m.Auth, m.MailFrom, m.RcptTos)
	}
	if s := m.Msg.Header.Get("Subject"); s != "[FIRING:1] FerryTestNotice" {
		t.Errorf("subject %q", s)
	}
	if id := m.Msg.Header.Get("Message-Id"); !strings.HasPrefix(id, "<ferry-test-") || !strings.HasSuffix(id, "@example.org>") {
		t.Errorf("Message-Id %q", id)
	}
}

// TestAlertingKilledWhileFiring: the aggregator is SIGKILLed while an
// alert fires; after the restart its receiver gets no second "firing"
// notice (the notification log in Elasticsearch), and the resolved notice
// still comes once the condition clears.
func TestAlertingKilledWhileFiring(t *testing.T) {
	es := harness.ESURL(t)
	index := "ferry-e2e-notify-" + strings.ToLower(strconv.FormatInt(time.Now().UnixNano(), 36))
	t.Cleanup(func() { notifyES(t, es, "DELETE", "/"+index+","+index+"-state", "") })
	var mu sync.Mutex
	var notices []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		if gl, _ := m["groupLabels"].(map[string]any); gl["run"] != index {
			return // not this run's group
		}
		mu.Lock()
		notices = append(notices, m)
		mu.Unlock()
	}))
	defer hook.Close()
	statuses := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, n := range notices {
			out = append(out, n["status"].(string))
		}
		return out
	}

	dir, rulesDir := t.TempDir(), t.TempDir()
	harness.WriteFile(t, filepath.Join(rulesDir, "rules.yaml"), `rules:
  - name: E2EErrors
    type: frequency
    index: "`+index+`"
    filter: { match: { message: "ERROR" } }
    window: 1m
    min_count: 1
    labels: { run: "`+index+`" }   # alert state and notification log outlive a run: one identity per run
`)
	httpAddr := harness.FreePort(t)
	cfg := filepath.Join(dir, "aggregator.yaml")
	harness.WriteFile(t, cfg, `listen: `+harness.FreePort(t)+`
http: `+httpAddr+`
sinks: [ { type: file, path: `+filepath.Join(dir, "out.ndjson")+` } ]
buffer: { dir: `+filepath.Join(dir, "buffer")+` }
alerting:
  rules_dir: `+rulesDir+`
  interval: 1s
  delay: 0s
  builtin_rules: false
  elasticsearch: { urls: ["`+es+`"], state_index: "`+index+`-state" }
  receivers:
    - { name: hook, webhook: { url: "`+hook.URL+`" } }
  route: { receiver: hook, group_by: [alertname, run], group_wait: 0s, group_interval: 1s, repeat_interval: 1h }
`)
	now := time.Now().UTC()
	for i := range 3 {
		notifyES(t, es, "PUT", fmt.Sprintf("/%s/_doc/e%d?refresh=true", index, i), fmt.Sprintf(`{"@timestamp":%q,"message":"ERROR %d"}`, now.Add(-5*time.Second).Format(time.RFC3339Nano), i))
	}
	agg := harness.StartProc(t, dir, "aggregator", "--config", cfg)
	if !harness.Poll(30*time.Second, 50*time.Millisecond, func() bool { return len(statuses()) >= 1 }) {
		t.Fatalf("no firing notice within 30s:\n%s", agg.LogTail())
	}
	if s := statuses(); len(s) != 1 || s[0] != "firing" {
		t.Fatalf("notices %v: want one firing", s)
	}
	// Delivery is at least once: a notice the receiver got but the outbox
	// has not yet recorded as sent is sent again after a kill. Kill once
	// the outbox is empty, so a second notice could only come from the state.
	harness.WaitFor(t, 30*time.Second, "the outbox to record the notice as sent", func() bool {
		n, err := harness.Stat(httpAddr, "ferry_aggregator_alert_outbox_pending")
		return err == nil && n == 0
	})
	agg.Kill9()
	agg.Start()
	// Several evaluations of the restarted aggregator, each handing the
	// still firing alert to its dispatcher.
	harness.WaitFor(t, 30*time.Second, "3 evaluations after the restart", func() bool {
		n, err := harness.Stat(httpAddr, "ferry_alerting_evaluations_total")
		return err == nil && n >= 3
	})
	if s := statuses(); len(s) != 1 {
		t.Fatalf("notices after the restart %v: want no second firing notice", s)
	}
	for i := range 3 { // the condition clears (no _delete_by_query in the test distribution)
		notifyES(t, es, "DELETE", fmt.Sprintf("/%s/_doc/e%d?refresh=true", index, i), "")
	}
	if !harness.Poll(30*time.Second, 50*time.Millisecond, func() bool { return len(statuses()) >= 2 }) {
		t.Fatalf("no resolved notice within 30s of the condition clearing:\n%s", agg.LogTail())
	}
	if s := statuses(); len(s) != 2 || s[1] != "resolved" {
		b, _ := json.Marshal(notices)
		t.Errorf("notices %v: want firing, then resolved\n%s\n%s", s, b, agg.LogTail())
	}
}

// notifyES sends one request to Elasticsearch; the test fails on an error
// status.
func notifyES(t *testing.T, es, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, es+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 && !(method == "DELETE" && res.StatusCode == http.StatusNotFound) {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
}
