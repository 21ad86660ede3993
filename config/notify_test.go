package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAggregatorAlertingNotify(t *testing.T) {
	dir := t.TempDir()
	slackURL := filepath.Join(dir, "slack-url")
	if err := os.WriteFile(slackURL, []byte("https://hooks.slack.example/T/B/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	head := "sinks:\n  - { type: elasticsearch, urls: [\"http://es:9200\"] }\nbuffer: { dir: " + dir + " }\nalerting:\n  rules_dir: /r\n"
	for _, tc := range []struct {
		name, src string
		check     func(t *testing.T, a *Alerting)
		errs      []string
	}{
		{name: "valid", src: `  receivers:
    - { name: s, slack: { webhook_url_file: ` + slackURL + ` } }
    - { name: m, email: { smarthost: "mail:465", from: f@example.org, to: [a@example.org, b@example.org] } }
    - { name: h, webhook: { url: "http://127.0.0.1:9/x" } }
  route:
    receiver: s
    routes:
      - { receiver: m, group_wait: 0s, matchers: ['severity=~"crit.*"'], routes: [ { receiver: h } ] }
      - { receiver: h }
`, check: func(t *testing.T, a *Alerting) {
			if a.Receivers[0].Slack.WebhookURL != "https://hooks.slack.example/T/B/x" {
				t.Errorf("webhook_url_file not read")
			}
			if a.Receivers[1].Email.TLS != "tls" {
				t.Errorf("tls %q: want implicit tls on port 465", a.Receivers[1].Email.TLS)
			}
			if a.OutboxDir != filepath.Join(dir, "alerting-outbox") {
				t.Errorf("outbox_dir %q", a.OutboxDir)
			}
			r := a.Route
			if *r.GroupWait != Duration(30*time.Second) || r.Routes[0].GroupWait == nil || *r.Routes[0].GroupWait != 0 || r.Routes[1].GroupWait != nil {
				t.Errorf("group_wait: root %v, routes[0] %v (0s given), routes[1] %v (inherited)", r.GroupWait, r.Routes[0].GroupWait, r.Routes[1].GroupWait)
			}
		}},
		{name: "bad", src: `  outbox_dir: /tmp/o
  receivers:
    - { name: s, slack: {} }
    - { name: m, email: { smarthost: mail, from: nobody, to: [], username: u, tls: ssl } }
    - { name: h, webhook: { url: "ftp://x" } }
    - { name: two, webhook: { url: "http://x" }, slack: { webhook_url: "http://y" } }
  route:
    receiver: nope
    group_interval: 0s
    routes:
      - { matchers: ['severity~"x"'], group_wait: -1s }
`, errs: []string{
			"alerting.receivers[0].slack.webhook_url: required (or webhook_url_file)",
			"alerting.receivers[1].email.smarthost: must be host:port",
			"alerting.receivers[1].email.from: must be an email address",
			"alerting.receivers[1].email.to: must name at least one recipient",
			"alerting.receivers[1].email.password: required with username",
			"alerting.receivers[1].email.tls: ",
			"alerting.receivers[2].webhook.url: must be an http:// or https:// URL",
			"alerting.receivers[3]: needs exactly one of slack, email, webhook, got 2",
			`alerting.route.receiver: no receiver is named "nope"`,
			"alerting.route.group_interval: must be at least 1s",
			"alerting.route.routes[0].matchers[0]: matcher",
			"alerting.route.routes[0].group_wait: must not be negative",
		}},
		{name: "receivers without route", src: "  receivers:\n    - { name: h, webhook: { url: \"http://x\" } }\n", errs: []string{"alerting.route: required when receivers are configured"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "aggregator.yaml")
			if err := os.WriteFile(f, []byte(head+tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadAggregator(f)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, cfg.Alerting)
				return
			}
			if err == nil {
				t.Fatal("loaded; want errors")
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("errors lack %q:\n%v", want, err)
				}
			}
		})
	}
}
