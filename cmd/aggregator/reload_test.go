package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/internal/testlog"
	"github.com/ferrylogs/ferry/ops"
)

type countReloads struct{ n int }

func (c *countReloads) Reload() { c.n++ }

// aggregatorReload: log.level applied, other keys named as needing a
// restart, an invalid file logged by field, TLS and tokens files read again.
func TestAggregatorReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "aggregator.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sinks: [{type: stdout}]\n")
	cfg, err := config.LoadAggregator(path)
	if err != nil {
		t.Fatal(err)
	}
	log, logs := testlog.New(t, "aggregator")
	level := new(slog.LevelVar)
	files := &countReloads{}
	r := newAggregatorReload(path, cfg, level, log)
	r.files = []ops.Reloadable{files}

	write("log: {level: warn}\nmax_batches_in_flight: 2\nsinks: [{type: stdout}, {type: file, path: /x}]\n")
	r.reload()
	if level.Level() != slog.LevelWarn {
		t.Errorf("log level %v, want warn", level.Level())
	}
	for _, key := range []string{"max_batches_in_flight", "sinks"} {
		if logs.Count("needs a restart") != 2 || logs.Count("key="+key) != 1 {
			t.Errorf("%s not named once as needing a restart:\n%s", key, logs.String())
		}
	}
	if logs.Count("applied=[log.level]") != 1 {
		t.Errorf("log.level not reported applied:\n%s", logs.String())
	}

	write("ack_timeout: 1ns\nsinks: [{type: stdout}]\n")
	r.reload()
	if logs.Count("field=ack_timeout") != 1 {
		t.Errorf("invalid ack_timeout not logged by field:\n%s", logs.String())
	}
	if files.n != 2 {
		t.Errorf("TLS and tokens files read again %d times, want 2", files.n)
	}
}
