package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// alertHook is a webhook receiver that keeps every alert it was sent, as
// "status alertname/fingerprint".
type alertHook struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string
}

func newAlertHook(t *testing.T) *alertHook {
	h := &alertHook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Alerts []struct {
				Status      string            `json:"status"`
				Labels      map[string]string `json:"labels"`
				Fingerprint string            `json:"fingerprint"`
			} `json:"alerts"`
		}
		_ = json.NewDecoder(r.Body).Decode(&m)
		h.mu.Lock()
		for _, a := range m.Alerts {
			h.got = append(h.got, a.Status+" "+a.Labels["alertname"]+"/"+a.Fingerprint)
		}
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *alertHook) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, g := range h.got {
		if strings.HasPrefix(g, prefix) {
			n++
		}
	}
	return n
}

func (h *alertHook) all() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.got, "\n")
}

// esDo sends a JSON request to the shared Elasticsearch.
func esDo(t *testing.T, method, url, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %s", method, url, res.Status)
	}
}

// alertingFixture is a temporary index holding an error burst, a rule
// over it, and the aggregator configuration of one replica. The burst's
// service is named after the fixture: the notification log is shared in
// Elasticsearch, so labels must not repeat from one run to the next.
type alertingFixture struct {
	es, index, rulesDir, state string
}

func newAlertingFixture(t *testing.T) *alertingFixture {
	es := harness.ESURL(t)
	var b [4]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	f := &alertingFixture{es: es, index: "ferry-e2e-alerting-" + id, rulesDir: t.TempDir(), state: "ferry-e2e-alerting-state-" + id}
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, es+"/"+f.index+","+f.state, nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	})
	var bulk bytes.Buffer
	now := time.Now().UTC()
	for i := range 20 {
		fmt.Fprintf(&bulk, "{\"create\":{}}\n{\"@timestamp\":%q,\"message\":\"ERROR boom\",\"service\":{\"name\":%q}}\n", now.Add(-time.Duration(i)*time.Second).Format(time.RFC3339Nano), "api-"+id)
	}
	esDo(t, http.MethodPut, es+"/"+f.index, `{"mappings":{"properties":{"@timestamp":{"type":"date_nanos"},"service":{"properties":{"name":{"type":"keyword"}}}}}}`)
	esDo(t, http.MethodPost, es+"/"+f.index+"/_bulk?refresh=true", bulk.String())
	harness.WriteFile(t, filepath.Join(f.rulesDir, "burst.yaml"), `rules:
  - name: Burst
    type: frequency
    index: `+f.index+`
    group_by: [service.name]
    window: 10m
    min_count: 10
    severity: critical
`)
	return f
}

// end makes the burst end: its index is deleted.
func (f *alertingFixture) end(t *testing.T) {
	esDo(t, http.MethodDelete, f.es+"/"+f.index, "")
}

// config writes one replica's configuration; extra is appended to its
// alerting block.
func (f *alertingFixture) config(t *testing.T, dir, hook, extra string) (path, httpAddr string) {
	httpAddr = harness.FreePort(t)
	path = filepath.Join(dir, "aggregator.yaml")
	harness.WriteFile(t, path, `listen: `+harness.FreePort(t)+`
http: `+httpAddr+`
sinks: [ { type: file, path: `+filepath.Join(dir, "out.ndjson")+` } ]
buffer: { dir: `+filepath.Join(dir, "buffer")+` }
alerting:
  rules_dir: `+f.rulesDir+`
  interval: 1s
  delay: 0s
  builtin_rules: false
  elasticsearch: { urls: ["`+f.es+`"], state_index: `+f.state+` }
  receivers:
    - { name: hook, webhook: { url: "`+hook+`/alerts" } }
  route: { receiver: hook, group_by: [alertname, service.name], group_wait: 0s, group_interval: 1s, repeat_interval: 1h }
`+extra)
	return path, httpAddr
}

// evaluations returns the replica's ferry_alerting_evaluations_total.
func evaluations(addr string) uint64 {
	n, _ := harness.Stat(addr, "ferry_alerting_evaluations_total")
	return n
}

