// Package notify delivers alerts: it routes each alert through the route
// tree to its receivers, groups them, mutes silenced, inhibited and flapping
// ones, and sends notices (Slack, email, webhook) through a durable outbox
// with retries. The evaluator (alerting/eval) hands it the firing and just
// resolved alerts of each evaluation with Dispatcher.Notify.
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
)

// Built-in inhibition: while ElasticsearchUnreachable fires every other
// alert is muted (its rules cannot be evaluated faithfully); while
// AgentAbsent fires for a host, the alerts of that host (host.name or
// kubernetes.node.name) are muted.
const (
	AlertESUnreachable = "ElasticsearchUnreachable"
	AlertAgentAbsent   = "AgentAbsent"
)

// Options configure a Dispatcher.
type Options struct {
	Route     *Route
	Notifiers map[string]Notifier // by receiver name; every route's receiver must be here
	// OutboxDir keeps the notices not yet delivered, so that a restart
	// loses none.
	OutboxDir string
	// NotifyLog keeps what each group's receiver was last told, so that a
	// restart (or, in Elasticsearch, a new leader) does not notify again;
	// nil: a FileLog at OutboxDir/nflog.json.
	NotifyLog   NotificationLog
	ExternalURL string
	// BuiltinRules turns on the built-in inhibition (see AlertESUnreachable).
	BuiltinRules bool
	Silences     SilenceStore // nil: no silences
	// SilenceRefresh is how often the silences are read again, default 5s.
	SilenceRefresh time.Duration
	Flap           FlapOptions
	// StaleAfter forgets, without a notice, a firing alert that Notify has
	// not handed over again for this long (its rule was removed, or this
	// replica stopped evaluating); default 10m.
	StaleAfter time.Duration
	// MaxAge drops a notice still undelivered this long after it was made,
	// default 24h.
	MaxAge time.Duration
	// BackoffInitial and BackoffMax pace retries of a failed delivery that
	// did not say when (Retry-After), default 1s and 5m.
	BackoffInitial, BackoffMax time.Duration
	Now                        func() time.Time // default time.Now
	Log                        *slog.Logger
}

// FlapOptions: an alert that changes state (firing, resolved) Changes times
// within Window is flapping: one "flapping" notice, then no notice about it
// until it kept one state for Stable.
type FlapOptions struct {
	Changes int           // default 6; < 0 turns flap detection off
	Window  time.Duration // default 1h
	Stable  time.Duration // default 30m
}

// Dispatcher routes, groups and delivers alerts. Its methods are safe for
// concurrent use.
type Dispatcher struct {
	o      Options
	log    *slog.Logger
	mu     sync.Mutex
	groups map[string]*group
	nflog  map[string]*Sent // by group key, of the groups held
	flaps  map[string]*flapState
	box    *outbox
	kick   chan struct{}

	sil       []parsedSilence
	silLoaded time.Time

	delivering sync.Mutex
	stats      map[[2]string]uint64 // receiver, result
}

// group is the alerts of one route with equal group labels.
type group struct {
	key     string
	route   *Route
	labels  map[string]string
	alerts  map[string]alert.Alert // by fingerprint
	seen    map[string]time.Time   // when Notify last handed over each alert
	next    time.Time              // when the group is flushed next
	flapNew map[string]bool        // fingerprints whose flapping is not announced yet
}

type flapState struct {
	last     alert.State
	changes  []time.Time
	flapping bool
}

