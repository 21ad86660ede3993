package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ferrylogs/ferry/alerting/notify"
)

// validateNotify checks the notify side of the alerting block at p:
// receivers (exactly one kind each, secrets read from their files),
// the route tree (receivers named exist, matchers parse, timings) and the
// outbox directory (default <buffer.dir>/alerting-outbox).
func (d *decoder) validateNotify(p string, a *Alerting, bufferDir string) {
	if a.OutboxDir == "" {
		a.OutboxDir = filepath.Join(bufferDir, "alerting-outbox")
	}
	names := map[string]bool{}
	for i := range a.Receivers {
		r := &a.Receivers[i]
		rp := fmt.Sprintf("%s.receivers[%d]", p, i)
		names[r.Name] = true
		kinds := 0
		if r.Slack != nil {
			kinds++
			d.validateSlack(rp+".slack", r.Slack)
		}
		if r.Email != nil {
			kinds++
			d.validateEmail(rp+".email", r.Email)
		}
		if r.Webhook != nil {
			kinds++
			d.httpURL(rp+".webhook.url", r.Webhook.URL, true)
		}
		if kinds != 1 {
			d.invalid(rp, "needs exactly one of slack, email, webhook, got %d", kinds)
		}
	}
	if a.Route == nil {
		if len(a.Receivers) > 0 {
			d.invalid(p+".route", "required when receivers are configured")
		}
		return
	}
	if a.Route.Receiver == "" {
		d.invalid(p+".route.receiver", "required")
	}
	d.validateRoute(p+".route", a.Route, names)
}

func (d *decoder) validateRoute(p string, r *Route, receivers map[string]bool) {
	if r.Receiver != "" && !receivers[r.Receiver] {
		d.invalid(p+".receiver", "no receiver is named %q", r.Receiver)
	}
	for i, m := range r.Matchers {
		if _, err := notify.ParseMatcher(m); err != nil {
			d.invalid(fmt.Sprintf("%s.matchers[%d]", p, i), "%v", err)
		}
	}
	if r.GroupWait != nil && *r.GroupWait < 0 {
		d.invalid(p+".group_wait", "must not be negative, got %s", *r.GroupWait)
	}
	if d.has(p + ".group_interval") {
		d.atLeast(p+".group_interval", r.GroupInterval, Duration(time.Second))
	}
	if d.has(p + ".repeat_interval") {
		d.atLeast(p+".repeat_interval", r.RepeatInterval, Duration(time.Second))
	}
	for i, g := range r.GroupBy {
		if g == "" || g == "..." && len(r.GroupBy) > 1 {
			d.invalid(fmt.Sprintf("%s.group_by[%d]", p, i), `must be a label name, or "..." alone (every label)`)
		}
	}
	for i := range r.Routes {
		d.validateRoute(fmt.Sprintf("%s.routes[%d]", p, i), &r.Routes[i], receivers)
	}
}

func (d *decoder) validateSlack(p string, s *SlackReceiver) {
	u := string(s.WebhookURL)
	d.secretFile(p, "webhook_url", &u, s.WebhookURLFile)
	s.WebhookURL = Secret(u)
	if u == "" {
		if !d.failed[p+".webhook_url_file"] {
			d.invalid(p+".webhook_url", "required (or webhook_url_file)")
		}
		return
	}
	// The URL is a secret: never quoted.
	if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
		d.invalid(p+".webhook_url", "must be an http:// or https:// URL")
	}
}

func (d *decoder) validateEmail(p string, e *EmailReceiver) {
	host, port, err := net.SplitHostPort(e.Smarthost)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || n <= 0 || n > 65535 {
		d.invalid(p+".smarthost", "must be host:port, got %q", e.Smarthost)
	}
	if _, err := mail.ParseAddress(e.From); err != nil {
		d.invalid(p+".from", "must be an email address, got %q", e.From)
	}
	if len(e.To) == 0 {
		d.invalid(p+".to", "must name at least one recipient")
	}
	for i, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			d.invalid(fmt.Sprintf("%s.to[%d]", p, i), "must be an email address, got %q", to)
		}
	}
	pw := string(e.Password)
	d.secretFile(p, "password", &pw, e.PasswordFile)
	e.Password = Secret(pw)
	if e.Username != "" && pw == "" && !d.failed[p+".password_file"] {
		d.invalid(p+".password", "required with username (or password_file)")
	}
	if e.Username == "" && pw != "" {
		d.invalid(p+".username", "required with password")
	}
	if e.TLS == "" {
		e.TLS = "starttls"
		if port == "465" {
			e.TLS = "tls"
		}
	}
	d.oneOf(p+".tls", e.TLS, "starttls", "tls", "none")
	if e.CAFile != "" {
		d.caFile(p+".ca_file", e.CAFile)
	}
}

// httpURL checks an http(s) URL that may be quoted in errors.
func (d *decoder) httpURL(path, raw string, required bool) {
	if raw == "" {
		if required {
			d.invalid(path, "required")
		}
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.invalid(path, "must be an http:// or https:// URL, got %q", raw)
	}
}