// TestAlertingSurvivesSIGKILL: the evaluator is killed with SIGKILL while an
// alert fires; after the restart no second firing notice comes, and when
// the condition ends while it is down again, the resolved notice still
// comes after the next restart.
func TestAlertingSurvivesSIGKILL(t *testing.T) {
	f := newAlertingFixture(t)
	hook := newAlertHook(t)
	dir := t.TempDir()
	cfg, addr := f.config(t, dir, hook.srv.URL, "  leader_election: { enabled: false }\n")
	agg := harness.StartProc(t, dir, "aggregator", "--config", cfg)
	harness.LogTailsOnFailure(t, agg)
	harness.WaitFor(t, 30*time.Second, "the firing notice", func() bool { return hook.count("firing Burst/") == 1 })
	// Delivery is at least once: a notice the receiver got but the outbox
	// had not yet recorded as sent comes again after a crash. Kill once the
	// outbox is empty, so a second notice could only come from the state.
	harness.WaitFor(t, 30*time.Second, "the outbox to record the notice as sent", func() bool {
		n, err := harness.Stat(addr, "ferry_aggregator_alert_outbox_pending")
		return err == nil && n == 0
	})
	agg.Kill9()
	agg.Start()
	harness.WaitFor(t, 30*time.Second, "three evaluations after the restart", func() bool { return evaluations(addr) >= 3 })
	if n := hook.count("firing Burst/"); n != 1 {
		t.Fatalf("%d firing notices, want 1:\n%s", n, hook.all())
	}
	// Killed again; the burst ends while no evaluator runs: the restarted
	// one knows the alert fired (from its state) and resolves it.
	agg.Kill9()
	f.end(t)
	agg.Start()
	harness.WaitFor(t, 30*time.Second, "the resolved notice", func() bool { return hook.count("resolved Burst/") == 1 })
	if n := hook.count("firing Burst/"); n != 1 {
		t.Errorf("%d firing notices, want 1:\n%s", n, hook.all())
	}
}

// TestAlertingLeaderElection: two aggregators share one Lease on the real
// API server: only one notifies; the leader is killed, the other takes over
// without a second firing notice and sends the resolved one.
func TestAlertingLeaderElection(t *testing.T) {
	api := harness.SharedKube(t)
	f := newAlertingFixture(t)
	hook := newAlertHook(t)
	var b [4]byte
	rand.Read(b[:])
	lease := "ferry-e2e-alerting-" + hex.EncodeToString(b[:])
	var procs [2]*harness.Proc
	var addrs [2]string
	for i := range procs {
		dir := t.TempDir()
		extra := fmt.Sprintf("  leader_election: { enabled: \"true\", kubeconfig: %s, namespace: default, lease: %s, identity: replica-%d, lease_duration: 3s, renew_deadline: 2s, retry_period: 200ms }\n",
			api.Kubeconfig, lease, i)
		var cfg string
		cfg, addrs[i] = f.config(t, dir, hook.srv.URL, extra)
		procs[i] = harness.StartProc(t, dir, "aggregator", "--config", cfg)
	}
	harness.LogTailsOnFailure(t, procs[0], procs[1])
	harness.WaitFor(t, 30*time.Second, "the firing notice", func() bool { return hook.count("firing Burst/") >= 1 })
	leader := -1
	harness.WaitFor(t, 10*time.Second, "one replica evaluating", func() bool {
		e0, e1 := evaluations(addrs[0]), evaluations(addrs[1])
		switch {
		case e0 > 0 && e1 == 0:
			leader = 0
		case e1 > 0 && e0 == 0:
			leader = 1
		}
		return leader >= 0
	})
	other := 1 - leader
	before := evaluations(addrs[leader])
	harness.WaitFor(t, 10*time.Second, "more evaluations by the leader", func() bool { return evaluations(addrs[leader]) >= before+3 })
	if e := evaluations(addrs[other]); e != 0 {
		t.Fatalf("the other replica evaluated %d times while the leader led", e)
	}
	procs[leader].Kill9()
	harness.WaitFor(t, 30*time.Second, "the other replica to take over", func() bool { return evaluations(addrs[other]) >= 3 })
	if n := hook.count("firing Burst/"); n != 1 {
		t.Fatalf("%d firing notices, want 1:\n%s", n, hook.all())
	}
	f.end(t)
	harness.WaitFor(t, 30*time.Second, "the resolved notice from the new leader", func() bool { return hook.count("resolved Burst/") == 1 })
}
