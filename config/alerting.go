package config

import (
	"fmt"
	"time"
)

// Alerting configures the aggregator's alerting: rules evaluated over
// Elasticsearch (alerting/eval) and notices routed to receivers
// (alerting/notify). Absent (nil): no alerting.
type Alerting struct {
	// RulesDir holds the rule files (*.yml, *.yaml); required.
	RulesDir string `yaml:"rules_dir"`
	// Interval between two evaluations of every rule; >= 1s, default 30s.
	Interval Duration `yaml:"interval"`
	// Delay: a rule's window ends this long before now, so that late
	// documents are counted; >= 0, default 30s.
	Delay Duration `yaml:"delay"`
	// BuiltinRules turns on the rules "Elasticsearch unreachable" and
	// "agent absent"; default true.
	BuiltinRules *bool `yaml:"builtin_rules"`
	// Elasticsearch is where rules query and where alert state is kept;
	// default: the connection of the first elasticsearch sink.
	Elasticsearch AlertingElasticsearch `yaml:"elasticsearch"`
	// LeaderElection makes one aggregator replica evaluate.
	LeaderElection LeaderElection `yaml:"leader_election"`
	// KibanaURL is the base of the Discover links in notices (empty: none).
	KibanaURL string `yaml:"kibana_url"`
	// Receivers and Route are the notify side (alerting/notify).
	Receivers []Receiver `yaml:"receivers"`
	Route     *Route     `yaml:"route"`
	// OutboxDir keeps the notices not yet delivered and what each group
	// was told, across restarts; default <buffer.dir>/alerting-outbox.
	OutboxDir string `yaml:"outbox_dir"`
}

// BuiltinRulesOn reports whether the built-in rules run.
func (a *Alerting) BuiltinRulesOn() bool { return a.BuiltinRules == nil || *a.BuiltinRules }

// AlertingElasticsearch is the connection the evaluator queries with.
type AlertingElasticsearch struct {
	URLs          []string `yaml:"urls"`
	Username      string   `yaml:"username"`
	Password      string   `yaml:"password"`
	PasswordFile  string   `yaml:"password_file"` // read at load time into Password
	APIKey        string   `yaml:"api_key"`
	APIKeyFile    string   `yaml:"api_key_file"` // read at load time into APIKey
	CAFile        string   `yaml:"ca_file"`
	TLSSkipVerify bool     `yaml:"tls_skip_verify"`
	// StateIndex is the index of Ferry's own that keeps alert state;
	// default "ferry-alerting-state".
	StateIndex string `yaml:"state_index"`
}

// LeaderElection configures the Kubernetes Lease that picks the one
// evaluating replica.
type LeaderElection struct {
	// Enabled: auto (default) elects through the API server when the
	// aggregator runs in a cluster or kubeconfig is set, and evaluates
	// alone otherwise; true requires the API server; false never elects.
	Enabled    string `yaml:"enabled"`
	Namespace  string `yaml:"namespace"`  // default $POD_NAMESPACE, else "default"
	Lease      string `yaml:"lease"`      // default "ferry-alerting"
	Kubeconfig string `yaml:"kubeconfig"` // empty: in-cluster service account
	// Identity names this replica in the Lease; default $POD_NAME, else
	// the host name.
	Identity string `yaml:"identity"`
	// LeaseDuration, RenewDeadline and RetryPeriod as in client-go's
	// leaderelection; defaults 15s, 10s, 2s.
	LeaseDuration Duration `yaml:"lease_duration"`
	RenewDeadline Duration `yaml:"renew_deadline"`
	RetryPeriod   Duration `yaml:"retry_period"`
}

// Receiver is one destination of notices; exactly one of Slack, Email,
// Webhook (validated in detail with the notify side).
type Receiver struct {
	Name    string           `yaml:"name"`
	Slack   *SlackReceiver   `yaml:"slack"`
	Email   *EmailReceiver   `yaml:"email"`
	Webhook *WebhookReceiver `yaml:"webhook"`
}

// SlackReceiver posts to a Slack incoming webhook.
type SlackReceiver struct {
	WebhookURL     Secret `yaml:"webhook_url"`
	WebhookURLFile string `yaml:"webhook_url_file"`
	Channel        string `yaml:"channel"`
}