// New returns a dispatcher that resumes the outbox and notification log in
// o.OutboxDir.
func New(ctx context.Context, o Options) (*Dispatcher, error) {
	if o.Route == nil {
		return nil, fmt.Errorf("notify: no route")
	}
	if err := checkReceivers(o.Route, o.Notifiers); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.SilenceRefresh <= 0 {
		o.SilenceRefresh = 5 * time.Second
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 24 * time.Hour
	}
	if o.BackoffInitial <= 0 {
		o.BackoffInitial = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Minute
	}
	if o.Flap.Changes == 0 {
		o.Flap.Changes = 6
	}
	if o.Flap.Window <= 0 {
		o.Flap.Window = time.Hour
	}
	if o.Flap.Stable <= 0 {
		o.Flap.Stable = 30 * time.Minute
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 10 * time.Minute
	}
	box, err := openOutbox(o.OutboxDir)
	if err != nil {
		return nil, err
	}
	if o.NotifyLog == nil {
		if o.NotifyLog, err = OpenFileLog(filepath.Join(o.OutboxDir, "nflog.json")); err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
	}
	d := &Dispatcher{o: o, log: o.Log, groups: map[string]*group{}, nflog: map[string]*Sent{}, flaps: map[string]*flapState{},
		box: box, kick: make(chan struct{}, 1), stats: map[[2]string]uint64{}}
	for name := range o.Notifiers {
		for _, result := range []string{"sent", "retry", "failed", "expired"} {
			d.stats[[2]string{name, result}] = 0 // every series from the start
		}
	}
	d.reconcile(ctx)
	return d, nil
}

// reconcile brings the notification log up to date with the notices still
// in the outbox: a crash between writing a notice and logging it must not
// make the group notify again.
func (d *Dispatcher) reconcile(ctx context.Context) {
	for _, n := range d.box.pending() {
		if n.Flapping {
			continue
		}
		s, err := d.o.NotifyLog.Get(ctx, n.GroupKey)
		if err != nil {
			d.log.Warn("cannot read the notification log", "group", n.GroupKey, "err", err)
			continue
		}
		if s != nil && !n.Created.After(s.Sent) {
			continue
		}
		if s == nil {
			s = &Sent{}
		}
		s.Sent, s.Firing = n.Created, nil
		for _, a := range n.firing() {
			s.Firing = append(s.Firing, a.Fingerprint())
		}
		slices.Sort(s.Firing)
		if s.Thread == "" {
			s.Thread = n.Thread
		}
		if err := d.o.NotifyLog.Put(ctx, n.GroupKey, s); err != nil {
			d.log.Warn("cannot write the notification log", "group", n.GroupKey, "err", err)
		}
	}
}

func checkReceivers(r *Route, ns map[string]Notifier) error {
	if ns[r.Receiver] == nil {
		return fmt.Errorf("notify: route %s: no notifier for receiver %q", r.ID, r.Receiver)
	}
	for _, c := range r.Routes {
		if err := checkReceivers(c, ns); err != nil {
			return err
		}
	}
	return nil
}

// Notify takes the alerts of one evaluation (firing or just resolved),
// files them into their groups, and queues the notices that are due.
// Delivery happens in Run (or Deliver).
func (d *Dispatcher) Notify(ctx context.Context, alerts []alert.Alert) error {
	now := d.o.Now()
	d.mu.Lock()
	for _, a := range alerts {
		if a.State != alert.Firing && a.State != alert.Resolved {
			continue
		}
		fp := a.Fingerprint()
		startsFlapping := d.trackFlap(fp, a.State, now)
		for _, r := range d.o.Route.Match(a.Labels) {
			gl := r.groupLabels(a.Labels)
			key := groupKey(r, gl)
			g := d.groups[key]
			if g == nil {
				g = &group{key: key, route: r, labels: gl, alerts: map[string]alert.Alert{}, seen: map[string]time.Time{},
					next: now.Add(r.GroupWait), flapNew: map[string]bool{}}
				d.groups[key] = g
				s, err := d.o.NotifyLog.Get(ctx, key)
				if err != nil {
					// Unknown: as if never told; a notice may repeat.
					d.log.Warn("cannot read the notification log", "group", key, "err", err)
				}
				if s == nil {
					s = &Sent{}
				}
				d.nflog[key] = s
			}
			g.alerts[fp] = a
			g.seen[fp] = now
			if startsFlapping {
				g.flapNew[fp] = true
			}
		}
	}
	d.mu.Unlock()
	return d.Flush(ctx)
}

