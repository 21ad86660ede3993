package rules

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const contract = `rules:
  - name: HighCPU
    type: threshold
    index: "metrics-system.cpu-*"
    field: system.cpu.total.norm.pct
    aggregation: avg
    group_by: [host.name]
    window: 5m
    above: 0.9
    clear: 0.8
    for: 10m
    labels: { severity: warning }
    annotations: { summary: "CPU {{ humanizePercentage .Value }} on {{ index .Labels \"host.name\" }}" }
  - name: ErrorBurst
    type: frequency
    index: "logs-*"
    filter: { match: { message: "ERROR" } }
    group_by: [service.name, service.environment]
    window: 5m
    min_count: 50
`

func TestParseContract(t *testing.T) {
	rs, err := Parse("r.yaml", []byte(contract))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("%d rules", len(rs))
	}
	cpu, burst := rs[0], rs[1]
	if cpu.Type != Threshold || *cpu.Above != 0.9 || *cpu.Clear != 0.8 || cpu.For != 10*time.Minute || cpu.Window != 5*time.Minute || cpu.Line != 2 {
		t.Errorf("HighCPU: %+v", cpu)
	}
	got, err := cpu.Render(Data{Value: 0.934, Labels: map[string]string{"host.name": "node-1"}})
	if err != nil || got["summary"] != "CPU 93.4% on node-1" {
		t.Errorf("summary %q, %v", got["summary"], err)
	}
	if burst.Type != Frequency || *burst.MinCount != 50 || burst.Filter["match"] == nil {
		t.Errorf("ErrorBurst: %+v", burst)
	}
	if f := strings.Join(burst.Fields(), ","); f != "@timestamp,message,service.environment,service.name" {
		t.Errorf("fields %s", f)
	}
	// The same definition has the same key, another definition another.
	again, _ := Parse("other.yaml", []byte("\n\n"+contract))
	if again[0].Key() != cpu.Key() || again[1].Key() == cpu.Key() {
		t.Error("Key does not identify the definition")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // every error, in order
	}{
		{"not yaml", "rules: [", []string{"r.yaml:1:1: invalid YAML"}},
		{"not a list", "rules: {a: b}\n", []string{"r.yaml:1:8: rules must be a list"}},
		{"unknown top key", "rule: []\n", []string{`r.yaml:1:1: unknown key "rule"`}},
		{"every error at once", `rules:
  - name: A
    type: threshold
    index: logs-*
    window: 5x
    above: 1
  - name: B
    type: frequency
    index: logs-*
    window: 1m
    min_count: 1
    above: 3
  - type: nope
    index: logs-*
    window: 1m
`, []string{
			`r.yaml:2:5: rule A: field: required for aggregation avg`,
			`r.yaml:5:5: rule A: window: must be a duration (e.g. 30s, 5m, 1h, 7d), got "5x"`,
			`r.yaml:12:5: rule B: above: only for type threshold`,
			`r.yaml:13:5: rule: name: required`,
			`r.yaml:13:5: rule: type: must be one of frequency, threshold, baseline, absence, spike, got "nope"`,
		}},
		{"frequency needs a count", "rules:\n  - {name: F, type: frequency, index: logs-*, window: 1m}\n", []string{"r.yaml:2:5: rule F: min_count: min_count or max_count is required"}},
		{"clear above the bound", "rules:\n  - {name: T, type: threshold, index: m-*, field: x, window: 1m, above: 0.9, clear: 0.95}\n", []string{"r.yaml:2:78: rule T: clear: must not be more than above (0.9)"}},
		{"percentile missing", "rules:\n  - {name: T, type: threshold, index: m-*, field: x, aggregation: percentile, window: 1m, above: 1}\n", []string{"rule T: percentile: required for aggregation percentile"}},
		{"baseline band and stddev", "rules:\n  - {name: B, type: baseline, index: m-*, window: 1m, history_hours: 1, stddev: 3, band: [5, 95]}\n", []string{"rule B: band: cannot be used together with stddev"}},
		{"baseline no history", "rules:\n  - {name: B, type: baseline, index: m-*, window: 1m, stddev: 3}\n", []string{"rule B: history_hours: history_hours or history_days is required"}},
		{"bad band", "rules:\n  - {name: B, type: baseline, index: m-*, window: 1m, history_days: 7, band: [95, 5]}\n", []string{"rule B: band: must be [low, high] percentiles"}},
		{"absence lookback", "rules:\n  - {name: A, type: absence, index: logs-*, window: 10m, lookback: 5m}\n", []string{"rule A: lookback: must be longer than window (10m0s)"}},
		{"spike ratio", "rules:\n  - {name: S, type: spike, index: logs-*, window: 10m, ratio: 1}\n", []string{"rule S: ratio: must be more than 1"}},
		{"bad template", "rules:\n  - name: F\n    type: frequency\n    index: logs-*\n    window: 1m\n    min_count: 1\n    annotations: {summary: '{{ .Value '}\n",
			[]string{"r.yaml:7:5: rule F: annotations: summary: template: summary:1: unclosed action"}},
		{"alertname label", "rules:\n  - {name: F, type: frequency, index: logs-*, window: 1m, min_count: 1, labels: {alertname: x}}\n", []string{"rule F: labels: alertname is the rule's name"}},
		{"filter two clauses", "rules:\n  - {name: F, type: frequency, index: logs-*, window: 1m, min_count: 1, filter: {match: {a: b}, term: {c: d}}}\n", []string{"rule F: filter: must hold exactly one query clause, got 2"}},
		{"duplicate key", "rules:\n  - name: F\n    name: G\n", []string{"r.yaml:3:5: duplicate key name (first at line 2)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("r.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			es := err.(Errors)
			if len(tc.want) > 1 && len(es) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(es), len(tc.want), err)
			}
			if len(tc.want) == 1 {
				if !strings.Contains(err.Error(), tc.want[0]) {
					t.Errorf("errors:\n%v\nwant %s", err, tc.want[0])
				}
				return
			}
			for i, w := range tc.want {
				if !strings.Contains(es[i].Error(), w) {
					t.Errorf("error %d: %q, want %q\nall:\n%v", i, es[i].Error(), w, err)
				}
			}
		})
	}
}

func TestLoadDirDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	r := "rules:\n  - {name: F, type: frequency, index: logs-*, window: 1m, min_count: 1}\n"
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(r), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte(r), 0o644)
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("rules:\n  - {name: G, type: spike, index: logs-*, window: 1m}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a rule"), 0o644)
	_, err := LoadDir(dir)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		filepath.Join(dir, "c.yaml") + ":2:5: rule G: ratio: required",
		filepath.Join(dir, "b.yml") + `:2:5: rule name "F" also at ` + filepath.Join(dir, "a.yaml") + ":2",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("errors:\n%v\nwant %s", err, w)
		}
	}
}

func TestHumanize(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Humanize(1234), "1.234k"},
		{Humanize(0.001), "1m"},
		{Humanize(5), "5"},
		{Humanize1024(1536), "1.5Ki"},
		{HumanizeDuration(3723), "1h 2m 3s"},
		{HumanizeDuration(0.25), "250ms"},
		{Funcs["humanizePercentage"].(func(float64) string)(0.5), "50%"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestWatchAppliesOnlyValidSets(t *testing.T) {
	dir := t.TempDir()
	good := "rules:\n  - {name: F, type: frequency, index: logs-*, window: 1m, min_count: 1}\n"
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(good), 0o644)
	applied := make(chan []*Rule, 10)
	hup := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var logs syncBuffer
	go func() {
		defer close(done)
		Watch(ctx, dir, hup, func(rs []*Rule) { applied <- rs }, slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	defer func() { cancel(); <-done }()
	hup <- struct{}{} // received once the directory is watched
	if rs := <-applied; len(rs) != 1 {
		t.Fatalf("applied %d rules, want 1", len(rs))
	}
	// A second file: applied with both rules.
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(strings.ReplaceAll(good, "name: F", "name: G")), 0o644)
	select {
	case rs := <-applied:
		if len(rs) != 2 {
			t.Fatalf("applied %d rules, want 2", len(rs))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("file change not applied")
	}
	// A broken file: nothing applied, the error logged with its position.
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("rules:\n  - {name: G, type: frequency}\n"), 0o644)
	harnessWait(t, func() bool { return strings.Contains(logs.String(), "b.yaml:2:5: rule G: index: required") })
	hup <- struct{}{}
	harnessWait(t, func() bool { return strings.Count(logs.String(), "rules not reloaded") >= 2 })
	select {
	case rs := <-applied:
		t.Fatalf("applied %d rules from an invalid set", len(rs))
	default:
	}
	// Fixed, and SIGHUP: applied.
	os.Remove(filepath.Join(dir, "b.yaml"))
	hup <- struct{}{}
	select {
	case rs := <-applied:
		if len(rs) != 1 {
			t.Fatalf("applied %d rules, want 1", len(rs))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP not applied")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func harnessWait(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