// EmailReceiver sends mail over SMTP.
type EmailReceiver struct {
	Smarthost    string   `yaml:"smarthost"` // host:port
	From         string   `yaml:"from"`
	To           []string `yaml:"to"`
	Username     string   `yaml:"username"`
	Password     Secret   `yaml:"password"`
	PasswordFile string   `yaml:"password_file"`
	// TLS: starttls (default; implicit tls on port 465), tls, none.
	TLS                string `yaml:"tls"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	CAFile             string `yaml:"ca_file"`
}

// WebhookReceiver posts Alertmanager's webhook payload.
type WebhookReceiver struct {
	URL         string `yaml:"url"`
	BearerToken Secret `yaml:"bearer_token"`
}

// Route is a node of the route tree, as in Alertmanager. Durations left
// at zero and not given in the file are inherited from the parent (the
// root's defaults: group_wait 30s, group_interval 5m, repeat_interval 4h).
type Route struct {
	Receiver       string    `yaml:"receiver"`
	GroupBy        []string  `yaml:"group_by"`
	GroupWait      *Duration `yaml:"group_wait"` // nil: inherited; 0s allowed
	GroupInterval  Duration  `yaml:"group_interval"`
	RepeatInterval Duration  `yaml:"repeat_interval"`
	Matchers       []string  `yaml:"matchers"`
	Continue       bool      `yaml:"continue"`
	Routes         []Route   `yaml:"routes"`
}

// alertingDefaults fills the absent fields of the alerting block (the
// Elasticsearch connection is taken from the sinks by validateAlerting).
func alertingDefaults(a *Alerting, has func(string) bool) {
	if !has("interval") {
		a.Interval = Duration(30 * time.Second)
	}
	if !has("delay") {
		a.Delay = Duration(30 * time.Second)
	}
	if a.BuiltinRules == nil {
		t := true
		a.BuiltinRules = &t
	}
	e := &a.Elasticsearch
	if e.StateIndex == "" {
		e.StateIndex = "ferry-alerting-state"
	}
	le := &a.LeaderElection
	if le.Enabled == "" {
		le.Enabled = "auto"
	}
	if le.Lease == "" {
		le.Lease = "ferry-alerting"
	}
	if le.LeaseDuration == 0 {
		le.LeaseDuration = Duration(15 * time.Second)
	}
	if le.RenewDeadline == 0 {
		le.RenewDeadline = Duration(10 * time.Second)
	}
	if le.RetryPeriod == 0 {
		le.RetryPeriod = Duration(2 * time.Second)
	}
	if r := a.Route; r != nil {
		if r.GroupWait == nil {
			w := Duration(30 * time.Second)
			r.GroupWait = &w
		}
		if !has("route.group_interval") {
			r.GroupInterval = Duration(5 * time.Minute)
		}
		if !has("route.repeat_interval") {
			r.RepeatInterval = Duration(4 * time.Hour)
		}
	}
}

// validateAlerting checks the alerting block at p (the evaluator's side;
// receivers and route only for their structure).
func (d *decoder) validateAlerting(p string, a *Alerting, sinks []Sink) {
	if a.RulesDir == "" {
		d.invalid(p+".rules_dir", "required")
	}
	d.atLeast(p+".interval", a.Interval, Duration(time.Second))
	if a.Delay < 0 {
		d.invalid(p+".delay", "must not be negative, got %s", a.Delay)
	}
	e := &a.Elasticsearch
	ep := p + ".elasticsearch"
	if !d.has(ep + ".urls") {
		// The first elasticsearch sink's connection, secrets already read.
		for _, s := range sinks {
			if s.Type == "elasticsearch" {
				e.URLs, e.Username, e.Password, e.APIKey = s.URLs, s.Username, s.Password, s.APIKey
				e.CAFile, e.TLSSkipVerify = s.CAFile, s.TLSSkipVerify
				break
			}
		}
	}
	if len(e.URLs) == 0 {
		d.invalid(ep+".urls", "required (there is no elasticsearch sink to take the connection from)")
	}
	for i, raw := range e.URLs {
		d.esURL(fmt.Sprintf("%s.urls[%d]", ep, i), raw)
	}
	if d.has(ep + ".password_file") {
		d.secretFile(ep, "password", &e.Password, e.PasswordFile)
	}
	if d.has(ep + ".api_key_file") {
		d.secretFile(ep, "api_key", &e.APIKey, e.APIKeyFile)
	}
	if d.has(ep+".ca_file") && e.CAFile != "" {
		d.caFile(ep+".ca_file", e.CAFile)
	}
	d.indexName(ep+".state_index", e.StateIndex, 255, "")
	le := a.LeaderElection
	lp := p + ".leader_election"
	d.oneOf(lp+".enabled", le.Enabled, "auto", "true", "false")
	d.atLeast(lp+".retry_period", le.RetryPeriod, Duration(100*time.Millisecond))
	if le.RenewDeadline <= le.RetryPeriod {
		d.invalid(lp+".renew_deadline", "must be longer than retry_period (%s)", le.RetryPeriod)
	}
	if le.LeaseDuration <= le.RenewDeadline {
		d.invalid(lp+".lease_duration", "must be longer than renew_deadline (%s)", le.RenewDeadline)
	}
	if a.KibanaURL != "" {
		d.esURL(p+".kibana_url", a.KibanaURL)
	}
	names := map[string]string{}
	for i, r := range a.Receivers {
		d.uniqueName(fmt.Sprintf("%s.receivers[%d].name", p, i), r.Name, names)
	}
}