// trackFlap records a change of state of fp at now and reports whether
// the alert begins to flap with it.
func (d *Dispatcher) trackFlap(fp string, st alert.State, now time.Time) bool {
	if d.o.Flap.Changes < 0 {
		return false
	}
	f := d.flaps[fp]
	if f == nil {
		f = &flapState{last: alert.Resolved}
		d.flaps[fp] = f
	}
	if f.last == st {
		return false
	}
	f.last = st
	f.changes = append(f.changes, now)
	for len(f.changes) > 0 && now.Sub(f.changes[0]) > d.o.Flap.Window {
		f.changes = f.changes[1:]
	}
	if !f.flapping && len(f.changes) >= d.o.Flap.Changes {
		f.flapping = true
		return true
	}
	return false
}

// Flush queues the notices of every group that is due at the current time.
func (d *Dispatcher) Flush(ctx context.Context) error {
	now := d.o.Now()
	d.refreshSilences(ctx, now)
	d.mu.Lock()
	defer d.mu.Unlock()
	for fp, f := range d.flaps {
		if f.flapping && now.Sub(f.changes[len(f.changes)-1]) >= d.o.Flap.Stable {
			f.flapping, f.changes = false, nil // stable: counts afresh
		}
		for len(f.changes) > 0 && now.Sub(f.changes[0]) > d.o.Flap.Window {
			f.changes = f.changes[1:]
		}
		if !f.flapping && len(f.changes) == 0 && f.last == alert.Resolved {
			delete(d.flaps, fp)
		}
	}
	muted := d.inhibited()
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(d.groups)) {
		g := d.groups[key]
		if now.Before(g.next) {
			continue
		}
		if err := d.flushGroup(ctx, g, now, muted); err != nil {
			errs = append(errs, err)
		}
		if len(g.alerts) == 0 {
			delete(d.groups, key)
			delete(d.nflog, key)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("notify: queue notices: %w", errs[0])
	}
	return nil
}

// inhibited returns the built-in inhibition's verdict for labels.
func (d *Dispatcher) inhibited() func(map[string]string) bool {
	if !d.o.BuiltinRules {
		return func(map[string]string) bool { return false }
	}
	esDown := false
	absent := map[string]bool{}
	for _, g := range d.groups {
		for _, a := range g.alerts {
			if a.State != alert.Firing {
				continue
			}
			switch a.Labels["alertname"] {
			case AlertESUnreachable:
				esDown = true
			case AlertAgentAbsent:
				for _, k := range []string{"host.name", "kubernetes.node.name"} {
					if h := a.Labels[k]; h != "" {
						absent[h] = true
					}
				}
			}
		}
	}
	return func(l map[string]string) bool {
		name := l["alertname"]
		if esDown && name != AlertESUnreachable {
			return true
		}
		if name == AlertAgentAbsent || name == AlertESUnreachable {
			return false
		}
		return (l["host.name"] != "" && absent[l["host.name"]]) || (l["kubernetes.node.name"] != "" && absent[l["kubernetes.node.name"]])
	}
}

