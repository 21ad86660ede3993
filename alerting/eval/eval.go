// Package eval evaluates alert rules (alerting/rules) over Elasticsearch
// every interval and hands the firing and just resolved alerts to a Sink
// (the dispatcher, alerting/notify). Each rule's window ends `delay` before
// the evaluation time, so late documents are counted. An alert is pending
// while its condition holds for less than the rule's `for`, then firing;
// it resolves once the condition has not held for `keep_firing_for` (for a
// threshold rule with `clear`, once the value is back past clear).
//
// State (active alerts, pending since, last evaluation per rule) is kept
// in Elasticsearch by alerting/state: a restarted evaluator or a new leader
// resumes it, keeps each alert's StartsAt, and catches up on the
// evaluations it missed (up to MaxCatchUp), so a condition that became
// true while no evaluator ran still notifies.
package eval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
	"github.com/ferrylogs/ferry/alerting/esq"
	"github.com/ferrylogs/ferry/alerting/rules"
	"github.com/ferrylogs/ferry/alerting/state"
)

// Sink receives the alerts of each evaluation: every firing alert and
// every alert resolved in it. Notify returning nil means the alerts are in
// the sink's care (the dispatcher's durable outbox).
type Sink interface {
	Notify(ctx context.Context, alerts []alert.Alert) error
}

// Options configure an Evaluator.
type Options struct {
	Client *esq.Client
	// Store keeps the state; nil opens StateIndex on Client when set,
	// else the state is kept in memory only.
	Store      *state.Store
	StateIndex string
	Sink       Sink
	Interval   time.Duration // between evaluations, default 30s
	Delay      time.Duration // windows end this long before now
	// KibanaURL is the base of the Discover links (empty: no links).
	KibanaURL string
	// Builtin adds the built-in rules ElasticsearchUnreachable and
	// AgentAbsent.
	Builtin bool
	// MaxCatchUp bounds how far back missed evaluations are run at start
	// (default 1h; 0 uses the default, < 0 turns catching up off).
	MaxCatchUp time.Duration
	Now        func() time.Time
	Log        *slog.Logger
}

// Evaluator evaluates a set of rules. SetRules may be called at any time;
// Run, Step and the rest are for one goroutine.
type Evaluator struct {
	o Options

	mu       sync.Mutex
	rules    []*rules.Rule
	ruleKeys map[string]string // name -> Key of the rules being evaluated

	active   map[string]*state.Entry // by fingerprint
	lastEval map[string]time.Time    // by rule name
	dels     []string                // fingerprints to delete from the store
	resolved []alert.Alert           // resolved alerts not yet handed to the sink

	haveRules bool      // SetRules was called: alerts of other rules are stale
	esDown    time.Time // first failed ping of the current outage (zero: up)
	esFiring  *state.Entry
	loaded    bool
	evals     atomic.Uint64
	errs      atomic.Uint64
	notices   atomic.Uint64
	firing    atomic.Int64
	lastError atomic.Value
}

