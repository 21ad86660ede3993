package multiline

import (
	"strings"
	"testing"
)

// vocabulary holds lines that start, continue, hold and end groups under
// the rules, so random sequences of them make every kind of group.
var vocabulary = []string{
	"", "  ", "plain log line", "2024-05-01 header",
	"java.lang.IllegalStateException: x", "\tat a.B.c(B.java:1)", "Caused by: a.BError", "\t... 3 more",
	"Traceback (most recent call last):", "  File \"x.py\", line 1", "ValueError: v",
	"During handling of the above exception, another exception occurred:",
	"panic: p", "goroutine 1 [running]:", "main.main()", "\t/app/m.go:1 +0x1", "created by main.x in goroutine 1",
	"/a/x.rb:1:in 'm': boom (RuntimeError)", "\tfrom /a/x.rb:2:in '<main>'",
	"System.Exception: e", "   at A.B()", " ---> System.X.YException: inner", "--- End of stack trace from previous location ---",
}

var fuzzConfigs = []Config{
	{Rule: RuleJava}, {Rule: RulePython}, {Rule: RuleGo}, {Rule: RuleRuby}, {Rule: RuleDotnet},
	{Rule: RuleCustom, Start: `^\d{4}-`}, {Rule: RuleCustom, Continue: `^\s`, Negate: true},
	{Rule: RuleJava, MaxLines: 2}, {Rule: RuleGo, MaxLines: 3, MaxBytes: 40}, {Rule: RulePython, MaxBytes: 30},
	{Rule: RuleCustom, Continue: `^\s`, MaxLines: 2},
}

// FuzzNoLossNoDuplicate: whatever the lines and the rule, every line of
// the input is in exactly one event, events hold consecutive lines joined
// by "\n", and each carries the offset of its first line, the end of its
// last and its count of lines.
func FuzzNoLossNoDuplicate(f *testing.F) {
	f.Add([]byte{0, 4, 5, 6, 7, 2})
	f.Add([]byte{2, 8, 9, 10, 0, 11, 0, 8, 9, 10, 2})
	f.Add([]byte{6, 12, 0, 13, 14, 15, 0, 13, 16, 15, 0, 2})
	f.Add([]byte{1, 3, 2, 1, 3, 3, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		spec := mustSpec(t, fuzzConfigs[int(data[0])%len(fuzzConfigs)])
		var lines []string
		var b strings.Builder
		for _, c := range data[1:] {
			var l string
			if int(c) < 2*len(vocabulary) {
				l = vocabulary[int(c)%len(vocabulary)]
			} else {
				l = strings.Repeat("z", int(c)%50)
			}
			lines = append(lines, l)
			b.WriteString(l)
			b.WriteByte('\n')
		}
		checkPartition(t, lines, feed(t, spec, b.String()))
	})
}

// checkPartition checks that evs split lines (of a file holding them, one
// per line) into runs of consecutive lines, in order of their offsets.
func checkPartition(t *testing.T, lines []string, evs []Event) {
	t.Helper()
	offs := make([]int64, len(lines)+1)
	for i, l := range lines {
		offs[i+1] = offs[i] + int64(len(l)) + 1
	}
	index := map[int64]int{}
	for i, o := range offs {
		index[o] = i
	}
	covered := make([]int, len(lines))
	for _, e := range evs {
		i, ok := index[e.Off]
		if !ok || e.Lines < 1 || i+e.Lines > len(lines) {
			t.Fatalf("event at %d with %d lines is not at a line", e.Off, e.Lines)
		}
		if want := strings.Join(lines[i:i+e.Lines], "\n"); string(e.Msg) != want {
			t.Fatalf("event at line %d: %q, want %q", i, e.Msg, want)
		}
		if e.End != offs[i+e.Lines] {
			t.Fatalf("event at line %d ends at %d, want %d", i, e.End, offs[i+e.Lines])
		}
		for k := i; k < i+e.Lines; k++ {
			covered[k]++
		}
	}
	for i, n := range covered {
		if n != 1 {
			t.Fatalf("line %d (%q) is in %d events", i, lines[i], n)
		}
	}
}
