package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
	"github.com/ferrylogs/ferry/alerting/esq"
	"github.com/ferrylogs/ferry/alerting/notify"
	"github.com/ferrylogs/ferry/config"
)

// notifier is the notify side of alerting at run time: the dispatcher the
// evaluator hands its alerts to, and the silences API on the http address.
type notifier struct {
	dispatcher *notify.Dispatcher
	api        *notify.SilenceAPI
}

// startNotify builds the dispatcher of cfg.Alerting (nil when alerting is
// off or has no route) and runs its delivery loop until ctx ends.
func startNotify(ctx context.Context, cfg *config.Aggregator, log *slog.Logger) (*notifier, error) {
	a := cfg.Alerting
	if a == nil || a.Route == nil {
		return nil, nil
	}
	es, err := esq.New(a.Elasticsearch)
	if err != nil {
		return nil, fmt.Errorf("alerting: %w", err)
	}
	d, store, err := newDispatcher(ctx, a, es, log.With("component", "notify"))
	if err != nil {
		return nil, err
	}
	go d.Run(ctx, time.Second)
	return &notifier{dispatcher: d, api: &notify.SilenceAPI{Store: store, Changed: func() { d.ReloadSilences(context.WithoutCancel(ctx)) }}}, nil
}

// handlers are served on the aggregator's http address.
func (n *notifier) handlers() map[string]http.Handler {
	if n == nil {
		return nil
	}
	return map[string]http.Handler{"/api/silences": n.api, "/api/silences/": n.api}
}

// addStats adds the notice counters by receiver and result.
func (n *notifier) addStats(m map[string]uint64) {
	if n != nil {
		n.dispatcher.Stats(m)
	}
}

// Notify hands the alerts of one evaluation to the dispatcher; nil-safe so
// that the evaluator runs without receivers.
func (n *notifier) Notify(ctx context.Context, alerts []alert.Alert) error {
	if n == nil {
		return nil
	}
	return n.dispatcher.Notify(ctx, alerts)
}

// newDispatcher builds the route tree, the notifiers, the silence store
// and the notification log (Elasticsearch indices ferry-alerting-silences
// and ferry-alerting-nflog, shared by the replicas) of a.
func newDispatcher(ctx context.Context, a *config.Alerting, es notify.Doer, log *slog.Logger) (*notify.Dispatcher, notify.SilenceStore, error) {
	ns, err := buildNotifiers(a)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(ns))
	for name := range ns {
		names = append(names, name)
	}
	root, err := notify.BuildRoute(routeConfig(*a.Route), names)
	if err != nil {
		return nil, nil, fmt.Errorf("alerting: %w", err)
	}
	store := &notify.ESStore{ES: es}
	d, err := notify.New(ctx, notify.Options{
		Route: root, Notifiers: ns, OutboxDir: a.OutboxDir, ExternalURL: a.KibanaURL,
		BuiltinRules: a.BuiltinRulesOn(), Silences: store, NotifyLog: &notify.ESLog{ES: es}, Log: log,
		// An alert the evaluator stopped handing over (rule removed, this
		// replica no longer the leader) is forgotten after a few rounds.
		StaleAfter: max(10*time.Minute, 5*time.Duration(a.Interval)),
	})
	if err != nil {
		return nil, nil, err
	}
	return d, store, nil
}

func routeConfig(r config.Route) notify.RouteConfig {
	c := notify.RouteConfig{
		Receiver: r.Receiver, GroupBy: r.GroupBy, GroupInterval: time.Duration(r.GroupInterval),
		RepeatInterval: time.Duration(r.RepeatInterval), Matchers: r.Matchers, Continue: r.Continue,
	}
	if r.GroupWait != nil {
		w := time.Duration(*r.GroupWait)
		c.GroupWait = &w
	}
	for _, s := range r.Routes {
		c.Routes = append(c.Routes, routeConfig(s))
	}
	return c
}

