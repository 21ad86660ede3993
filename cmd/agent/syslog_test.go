package main

import (
	"testing"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/pipeline/tail"
)

func TestSyslogNeedsRestart(t *testing.T) {
	file := config.Input{Name: "f", Type: "file", Parser: "none"}
	parsed := config.Input{Name: "lb", Type: "file", Parser: "haproxy"}
	sys := config.Input{Name: "s", Type: "syslog", Listen: "udp://:5514", Parser: "haproxy"}
	moved := sys
	moved.Listen = "tcp://:5514"
	for _, c := range []struct {
		name      string
		cur, next []config.Input
		restart   bool
	}{
		{"file input added", []config.Input{sys}, []config.Input{sys, file}, false},
		{"file input removed", []config.Input{sys, file}, []config.Input{sys}, false},
		{"parsed input added", []config.Input{file}, []config.Input{file, parsed}, true},
		{"syslog input changed", []config.Input{sys}, []config.Input{moved}, true},
		{"syslog input removed", []config.Input{sys, file}, []config.Input{file}, true},
	} {
		if err := syslogNeedsRestart(c.cur, c.next); (err != nil) != c.restart {
			t.Errorf("%s: %v, want restart %v", c.name, err, c.restart)
		}
	}
	if p := parsers([]config.Input{file, parsed, sys}); len(p) != 2 || p["lb"] == nil || p["s"] == nil {
		t.Errorf("parsers %v", p)
	}
}

type fileCommits struct{ got []int64 }

func (f *fileCommits) Commit(_ *tail.File, end int64, _ bool) { f.got = append(f.got, end) }

func TestCommitsRouteFiles(t *testing.T) {
	fc := &fileCommits{}
	c := newCommits(fc, nil)
	c.Commit(&tail.File{ID: "x"}, 10, false)
	if len(fc.got) != 1 || fc.got[0] != 10 {
		t.Fatalf("file commits %v", fc.got)
	}
}

// TestHAProxyHostExample: the example configuration of the HAProxy host
// (deploy/haproxy/agent.yaml) is valid and says what the README says.
func TestHAProxyHostExample(t *testing.T) {
	cfg, err := config.LoadAgent("../../deploy/haproxy/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Inputs[0]
	if in.Type != "syslog" || in.Listen != "tcp://127.0.0.1:5514" || in.Parser != "haproxy" || in.Dataset != "haproxy.log" || in.Environment != "prod" {
		t.Fatalf("first input %+v", in)
	}
	if cfg.StateDir != "/var/lib/ferry-agent" {
		t.Fatalf("state_dir %s, want the unit's StateDirectory", cfg.StateDir)
	}
}
