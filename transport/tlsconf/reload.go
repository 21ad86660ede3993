package tlsconf

import (
	"log/slog"
	"os"
	"sync"
	"time"
)

// watched is material loaded from files, loaded again when they change.
// A look at the files is a stat of each (identity, size, modification
// time), at most once per interval and only when the material is used: no
// goroutine, nothing to stop. A load that fails keeps the previous material
// and is logged once for that state of the files.
type watched[T any] struct {
	what     string // for logs, e.g. "server certificate"
	files    []string
	load     func() (T, error)
	describe func(T) []any // log attributes of new material; may be nil
	interval time.Duration // < 0: look on every use
	log      *slog.Logger

	mu   sync.Mutex
	cur  T
	gen  uint64      // loads of cur so far: a guard re-checks streams when it moves
	good []fileState // the files as they were when cur was loaded
	bad  []fileState // the files as they were at the last failed load
	next time.Time   // no look before then
}

type fileState struct {
	info os.FileInfo // nil when err is set
	err  string
}

// newWatched loads the material for the first time; an error here is the
// caller's (a process does not start with bad files).
func newWatched[T any](what string, files []string, o Options, load func() (T, error), describe func(T) []any) (*watched[T], error) {
	w := &watched[T]{what: what, files: files, load: load, describe: describe, interval: o.checkInterval(), log: o.logger()}
	st := states(files)
	v, err := load()
	if err != nil {
		return nil, err
	}
	w.cur, w.good, w.next = v, st, time.Now().Add(w.interval)
	return w, nil
}

// get returns the current material, loading it again first if the files
// changed since the last look.
func (w *watched[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if w.interval >= 0 && now.Before(w.next) {
		return w.cur
	}
	w.next = now.Add(w.interval)
	st := states(w.files)
	if sameStates(st, w.good) || w.bad != nil && sameStates(st, w.bad) {
		return w.cur
	}
	v, err := w.load()
	if err != nil {
		w.bad = st
		w.log.Warn("cannot reload "+w.what+"; keeping the previous one", "files", w.files, "err", err)
		return w.cur
	}
	w.cur, w.good, w.bad = v, st, nil
	w.gen++
	attrs := []any{"files", w.files}
	if w.describe != nil {
		attrs = append(attrs, w.describe(v)...)
	}
	w.log.Info("reloaded "+w.what, attrs...)
	return w.cur
}

// look looks at the files now if force is set, else as get does, and
// returns the generation of the material: it changes with every load.
func (w *watched[T]) look(force bool) uint64 {
	if force {
		w.mu.Lock()
		w.next = time.Time{}
		w.mu.Unlock()
	}
	w.get()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen
}

func states(files []string) []fileState {
	st := make([]fileState, len(files))
	for i, f := range files {
		info, err := os.Stat(f) // follows symlinks: a swapped ..data link is a change
		if err != nil {
			st[i].err = err.Error()
		} else {
			st[i].info = info
		}
	}
	return st
}

func sameStates(a, b []fileState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		switch {
		case x.info == nil || y.info == nil:
			if x.info != y.info || x.err != y.err {
				return false
			}
		case !os.SameFile(x.info, y.info) || x.info.Size() != y.info.Size() || !x.info.ModTime().Equal(y.info.ModTime()):
			return false
		}
	}
	return true
}

// limiter decides which failures to log: the first of a burst (failures
// from one key less than window apart), then at most one per window while
// the burst goes on, with the number of failures since the last line.
type limiter struct {
	window time.Duration
	now    func() time.Time

	mu     sync.Mutex
	bursts map[string]*burst
}

type burst struct {
	last   time.Time // last failure
	logged time.Time // last line
	n      int       // failures since the last line
}

// maxBursts bounds the keys a limiter tracks.
const maxBursts = 4096

func newLimiter(window time.Duration) *limiter {
	return &limiter{window: window, now: time.Now, bursts: map[string]*burst{}}
}

// note records a failure of key and reports whether to log it, and how many
// failures the line stands for.
func (l *limiter) note(key string) (bool, int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bursts[key]
	if b == nil && len(l.bursts) >= maxBursts {
		for k, old := range l.bursts {
			if now.Sub(old.last) > l.window {
				delete(l.bursts, k)
			}
		}
		if len(l.bursts) >= maxBursts {
			key = "" // too many at once: they share one burst
			b = l.bursts[key]
		}
	}
	if b == nil || now.Sub(b.last) > l.window {
		l.bursts[key] = &burst{last: now, logged: now}
		return true, 1
	}
	b.last = now
	b.n++
	if now.Sub(b.logged) < l.window {
		return false, 0
	}
	n := b.n
	b.logged, b.n = now, 0
	return true, n
}
