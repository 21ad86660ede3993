package main

import (
	"log/slog"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/ops"
	"github.com/ferrylogs/ferry/pipeline/tail"
)

// agentReload applies the configuration file again on SIGHUP. What can
// change while the agent runs is applied: the inputs (paths, excludes,
// inputs added or removed; see tail.Manager.SetInputs) and log.level; the
// TLS and token files are read again. Every other changed key is named in a
// warning as needing a restart, and the agent keeps running with its
// previous value. An invalid file changes nothing: each error is logged
// with its field, line and column.
type agentReload struct {
	path   string        // the --config file; "" for the embedded defaults
	cur    *config.Agent // what runs: the start configuration with the live keys applied since
	level  *slog.LevelVar
	inputs interface{ SetInputs([]tail.Input) error }
	files  []ops.Reloadable
	log    *slog.Logger
}

// reload reads the file, applies what it can and logs the rest.
func (r *agentReload) reload() {
	for _, f := range r.files {
		f.Reload()
	}
	if r.path == "" {
		r.log.Warn("SIGHUP: no configuration file to reload (started without --config); TLS and token files read again")
		return
	}
	next, err := config.LoadAgent(r.path)
	if err != nil {
		config.LogRejected(r.log, r.path, err)
		return
	}
	var applied, restart, inputs []string
	for _, key := range config.Changed(r.cur, next) {
		switch {
		case config.Under(key, "log.level"):
			r.level.Set(ops.ParseLevel(next.Log.Level))
			r.cur.Log.Level = next.Log.Level
			applied = append(applied, key)
		case config.Under(key, "inputs"):
			inputs = append(inputs, key)
		default:
			r.log.Warn("configuration reload: this change needs a restart; running with the previous value until then", "file", r.path, "key", key)
			restart = append(restart, key)
		}
	}
	if len(inputs) > 0 {
		if err := syslogNeedsRestart(r.cur.Inputs, next.Inputs); err != nil {
			r.log.Warn("configuration reload: this change needs a restart; running with the previous value until then", "file", r.path, "key", "inputs", "err", err)
			restart = append(restart, "inputs")
			inputs = nil
		}
	}
	if len(inputs) > 0 {
		ins, err := tailInputs(next.Inputs)
		if err == nil {
			err = r.inputs.SetInputs(ins)
		}
		if err != nil {
			r.log.Error("configuration reload: inputs not changed", "file", r.path, "err", err)
		} else {
			r.cur.Inputs = next.Inputs
			applied = append(applied, inputs...)
		}
	}
	r.log.Info("configuration reloaded", "file", r.path, "applied", applied, "needs_restart", restart)
}
