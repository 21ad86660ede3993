package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAggregatorAlerting(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	es := "sinks:\n  - type: elasticsearch\n    urls: [http://es:9200]\n    username: ferry\n    password_file: " + pw + "\n"
	contract := es + `alerting:
  rules_dir: /etc/ferry/rules
  interval: 30s
  delay: 0s
  builtin_rules: true
  elasticsearch: {}
  leader_election: { enabled: auto, namespace: "ns1", lease: ferry-alerting }
  kibana_url: ""
  receivers:
    - name: ops-slack
      slack: { webhook_url_file: /etc/ferry/slack-url }
    - name: ops-mail
      email: { smarthost: "mail:587", from: ferry@example.org, to: [ops@example.org], username: ferry, password_file: /etc/ferry/smtp-password }
    - name: hook
      webhook: { url: "http://127.0.0.1:9000/alerts" }
  route:
    receiver: ops-slack
    group_by: [alertname, service.environment]
    group_wait: 0s
    group_interval: 5m
    repeat_interval: 4h
    routes:
      - { matchers: ['severity="critical"'], receiver: ops-mail, continue: true }
`
	// The secret files of the contract, read at load time (config/notify.go).
	for name, content := range map[string]string{"slack-url": "https://hooks.slack.example/T/B/x\n", "smtp-password": "mailpw\n"} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		contract = strings.ReplaceAll(contract, "/etc/ferry/"+name, f)
	}
	for _, tc := range []struct {
		name, src string
		check     func(t *testing.T, a *Alerting)
		err       string
	}{
		{name: "absent", src: "", check: func(t *testing.T, a *Alerting) {
			if a != nil {
				t.Fatalf("alerting %+v, want nil", a)
			}
		}},
		{name: "the contract", src: contract, check: func(t *testing.T, a *Alerting) {
			if a.Delay != 0 || a.Interval != Duration(30*time.Second) || !a.BuiltinRulesOn() {
				t.Errorf("delay %s interval %s builtin %v", a.Delay, a.Interval, a.BuiltinRulesOn())
			}
			if e := a.Elasticsearch; len(e.URLs) != 1 || e.URLs[0] != "http://es:9200" || e.Username != "ferry" || e.Password != "s3cret" || e.StateIndex != "ferry-alerting-state" {
				t.Errorf("elasticsearch %+v: want the sink's connection", e)
			}
			if le := a.LeaderElection; le.Enabled != "auto" || le.Namespace != "ns1" || le.Lease != "ferry-alerting" {
				t.Errorf("leader_election %+v", le)
			}
			if len(a.Receivers) != 3 || a.Receivers[1].Email == nil || a.Receivers[1].Email.To[0] != "ops@example.org" {
				t.Errorf("receivers %+v", a.Receivers)
			}
			if r := a.Route; r == nil || r.GroupWait == nil || *r.GroupWait != 0 || r.RepeatInterval != Duration(4*time.Hour) || len(r.Routes) != 1 || !r.Routes[0].Continue {
				t.Errorf("route %+v", r)
			}
		}},
		{name: "defaults", src: es + "alerting:\n  rules_dir: /r\n", check: func(t *testing.T, a *Alerting) {
			if a.Delay != Duration(30*time.Second) || a.Interval != Duration(30*time.Second) || !a.BuiltinRulesOn() || a.LeaderElection.Lease != "ferry-alerting" {
				t.Errorf("got %+v", a)
			}
		}},
		{name: "own connection", src: "alerting:\n  rules_dir: /r\n  builtin_rules: false\n  elasticsearch: { urls: [\"https://other:9200\"], api_key: k }\n", check: func(t *testing.T, a *Alerting) {
			if a.Elasticsearch.URLs[0] != "https://other:9200" || a.Elasticsearch.APIKey != "k" || a.BuiltinRulesOn() {
				t.Errorf("got %+v", a)
			}
		}},
		{name: "no rules_dir", src: es + "alerting:\n  interval: 1m\n", err: "aggregator.yaml:6:1: alerting.rules_dir: required"},
		{name: "no elasticsearch", src: "alerting:\n  rules_dir: /r\n", err: "aggregator.yaml:1:1: alerting.elasticsearch.urls: required (there is no elasticsearch sink"},
		{name: "negative delay", src: es + "alerting:\n  rules_dir: /r\n  delay: -1s\n", err: "aggregator.yaml:8:3: alerting.delay: must not be negative"},
		{name: "short interval", src: es + "alerting:\n  rules_dir: /r\n  interval: 10ms\n", err: "aggregator.yaml:8:3: alerting.interval: must be at least 1s"},
		{name: "bad enabled", src: es + "alerting:\n  rules_dir: /r\n  leader_election: { enabled: yes }\n", err: "aggregator.yaml:8:22: alerting.leader_election.enabled:"},
		{name: "duplicate receiver", src: es + "alerting:\n  rules_dir: /r\n  receivers: [{name: a}, {name: a}]\n", err: "alerting.receivers[1].name: duplicate name \"a\""},
		{name: "typo", src: es + "alerting:\n  rules_dir: /r\n  rule_dir: /r\n", err: "aggregator.yaml:8:3: alerting.rule_dir: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseAggregator("aggregator.yaml", []byte(tc.src))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c.Alerting)
		})
	}
}
