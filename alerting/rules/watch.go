package rules

import (
	"context"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch loads dir again when a file in it changes and on every receive
// from hup, until ctx ends, and calls apply with the new rules only when
// every file validates; otherwise it logs each problem and the old rules
// stay. It does not load dir at start (the caller did).
func Watch(ctx context.Context, dir string, hup <-chan struct{}, apply func([]*Rule), log *slog.Logger) {
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(dir); err != nil {
			w.Close()
		}
	}
	var events <-chan fsnotify.Event
	if err != nil {
		log.Warn("alerting: cannot watch the rules directory; reloading on SIGHUP only", "dir", dir, "err", err)
	} else {
		defer w.Close()
		events = w.Events
	}
	var settle <-chan time.Time
	reload := func(why string) {
		rs, err := LoadDir(dir)
		if err != nil {
			log.Error("alerting: rules not reloaded; the previous rules stay", "dir", dir, "why", why, "err", err)
			return
		}
		apply(rs)
		log.Info("alerting: rules reloaded", "dir", dir, "why", why, "rules", len(rs))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload("SIGHUP")
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			// A burst of events (an editor's save, a ConfigMap's swap) is
			// loaded once it settles.
			settle = time.After(250 * time.Millisecond)
		case <-settle:
			settle = nil
			reload("file changed")
		}
	}
}