// flushGroup queues g's notice if its receiver has not been told what it
// holds, or repeat_interval has passed, and the flapping notice of alerts
// that just began to flap.
func (d *Dispatcher) flushGroup(ctx context.Context, g *group, now time.Time, inhibited func(map[string]string) bool) error {
	g.next = now.Add(g.route.GroupInterval)
	prev := d.nflog[g.key]
	wasFiring := map[string]bool{}
	for _, fp := range prev.Firing {
		wasFiring[fp] = true
	}
	var firing, resolved, flapNotice []alert.Alert
	var firingFPs []string
	for _, fp := range slices.Sorted(maps.Keys(g.alerts)) {
		a := g.alerts[fp]
		if a.State == alert.Firing && now.Sub(g.seen[fp]) > d.o.StaleAfter {
			delete(g.alerts, fp) // no longer handed over: forgotten, no notice
			delete(g.seen, fp)
			continue
		}
		if f := d.flaps[fp]; f != nil && f.flapping {
			if g.flapNew[fp] {
				delete(g.flapNew, fp)
				fa := a
				fa.Annotations = clone(a.Annotations)
				fa.Annotations["flapping"] = fmt.Sprintf("changed state %d times within %s; no notice until it keeps one state for %s",
					d.o.Flap.Changes, d.o.Flap.Window, d.o.Flap.Stable)
				flapNotice = append(flapNotice, fa)
			}
			if wasFiring[fp] {
				firingFPs = append(firingFPs, fp) // unchanged while flapping
			}
			continue
		}
		delete(g.flapNew, fp)
		if a.State == alert.Resolved {
			if wasFiring[fp] {
				resolved = append(resolved, a)
			}
			delete(g.alerts, fp)
			delete(g.seen, fp)
			continue
		}
		if silenced(d.sil, a.Labels, now) || inhibited(a.Labels) {
			continue
		}
		firing = append(firing, a)
		firingFPs = append(firingFPs, fp)
	}
	sort.Strings(firingFPs)
	if len(flapNotice) > 0 {
		if err := d.queue(g, prev, "firing", true, flapNotice, now); err != nil {
			return err
		}
	}
	news := false
	for _, fp := range firingFPs {
		if !wasFiring[fp] {
			news = true
		}
	}
	repeat := len(firing) > 0 && now.Sub(prev.Sent) >= g.route.RepeatInterval
	if !news && len(resolved) == 0 && !repeat {
		if !slices.Equal(firingFPs, prev.Firing) && len(prev.Firing) > 0 {
			prev.Firing = firingFPs // muted alerts leave the log silently
			d.putLog(ctx, g.key, prev)
		}
		return nil
	}
	status := "resolved"
	if len(firing) > 0 {
		status = "firing"
	}
	if err := d.queue(g, prev, status, false, append(firing, resolved...), now); err != nil {
		return err
	}
	prev.Firing = firingFPs
	prev.Sent = now
	if len(firingFPs) == 0 {
		prev.Thread = "" // resolved: the next incident starts a new thread
	}
	d.putLog(ctx, g.key, prev)
	return nil
}

// putLog records what the group was told. The notice is safe in the outbox
// and this process remembers it; a failed write (Elasticsearch down) only
// risks that another replica taking over repeats it, so it is logged, not
// returned.
func (d *Dispatcher) putLog(ctx context.Context, key string, s *Sent) {
	if err := d.o.NotifyLog.Put(ctx, key, s); err != nil {
		d.log.Warn("cannot write the notification log", "group", key, "err", err)
	}
}

// queue writes a notice to the outbox (durably, before the notification
// log records it) and wakes the delivery loop.
func (d *Dispatcher) queue(g *group, prev *Sent, status string, flapping bool, alerts []alert.Alert, now time.Time) error {
	prev.Seq++
	sum := sha256.Sum256([]byte(g.key + "\x00" + strconv.FormatInt(now.UnixNano(), 10) + "\x00" + strconv.Itoa(prev.Seq)))
	n := &Notice{
		ID: hex.EncodeToString(sum[:12]), Receiver: g.route.Receiver, GroupKey: g.key, GroupLabels: g.labels,
		Status: status, Flapping: flapping, Alerts: alerts, ExternalURL: d.o.ExternalURL,
		Thread: prev.Thread, Created: now, NextAttempt: now,
	}
	if n.Thread == "" {
		n.Thread = n.ID
		prev.Thread = n.ID
	}
	if err := d.box.put(n); err != nil {
		return err
	}
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return nil
}