// New returns an evaluator without rules.
func New(o Options) *Evaluator {
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.MaxCatchUp == 0 {
		o.MaxCatchUp = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Evaluator{o: o, ruleKeys: map[string]string{}, active: map[string]*state.Entry{}, lastEval: map[string]time.Time{}}
}

// Built-in rule names (alertname labels), matched by the dispatcher's
// built-in inhibition.
const (
	ESUnreachable = "ElasticsearchUnreachable"
	AgentAbsent   = "AgentAbsent"
)

// BuiltinRules are the rules Builtin adds beside the ping behind
// ElasticsearchUnreachable: AgentAbsent, a host that sent logs or metrics
// in the last 24 hours and nothing for 10 minutes.
func BuiltinRules() []*rules.Rule {
	rs, err := rules.Parse("builtin", []byte(`rules:
  - name: AgentAbsent
    type: absence
    index: "logs-*,metrics-*"
    filter: { exists: { field: host.name } }
    group_by: [host.name]
    window: 10m
    lookback: 24h
    severity: warning
    annotations:
      summary: 'No logs or metrics from {{ index .Labels "host.name" }} for {{ humanizeDuration .Value }}'
`))
	if err != nil {
		panic(err)
	}
	for _, r := range rs {
		r.Builtin = true
	}
	return rs
}

// SetRules replaces the rules. The state of a rule whose definition did
// not change is kept; a changed rule's pending alerts start over (its
// firing ones carry on under the new definition); the firing alerts of a
// removed rule are resolved.
func (e *Evaluator) SetRules(rs []*rules.Rule) {
	if e.o.Builtin {
		rs = append(slices.Clone(rs), BuiltinRules()...)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := make(map[string]string, len(rs))
	for _, r := range rs {
		keys[r.Name] = r.Key()
	}
	now := e.o.Now()
	for fp, ent := range e.active {
		k, ok := keys[ent.Rule]
		switch {
		case !ok && e.ruleKeys[ent.Rule] != "":
			if ent.State == alert.Firing {
				e.resolved = append(e.resolved, resolvedAlert(ent, now))
			}
			delete(e.active, fp)
			e.dels = append(e.dels, fp)
		case ok && k != e.ruleKeys[ent.Rule] && e.ruleKeys[ent.Rule] != "" && ent.State == alert.Pending:
			delete(e.active, fp)
			e.dels = append(e.dels, fp)
		}
	}
	e.rules, e.ruleKeys, e.haveRules = rs, keys, true
	if e.loaded {
		e.pruneLocked(now)
	}
}

// pruneLocked resolves and forgets the active alerts of rules that are not
// evaluated (removed, or built-in rules turned off while no evaluator
// ran). Called with e.mu held, once rules are set and state is loaded.
func (e *Evaluator) pruneLocked(now time.Time) {
	if !e.haveRules {
		return
	}
	for fp, ent := range e.active {
		if _, ok := e.ruleKeys[ent.Rule]; ok {
			continue
		}
		if ent.State == alert.Firing {
			e.resolved = append(e.resolved, resolvedAlert(ent, now))
		}
		delete(e.active, fp)
		e.dels = append(e.dels, fp)
	}
}

// Rules returns the rules being evaluated.
func (e *Evaluator) Rules() []*rules.Rule {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rules
}

// Load reads the state from the store (once; later calls do nothing).
func (e *Evaluator) Load(ctx context.Context) error {
	if e.o.Store == nil && e.o.StateIndex != "" && e.o.Client != nil {
		s, err := state.Open(ctx, e.o.Client, e.o.StateIndex)
		if err != nil {
			return err
		}
		e.o.Store = s
	}
	e.mu.Lock()
	done := e.loaded || e.o.Store == nil
	if done {
		e.loaded = true
	}
	e.mu.Unlock()
	if done {
		return nil
	}
	entries, last, err := e.o.Store.Load(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	// What the store holds replaces what this evaluator knew (another
	// replica may have led meanwhile).
	clear(e.active)
	clear(e.lastEval)
	e.dels = nil
	for i := range entries {
		en := entries[i]
		e.active[en.Fingerprint] = &en
	}
	maps.Copy(e.lastEval, last)
	e.loaded = true
	e.pruneLocked(e.o.Now())
	e.mu.Unlock()
	e.o.Log.Info("alerting: state loaded", "active_alerts", len(entries), "rules_with_history", len(last))
	return nil
}

// Run loads the state, catches up on missed evaluations and evaluates
// every interval until ctx ends. Each Run (each term as leader) loads the
// state anew.
func (e *Evaluator) Run(ctx context.Context) error {
	e.mu.Lock()
	e.loaded = false
	e.mu.Unlock()
	for {
		err := e.Load(ctx)
		if err == nil {
			break
		}
		e.o.Log.Warn("alerting: cannot load the alert state; retrying", "err", err)
		e.errs.Add(1)
		e.pingStep(ctx, e.o.Now(), err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(e.o.Interval):
		}
	}
	e.CatchUp(ctx, e.o.Now())
	t := time.NewTicker(e.o.Interval)
	defer t.Stop()
	for {
		if err := e.Step(ctx, e.o.Now()); err != nil && ctx.Err() == nil {
			e.o.Log.Warn("alerting: evaluation", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// CatchUp evaluates, for each rule evaluated before, the times it missed
// between its last evaluation and now (at most MaxCatchUp back, one step
// per max(interval, window)).
func (e *Evaluator) CatchUp(ctx context.Context, now time.Time) {
	if e.o.MaxCatchUp < 0 {
		return
	}
	for _, r := range e.Rules() {
		e.mu.Lock()
		last := e.lastEval[r.Name]
		e.mu.Unlock()
		if last.IsZero() {
			continue
		}
		step := max(e.o.Interval, r.Window)
		t := last.Add(step)
		if oldest := now.Add(-e.o.MaxCatchUp); t.Before(oldest) {
			t = oldest
		}
		n := 0
		for ; now.Sub(t) >= e.o.Interval && ctx.Err() == nil; t = t.Add(step) {
			if err := e.stepRules(ctx, []*rules.Rule{r}, t); err != nil {
				e.o.Log.Warn("alerting: catching up", "rule", r.Name, "at", t, "err", err)
				break
			}
			n++
		}
		if n > 0 {
			e.o.Log.Info("alerting: caught up on missed evaluations", "rule", r.Name, "evaluations", n, "since", last)
		}
	}
}

// Step evaluates every rule at now, hands the firing and just resolved
// alerts to the sink and saves the state.
func (e *Evaluator) Step(ctx context.Context, now time.Time) error {
	if err := e.Load(ctx); err != nil {
		e.pingStep(ctx, now, err)
		return err
	}
	return e.stepRules(ctx, e.Rules(), now)
}

func (e *Evaluator) stepRules(ctx context.Context, rs []*rules.Rule, now time.Time) error {
	var errs []error
	evaluated := map[string]time.Time{}
	unreachable := error(nil)
	for _, r := range rs {
		if err := e.stepRule(ctx, r, now); err != nil {
			e.errs.Add(1)
			errs = append(errs, fmt.Errorf("rule %s: %w", r.Name, err))
			if esq.Unreachable(err) && unreachable == nil {
				unreachable = err
			}
			continue
		}
		evaluated[r.Name] = now
	}
	e.evals.Add(1)
	e.pingStep(ctx, now, unreachable)
	if err := e.flush(ctx, evaluated); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		e.lastError.Store(errors.Join(errs...).Error())
	}
	return errors.Join(errs...)
}

// flush hands every firing and just resolved alert to the sink, then
// saves the state (what changed) and the rules' evaluation times.
func (e *Evaluator) flush(ctx context.Context, evaluated map[string]time.Time) error {
	e.mu.Lock()
	var out []alert.Alert
	var firing int64
	for _, ent := range e.active {
		if ent.State == alert.Firing {
			out = append(out, firingAlert(ent))
			firing++
		}
	}
	if e.esFiring != nil {
		out = append(out, firingAlert(e.esFiring))
		firing++
	}
	out = append(out, e.resolved...)
	e.firing.Store(firing)
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b alert.Alert) int { return a.StartsAt.Compare(b.StartsAt) })
	var notifyErr error
	if e.o.Sink != nil && len(out) > 0 {
		if notifyErr = e.o.Sink.Notify(ctx, out); notifyErr != nil {
			notifyErr = fmt.Errorf("notify: %w", notifyErr)
		} else {
			e.notices.Add(uint64(len(out)))
		}
	}
	e.mu.Lock()
	if notifyErr == nil {
		e.resolved = nil // else handed over again next time
	}
	var puts []state.Entry
	for _, ent := range e.active {
		if ent.State == alert.Firing && notifyErr == nil {
			ent.Notified = true
		}
		puts = append(puts, *ent)
	}
	dels := e.dels
	e.dels = nil
	maps.Copy(e.lastEval, evaluated)
	e.mu.Unlock()
	if e.o.Store == nil {
		return notifyErr
	}
	if err := e.o.Store.Save(ctx, puts, dels, evaluated); err != nil {
		e.mu.Lock()
		e.dels = append(e.dels, dels...)
		e.mu.Unlock()
		return errors.Join(notifyErr, err)
	}
	return notifyErr
}

// stepRule evaluates r at now and updates its alerts.
func (e *Evaluator) stepRule(ctx context.Context, r *rules.Rule, now time.Time) error {
	end := now.Add(-e.o.Delay)
	samples, err := e.evaluate(ctx, r, end)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[string]bool{}
	var newlyFiring []*state.Entry
	for _, s := range samples {
		labels := e.labels(r, s.group)
		fp := alert.Fingerprint(labels)
		ent := e.active[fp]
		firing := ent != nil && ent.State == alert.Firing
		if !s.active && !(firing && s.keep) {
			continue
		}
		seen[fp] = true
		if ent == nil {
			ent = &state.Entry{Fingerprint: fp, Rule: r.Name, State: alert.Pending, ActiveAt: now}
			e.active[fp] = ent
		}
		ent.Labels, ent.Value, ent.LastTrueAt = labels, s.value, now
		ent.GeneratorURL = discoverURL(e.o.KibanaURL, r, s.group, end.Add(-r.Window), end)
		if ann, err := r.Render(rules.Data{Rule: r.Name, Value: s.value, Labels: labels, KibanaURL: ent.GeneratorURL, Window: r.Window}); err != nil {
			e.o.Log.Warn("alerting: annotation", "rule", r.Name, "err", err)
		} else {
			ent.Annotations = ann
		}
		if ent.State == alert.Pending && now.Sub(ent.ActiveAt) >= r.For {
			ent.State, ent.FiredAt, ent.Notified = alert.Firing, now, false
			ent.Evidence = alert.Evidence{ErrorLines: -1}
			newlyFiring = append(newlyFiring, ent)
		}
	}
	for fp, ent := range e.active {
		if ent.Rule != r.Name || seen[fp] {
			continue
		}
		if ent.State == alert.Firing && r.KeepFiringFor > 0 && now.Sub(ent.LastTrueAt) <= r.KeepFiringFor {
			continue
		}
		if ent.State == alert.Firing {
			e.resolved = append(e.resolved, resolvedAlert(ent, now))
		}
		delete(e.active, fp)
		e.dels = append(e.dels, fp)
	}
	// Evidence: one extra query per alert that starts firing, a few at a
	// time (a rule may start firing for many groups at once).
	evs := make([]alert.Evidence, len(newlyFiring))
	e.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, evidenceConcurrency)
	for i, ent := range newlyFiring {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			evs[i] = e.evidence(ctx, r, ent, end)
		}()
	}
	wg.Wait()
	e.mu.Lock()
	for i, ent := range newlyFiring {
		ent.Evidence = evs[i]
	}
	return nil
}

// evidenceConcurrency bounds the evidence queries of one rule in flight.
const evidenceConcurrency = 8

// labels of r's alert for group: alertname, the group's fields, severity
// and the rule's labels.
func (e *Evaluator) labels(r *rules.Rule, group map[string]string) map[string]string {
	l := make(map[string]string, len(group)+len(r.Labels)+2)
	maps.Copy(l, r.Labels)
	if r.Severity != "" {
		l["severity"] = r.Severity
	}
	maps.Copy(l, group)
	l["alertname"] = r.Name
	return l
}

func firingAlert(ent *state.Entry) alert.Alert {
	return alert.Alert{Labels: ent.Labels, Annotations: ent.Annotations, State: alert.Firing, Value: ent.Value,
		StartsAt: ent.FiredAt, GeneratorURL: ent.GeneratorURL, Evidence: ent.Evidence}
}

func resolvedAlert(ent *state.Entry, now time.Time) alert.Alert {
	a := firingAlert(ent)
	a.State, a.EndsAt = alert.Resolved, now
	return a
}

// pingStep runs the built-in ElasticsearchUnreachable rule: it fires once
// Elasticsearch has not answered for two intervals (and at least 1m) and
// resolves when it answers again. failure is an error of this round that
// already shows Elasticsearch unreachable (nil: ping it).
func (e *Evaluator) pingStep(ctx context.Context, now time.Time, failure error) {
	if !e.o.Builtin || e.o.Client == nil {
		return
	}
	err := failure
	if err == nil || !esq.Unreachable(err) {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = e.o.Client.Do(pctx, http.MethodGet, "/_cluster/health", nil, nil)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil || !esq.Unreachable(err) {
		if e.esFiring != nil {
			e.resolved = append(e.resolved, resolvedAlert(e.esFiring, now))
			e.esFiring = nil
		}
		e.esDown = time.Time{}
		return
	}
	if e.esDown.IsZero() {
		e.esDown = now
	}
	if e.esFiring == nil && now.Sub(e.esDown) >= max(2*e.o.Interval, time.Minute) {
		labels := map[string]string{"alertname": ESUnreachable, "severity": "critical"}
		e.esFiring = &state.Entry{Fingerprint: alert.Fingerprint(labels), Rule: ESUnreachable, Labels: labels, State: alert.Firing,
			ActiveAt: e.esDown, FiredAt: now, LastTrueAt: now, Evidence: alert.Evidence{ErrorLines: -1},
			Annotations: map[string]string{"summary": "Elasticsearch does not answer: alert rules cannot be evaluated", "description": err.Error()}}
	}
	if e.esFiring != nil {
		e.esFiring.Value = now.Sub(e.esDown).Seconds()
	}
}

// Active returns the alerts pending or firing now, for tests and the CLI.
func (e *Evaluator) Active() []alert.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []alert.Alert
	for _, ent := range e.active {
		a := firingAlert(ent)
		a.State = ent.State
		if ent.State == alert.Pending {
			a.StartsAt = ent.ActiveAt
		}
		out = append(out, a)
	}
	if e.esFiring != nil {
		out = append(out, firingAlert(e.esFiring))
	}
	slices.SortFunc(out, func(a, b alert.Alert) int { return compareLabels(a.Labels, b.Labels) })
	return out
}

func compareLabels(a, b map[string]string) int {
	ka, kb := slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b))
	for i := range min(len(ka), len(kb)) {
		if c := cmpStr(ka[i], kb[i]); c != 0 {
			return c
		}
		if c := cmpStr(a[ka[i]], b[kb[i]]); c != 0 {
			return c
		}
	}
	return len(ka) - len(kb)
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Stats adds the evaluator's counters to m: evaluations, failed rule
// evaluations, alerts handed to the sink, alerts firing now.
func (e *Evaluator) Stats(m map[string]uint64) {
	m["ferry_alerting_evaluations_total"] = e.evals.Load()
	m["ferry_alerting_rule_errors_total"] = e.errs.Load()
	m["ferry_alerting_alerts_notified_total"] = e.notices.Load()
	m["ferry_alerting_alerts_firing"] = uint64(max(e.firing.Load(), 0))
	m["ferry_alerting_rules"] = uint64(len(e.Rules()))
}
