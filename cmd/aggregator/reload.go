package main

import (
	"log/slog"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/ops"
)

// liveKey is a configuration key (or a prefix of keys) that can change
// while the aggregator runs: apply puts the new value in effect and copies
// it into the running configuration.
type liveKey struct {
	key   string
	apply func(next *config.Aggregator) error
}

// aggregatorReload applies the configuration file again on SIGHUP: the
// keys in live take effect, the TLS and tokens files are read again, and
// every other changed key is named in a warning as needing a restart (the
// aggregator keeps its previous value). An invalid file changes nothing:
// each error is logged with its field, line and column.
type aggregatorReload struct {
	path  string             // the --config file; "" for the embedded defaults
	cur   *config.Aggregator // what runs: the start configuration with the live keys applied since
	level *slog.LevelVar
	files []ops.Reloadable
	// live lists what can change without a restart. Alert rules, once
	// they exist, go here.
	live []liveKey
	log  *slog.Logger
}

func newAggregatorReload(path string, cfg *config.Aggregator, level *slog.LevelVar, log *slog.Logger) *aggregatorReload {
	running := *cfg
	r := &aggregatorReload{path: path, cur: &running, level: level, log: log}
	r.live = []liveKey{
		{"log.level", func(next *config.Aggregator) error {
			r.level.Set(ops.ParseLevel(next.Log.Level))
			r.cur.Log.Level = next.Log.Level
			return nil
		}},
	}
	return r
}

// reload reads the file, applies what it can and logs the rest.
func (r *aggregatorReload) reload() {
	for _, f := range r.files {
		f.Reload()
	}
	if r.path == "" {
		r.log.Warn("SIGHUP: no configuration file to reload (started without --config); TLS and tokens files read again")
		return
	}
	next, err := config.LoadAggregator(r.path)
	if err != nil {
		config.LogRejected(r.log, r.path, err)
		return
	}
	var restart []string
	changed := map[int][]string{} // index in live -> its changed keys
	for _, key := range config.Changed(r.cur, next) {
		i := 0
		for i < len(r.live) && !config.Under(key, r.live[i].key) {
			i++
		}
		if i == len(r.live) {
			r.log.Warn("configuration reload: this change needs a restart; running with the previous value until then", "file", r.path, "key", key)
			restart = append(restart, key)
			continue
		}
		changed[i] = append(changed[i], key)
	}
	var applied []string
	for i, l := range r.live {
		if len(changed[i]) == 0 {
			continue
		}
		if err := l.apply(next); err != nil {
			r.log.Error("configuration reload: not changed", "file", r.path, "key", l.key, "err", err)
			continue
		}
		applied = append(applied, changed[i]...)
	}
	r.log.Info("configuration reloaded", "file", r.path, "applied", applied, "needs_restart", restart)
}