// buildNotifiers returns a notifier for each receiver (validated by config).
func buildNotifiers(a *config.Alerting) (map[string]notify.Notifier, error) {
	ns := map[string]notify.Notifier{}
	for _, r := range a.Receivers {
		switch {
		case r.Slack != nil:
			ns[r.Name] = &notify.Slack{WebhookURL: string(r.Slack.WebhookURL), Channel: r.Slack.Channel}
		case r.Webhook != nil:
			ns[r.Name] = &notify.Webhook{URL: r.Webhook.URL, BearerToken: string(r.Webhook.BearerToken)}
		case r.Email != nil:
			e := r.Email
			tc := &tls.Config{InsecureSkipVerify: e.InsecureSkipVerify} //nolint:gosec // opt-in
			if e.CAFile != "" {
				pem, err := os.ReadFile(e.CAFile)
				if err != nil {
					return nil, fmt.Errorf("receiver %s: %w", r.Name, err)
				}
				tc.RootCAs = x509.NewCertPool()
				if !tc.RootCAs.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("receiver %s: ca_file %s: no PEM certificate in it", r.Name, e.CAFile)
				}
			}
			ns[r.Name] = &notify.Email{Smarthost: e.Smarthost, From: e.From, To: e.To, Username: e.Username,
				Password: string(e.Password), TLS: e.TLS, TLSConfig: tc}
		}
	}
	return ns, nil
}

// notifyCmd is `aggregator notify test RECEIVER [--config FILE]`: one real
// test notice to the receiver, and what it answered.
func notifyCmd(args []string) int {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(os.Stderr, "usage: aggregator notify test RECEIVER [--config FILE]")
		return 2
	}
	fs := flag.NewFlagSet("aggregator notify test", flag.ContinueOnError)
	path := fs.String("config", "", "configuration file (YAML)")
	receiver, rest := "", args[1:]
	if len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
		receiver, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if receiver == "" && fs.NArg() == 1 {
		receiver = fs.Arg(0)
	}
	if receiver == "" {
		fmt.Fprintln(os.Stderr, "usage: aggregator notify test RECEIVER [--config FILE]")
		return 2
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	answer, err := sendTestNotice(context.Background(), cfg, receiver, time.Now())
	if err != nil {
		fmt.Fprintf(os.Stderr, "aggregator: notify test %s: %v\n", receiver, err)
		return 1
	}
	fmt.Printf("%s: %s\n", receiver, answer)
	return 0
}

// sendTestNotice sends one firing test notice to the receiver named and
// returns its answer.
func sendTestNotice(ctx context.Context, cfg *config.Aggregator, receiver string, now time.Time) (string, error) {
	if cfg.Alerting == nil {
		return "", errors.New("the configuration has no alerting block")
	}
	ns, err := buildNotifiers(cfg.Alerting)
	if err != nil {
		return "", err
	}
	n := ns[receiver]
	if n == nil {
		return "", fmt.Errorf("no receiver is named %q", receiver)
	}
	a := alert.Alert{
		Labels:      map[string]string{"alertname": "FerryTestNotice", "severity": "info", "receiver": receiver},
		Annotations: map[string]string{"summary": "Test notice from the Ferry aggregator (aggregator notify test)"},
		State:       alert.Firing, StartsAt: now.UTC(),
	}
	id := fmt.Sprintf("test-%d", now.UnixNano())
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return n.Send(ctx, &notify.Notice{ID: id, Thread: id, Receiver: receiver, GroupKey: "test:" + receiver,
		GroupLabels: map[string]string{"alertname": "FerryTestNotice"}, Status: "firing", Alerts: []alert.Alert{a},
		ExternalURL: cfg.Alerting.KibanaURL, Created: now})
}

// loadConfig loads path, or the embedded defaults when it is empty.
func loadConfig(path string) (*config.Aggregator, error) {
	if path == "" {
		return config.DefaultAggregator(), nil
	}
	return config.LoadAggregator(path)
}
