package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/alerting/notify"
	"github.com/ferrylogs/ferry/test/harness"
)

// alertingConfig writes an aggregator configuration with an alerting block
// whose one receiver, hook, posts to hookURL.
func alertingConfig(t *testing.T, esURL, hookURL string) string {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(dir, "aggregator.yaml")
	src := `sinks:
  - { type: elasticsearch, urls: ["` + esURL + `"] }
buffer: { dir: ` + dir + ` }
alerting:
  rules_dir: ` + t.TempDir() + `
  receivers:
    - { name: hook, webhook: { url: "` + hookURL + `" } }
  route: { receiver: hook }
`
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNotifyTestCommand(t *testing.T) {
	var mu sync.Mutex
	var got []notify.WebhookMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m notify.WebhookMessage
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		_, _ = io.WriteString(w, "received, thanks")
	}))
	defer srv.Close()
	cfgFile := alertingConfig(t, "http://127.0.0.1:1", srv.URL+"/alerts")
	cfg, err := loadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := sendTestNotice(context.Background(), cfg, "hook", time.Now())
	if err != nil || answer != "200 OK: received, thanks" {
		t.Fatalf("answer %q, err %v: want the receiver's answer", answer, err)
	}
	if len(got) != 1 || got[0].Version != "4" || got[0].Status != "firing" || got[0].Alerts[0].Labels["alertname"] != "FerryTestNotice" {
		t.Errorf("received %+v", got)
	}
	if code := notifyCmd([]string{"test", "hook", "--config", cfgFile}); code != 0 {
		t.Errorf("notify test hook: exit %d", code)
	}
	if code := notifyCmd([]string{"test", "--config", cfgFile, "nope"}); code != 1 {
		t.Errorf("notify test nope: exit %d, want 1", code)
	}
	if len(got) != 2 {
		t.Errorf("%d notices received, want 2", len(got))
	}
}

func TestSilenceCommand(t *testing.T) {
	es := harness.ESURL(t)
	cfgFile := alertingConfig(t, es, "http://127.0.0.1:1/")
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	runCmd := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := silenceRun(ctx, args, &out, &errb, clock); code != want {
			t.Fatalf("silence %v: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	comment := "test " + t.Name() + " " + now.Format(time.RFC3339Nano)
	id := strings.TrimSpace(runCmd(0, "add", "--config", cfgFile, `severity="warning"`, `service.name=~"api.*"`, "--duration", "1h", "--comment", comment))
	if len(id) != 16 {
		t.Fatalf("add printed %q: want the new silence's ID", id)
	}
	list := runCmd(0, "list", "--config", cfgFile)
	if !strings.Contains(list, id+"  active") || !strings.Contains(list, `severity="warning",service.name=~"api.*"`) {
		t.Errorf("list:\n%s", list)
	}
	now = now.Add(time.Minute)
	if out := runCmd(0, "expire", "--config", cfgFile, id); !strings.Contains(out, id+" expired at") {
		t.Errorf("expire: %s", out)
	}
	if list := runCmd(0, "list", "--config", cfgFile); strings.Contains(list, id) {
		t.Errorf("expired silence listed without --all:\n%s", list)
	}
	if list := runCmd(0, "list", "--all", "--config", cfgFile); !strings.Contains(list, id+"  expired") {
		t.Errorf("list --all:\n%s", list)
	}
	runCmd(1, "add", "--config", cfgFile, `severity~"x"`)
	runCmd(1, "expire", "--config", cfgFile, "0000000000000000")
	runCmd(2, "frobnicate", "--config", cfgFile)
}
