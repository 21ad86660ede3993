package ops

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// seriesName finds Ferry's own metric names in Go source: a string literal
// (quoted or raw) starting with ferry_agent_, ferry_aggregator_, ferry_alerting_ or
// ferry_errors_ (what follows, labels or a Sprintf verb, is not part of it).
var seriesName = regexp.MustCompile("[\"`](ferry_(?:agent|aggregator|alerting|errors)_[a-z0-9_]*[a-z0-9])")

// namesInSource returns the metric names the repository's non-test Go
// files use, outside the help table itself, with a file using each.
func namesInSource(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join("..")
	names := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || filepath.Base(p) == "metrichelp.go" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range seriesName.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestHelpTexts: every ferry_ metric name the code uses has a HELP text in
// the table (so neither binary serves the generic fallback), every entry
// of the table is still used somewhere, and no entry is empty or generic.
func TestHelpTexts(t *testing.T) {
	used := namesInSource(t)
	if len(used) < 50 {
		t.Fatalf("found only %d metric names in the source: the scan is broken", len(used))
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range used {
			if !yield(n) {
				return
			}
		}
	}) {
		if _, ok := Help(name); !ok {
			t.Errorf("%s (used in %s) has no HELP text in ops/metrichelp.go", name, used[name])
		}
	}
	for _, name := range HelpNames() {
		if _, ok := used[name]; !ok && name != ErrorsName {
			t.Errorf("ops/metrichelp.go has a HELP text for %s, which no code exports any more", name)
		}
		h, _ := Help(name)
		if len(h) < 15 || strings.Contains(h, "see the README's metric list") || !strings.HasSuffix(h, ".") {
			t.Errorf("HELP of %s is %q: want a sentence saying what it counts", name, h)
		}
	}
}

// TestErrorsAndDrops: the derived series come out of /metrics as one
// labelled counter family each, with the table's HELP text, every pair of
// the closed set present (0 where nothing happened) and pairs given twice
// summed.
func TestErrorsAndDrops(t *testing.T) {
	stats := func() map[string]uint64 {
		m := map[string]uint64{}
		AddErrors(m, []Errors{{"tail", "unreadable", 2}, {"syslog", "oversize", 0}, {"tail", "unreadable", 1}})
		AddDrops(m, "ferry_agent_events_dropped_total", []Drops{{Reason: "syslog_overflow", N: 7}, {Reason: "metric_cycles_expired", Intentional: true}})
		return m
	}
	h, err := StartHealth("127.0.0.1:0", Checks{Ready: func() error { return nil }}, stats, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	fams := scrape(t, h)
	cases := []struct {
		name   string
		labels string
		want   float64
	}{
		{ErrorsName, "reason=unreadable,stage=tail", 3},
		{ErrorsName, "reason=oversize,stage=syslog", 0},
		{"ferry_agent_events_dropped_total", "intentional=false,reason=syslog_overflow", 7},
		{"ferry_agent_events_dropped_total", "intentional=true,reason=metric_cycles_expired", 0},
	}
	for _, c := range cases {
		f := fams[c.name]
		if f == nil {
			t.Fatalf("/metrics lacks %s", c.name)
		}
		if want, _ := Help(c.name); f.GetHelp() != want {
			t.Errorf("HELP of %s = %q, want the table's %q", c.name, f.GetHelp(), want)
		}
		found := false
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			if strings.Join(ls, ",") == c.labels {
				found = true
				if got := value(m); got != c.want || m.Counter == nil {
					t.Errorf("%s{%s} = %v (counter %v), want counter %v", c.name, c.labels, got, m.Counter != nil, c.want)
				}
			}
		}
		if !found {
			t.Errorf("%s{%s} missing", c.name, c.labels)
		}
	}
	if n := len(fams[ErrorsName].Metric); n != 2 {
		t.Errorf("%s has %d series, want 2 (a pair given twice is one series)", ErrorsName, n)
	}
}
