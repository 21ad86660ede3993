package elasticsearch

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults of the outage log and of slow requests.
const (
	// warnEvery is the cadence of the warnings while delivery keeps failing.
	warnEvery = time.Minute
	// slowAfter is how long a request may go unanswered before a warning
	// says so: a cluster that hangs (stopped, a full GC, a dead network
	// path) fails a request only at requestTimeout.
	slowAfter = 10 * time.Second
)

// outage keeps a long or hanging outage readable in the log. The first
// failed attempt (or a request unanswered for slowAfter) is a warning at
// once; while failures go on, one warning per warnEvery says how long, and
// how many attempts failed since the last one (each failure is a debug
// line); the first success after a warning logs the recovery: how long
// delivery failed and how many attempts. A failure within warnEvery of the
// last warning (a cluster that flaps, 429s under load) waits for the next
// warning instead of starting one of its own, so warnings come at most once
// per warnEvery.
type outage struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu     sync.Mutex
	since  time.Time // first failure (or slow request) of this outage; zero: none
	warned bool      // a warning was logged for this outage
	last   time.Time // the last warning
	// Counts since the last warning, and over the whole outage.
	attempts, failures         int
	totalAttempts, totalFailed int
}

func newOutage(log *slog.Logger) *outage {
	return &outage{log: log, every: warnEvery, now: time.Now}
}

// failed records a failed attempt of what ("bulk request", "template
// setup") with its error and attributes, and logs it: a warning when one is
// due, else a debug line.
func (o *outage) failed(ctx context.Context, what string, err error, attrs ...any) {
	o.mu.Lock()
	now := o.now()
	if o.since.IsZero() {
		o.since = now
	}
	o.attempts++
	o.failures++
	o.totalAttempts++
	o.totalFailed++
	warn := o.last.IsZero() || now.Sub(o.last) >= o.every
	msg := what + " failed, retrying"
	if warn {
		if o.warned {
			msg = "Elasticsearch delivery still failing: " + what + " failed, retrying"
		}
		attrs = append(attrs, "failing_for", now.Sub(o.since).Round(time.Millisecond),
			"attempts_since_last_warning", o.attempts, "failed_since_last_warning", o.failures)
		o.last, o.warned = now, true
		o.attempts, o.failures = 0, 0
	}
	o.mu.Unlock()
	level := slog.LevelDebug
	if warn {
		level = slog.LevelWarn
	}
	o.log.Log(ctx, level, msg, append(attrs, "err", err)...)
}

// slow records that a request of what has had no answer for d (it times
// out after timeout); it starts an outage, and its warning, if due, comes
// before the request fails.
func (o *outage) slow(ctx context.Context, what string, d, timeout time.Duration, attrs ...any) {
	o.mu.Lock()
	now := o.now()
	if o.since.IsZero() {
		o.since = now.Add(-d)
	}
	warn := o.last.IsZero() || now.Sub(o.last) >= o.every
	if warn {
		attrs = append(attrs, "failing_for", now.Sub(o.since).Round(time.Millisecond),
			"attempts_since_last_warning", o.attempts, "failed_since_last_warning", o.failures)
		o.last, o.warned = now, true
		o.attempts, o.failures = 0, 0
	}
	o.mu.Unlock()
	if warn {
		o.log.Log(ctx, slog.LevelWarn, "Elasticsearch does not answer: "+what+" unanswered for "+d.String()+"; waiting up to "+timeout.String(), attrs...)
	}
}

// succeeded records an attempt that Elasticsearch answered; it ends an
// outage, logging the recovery if the outage was warned about.
func (o *outage) succeeded() {
	o.mu.Lock()
	if o.since.IsZero() {
		o.mu.Unlock()
		return
	}
	now := o.now()
	failedFor, attempts, failed, warned := now.Sub(o.since), o.totalAttempts+1, o.totalFailed, o.warned
	o.since, o.warned = time.Time{}, false
	o.attempts, o.failures, o.totalAttempts, o.totalFailed = 0, 0, 0, 0
	o.mu.Unlock()
	level := slog.LevelDebug
	if warned {
		level = slog.LevelInfo
	}
	o.log.Log(context.Background(), level, "Elasticsearch delivery resumed",
		"after", failedFor.Round(time.Millisecond), "attempts", attempts, "failed_attempts", failed)
}