// refreshSilences reads the silences again when SilenceRefresh has passed;
// on error the ones read before stay.
func (d *Dispatcher) refreshSilences(ctx context.Context, now time.Time) {
	if d.o.Silences == nil || (!d.silLoaded.IsZero() && now.Sub(d.silLoaded) < d.o.SilenceRefresh) {
		return
	}
	all, err := d.o.Silences.List(ctx)
	if err != nil {
		d.log.Warn("cannot read silences; keeping the ones read before", "store", d.o.Silences.Where(), "err", err)
		return
	}
	p := parseSilences(all)
	d.mu.Lock()
	d.sil, d.silLoaded = p, now
	d.mu.Unlock()
}

// ReloadSilences reads the silences now (after one was added or expired).
func (d *Dispatcher) ReloadSilences(ctx context.Context) {
	d.mu.Lock()
	d.silLoaded = time.Time{}
	d.mu.Unlock()
	d.refreshSilences(ctx, d.o.Now())
}

// Deliver sends every queued notice whose time has come, once each; a
// failed one is tried again after its backoff (or the receiver's
// Retry-After), until MaxAge.
func (d *Dispatcher) Deliver(ctx context.Context) {
	d.delivering.Lock()
	defer d.delivering.Unlock()
	for _, n := range d.box.pending() {
		if ctx.Err() != nil {
			return
		}
		now := d.o.Now()
		if now.Before(n.NextAttempt) {
			continue
		}
		if now.Sub(n.Created) > d.o.MaxAge {
			d.log.Error("notice dropped: not delivered in time", "receiver", n.Receiver, "group", n.GroupKey, "attempts", n.Attempts)
			d.count(n.Receiver, "expired")
			d.box.remove(n.ID)
			continue
		}
		nt := d.o.Notifiers[n.Receiver]
		if nt == nil {
			d.log.Error("notice dropped: receiver no longer configured", "receiver", n.Receiver)
			d.count(n.Receiver, "failed")
			d.box.remove(n.ID)
			continue
		}
		answer, err := nt.Send(ctx, n)
		n.Attempts++
		if err == nil {
			d.log.Info("notice sent", "receiver", n.Receiver, "group", n.GroupKey, "status", n.Status, "answer", answer)
			d.count(n.Receiver, "sent")
			d.box.remove(n.ID)
			continue
		}
		retry, after := retryable(err)
		if !retry {
			d.log.Error("notice dropped: receiver refused it", "receiver", n.Receiver, "group", n.GroupKey, "err", err)
			d.count(n.Receiver, "failed")
			d.box.remove(n.ID)
			continue
		}
		wait := after
		if wait <= 0 {
			wait = min(d.o.BackoffInitial<<min(n.Attempts-1, 20), d.o.BackoffMax)
		}
		n.NextAttempt = d.o.Now().Add(wait)
		d.log.Warn("notice not delivered; will retry", "receiver", n.Receiver, "group", n.GroupKey, "attempt", n.Attempts, "retry_in", wait, "err", err)
		d.count(n.Receiver, "retry")
		if err := d.box.update(n); err != nil {
			d.log.Error("outbox", "err", err)
		}
	}
}

// Run flushes due groups and delivers notices until ctx ends, every tick
// and whenever Notify queued something.
func (d *Dispatcher) Run(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if err := d.Flush(ctx); err != nil {
			d.log.Error("alerting", "err", err)
		}
		d.Deliver(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
	}
}

func (d *Dispatcher) count(receiver, result string) {
	d.mu.Lock()
	d.stats[[2]string{receiver, result}]++
	d.mu.Unlock()
}

// Stats adds the dispatcher's counters to m: notices by receiver and
// result (sent, retry: an attempt that failed and will be repeated,
// failed: refused, expired: not delivered within max age) and the notices
// waiting in the outbox.
func (d *Dispatcher) Stats(m map[string]uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range d.stats {
		m[fmt.Sprintf("ferry_aggregator_alert_notices_total{receiver=%q,result=%q}", k[0], k[1])] = v
	}
	m["ferry_aggregator_alert_outbox_pending"] = uint64(d.box.len())
}

// Count returns the counter of receiver and result (for tests and the CLI).
func (d *Dispatcher) Count(receiver, result string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats[[2]string{receiver, result}]
}
