package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/internal/testlog"
	"github.com/ferrylogs/ferry/ops"
	"github.com/ferrylogs/ferry/pipeline/tail"
)

type fakeInputs struct {
	calls [][]tail.Input
	err   error
}

func (f *fakeInputs) SetInputs(in []tail.Input) error {
	f.calls = append(f.calls, in)
	return f.err
}

type fakeFiles struct{ n int }

func (f *fakeFiles) Reload() { f.n++ }

// agentReload decides per changed key: inputs (once, whatever changed in
// them) and log.level applied, the rest named as needing a restart, an
// invalid file logged by field and not applied, TLS and token files read
// again on every SIGHUP.
func TestAgentReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const start = "node: n\ninputs:\n  - {type: file, paths: [/a.log]}\n"
	write(start)
	cfg, err := config.LoadAgent(path)
	if err != nil {
		t.Fatal(err)
	}
	log, logs := testlog.New(t, "agent")
	level := new(slog.LevelVar)
	ins, files := &fakeInputs{}, &fakeFiles{}
	r := &agentReload{path: path, cur: cfg, level: level, inputs: ins, files: []ops.Reloadable{files}, log: log}

	write("node: n\nlog: {level: error}\nstate_dir: /elsewhere\naggregator: {batch_max_events: 10}\ninputs:\n" +
		"  - {type: file, paths: [/a.log, /b.log], exclude: [x]}\n  - {type: container}\n")
	r.reload()
	if level.Level() != slog.LevelError {
		t.Errorf("log level %v, want error", level.Level())
	}
	if len(ins.calls) != 1 || len(ins.calls[0]) != 2 || len(ins.calls[0][0].Paths) != 2 {
		t.Errorf("SetInputs calls %+v, want one with the two new inputs", ins.calls)
	}
	for _, key := range []string{"state_dir", "aggregator.batch_max_events"} {
		if logs.Count("needs a restart") == 0 || logs.Count("key="+key) != 1 {
			t.Errorf("%s not named once as needing a restart", key)
		}
	}
	if files.n != 1 {
		t.Errorf("TLS and token files read again %d times, want 1", files.n)
	}
	if r.cur.StateDir != "./state" || len(r.cur.Inputs) != 2 || r.cur.Log.Level != "error" {
		t.Errorf("running configuration %+v: want the live keys only changed", r.cur)
	}

	// The same file again: nothing new to apply, the restart keys still named.
	r.reload()
	if len(ins.calls) != 1 || logs.Count("key=state_dir") != 2 {
		t.Errorf("second reload: %d SetInputs calls, state_dir named %d times", len(ins.calls), logs.Count("key=state_dir"))
	}

	// Inputs refused by the manager stay as they were.
	ins.err = errors.New("no")
	write(start)
	r.reload()
	if len(r.cur.Inputs) != 2 || logs.Count("inputs not changed") != 1 {
		t.Errorf("refused inputs: running %d inputs, %d errors logged", len(r.cur.Inputs), logs.Count("inputs not changed"))
	}

	// An invalid file: every error by field, nothing applied.
	write("node: n\nlog: {level: debug}\ninputs:\n  - {type: file, paths: [/a.log], poll_interval: 1ns, glob_interval: 1ns}\n")
	calls, before := len(ins.calls), level.Level()
	r.reload()
	for _, field := range []string{"inputs[0].poll_interval", "inputs[0].glob_interval"} {
		if logs.Count("field="+field) != 1 {
			t.Errorf("invalid %s not logged once by field:\n%s", field, logs.String())
		}
	}
	if level.Level() != before || len(ins.calls) != calls {
		t.Errorf("an invalid file was applied")
	}
	if files.n != 4 {
		t.Errorf("TLS and token files read again %d times, want 4", files.n)
	}
}
