package tail

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/multiline"
	"github.com/ferrylogs/ferry/pipeline/parse"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

const flagMultiline = uint32(ferryv1.Flag_FLAG_MULTILINE)

// javaTrace is a Spring Boot exception as a JVM prints it.
var javaTrace = []string{
	"java.lang.IllegalStateException: Failed to process order 42",
	"\tat com.example.shop.OrderService.process(OrderService.java:87) ~[classes/:na]",
	"\tat com.example.shop.OrderController.create(OrderController.java:41) ~[classes/:na]",
	"Caused by: java.sql.SQLIntegrityConstraintViolationException: Duplicate entry 'A-42'",
	"\tat com.mysql.cj.jdbc.exceptions.SQLError.createSQLException(SQLError.java:118) ~[mysql-connector-j-8.2.0.jar:8.2.0]",
	"\t... 12 more",
}

func mlSpec(t testing.TB, c multiline.Config) *multiline.Spec {
	t.Helper()
	if c.MaxBytes == 0 {
		c.MaxBytes = 256 << 10
	}
	s, err := multiline.Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMultilineCRIStreams: in a CRI file where stdout and stderr lines
// interleave and one line of the trace is split into partial records, the
// trace on stderr is one event (exact text, the offset of its first line,
// the end of its last, its count of lines) and the stdout lines between its
// lines stay events of their own.
func TestMultilineCRIStreams(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	var b strings.Builder
	line := func(stream, tag, msg string) int64 {
		off := int64(b.Len())
		b.WriteString(criLine(stream, tag, msg) + "\n")
		return off
	}
	line("stderr", "F", "2024-05-01 ERROR request failed")
	traceOff := line("stderr", "F", javaTrace[0])
	line("stdout", "F", "out 1")
	line("stderr", "F", javaTrace[1])
	line("stdout", "F", "\tat not.Part(Of.java:1)") // stdout: no trace open there
	// javaTrace[2] split into three partial records.
	l2 := javaTrace[2]
	line("stderr", "P", l2[:10])
	line("stdout", "F", "out 2")
	line("stderr", "P", l2[10:30])
	line("stderr", "F", l2[30:])
	for _, l := range javaTrace[3:] {
		line("stderr", "F", l)
	}
	traceEnd := int64(b.Len())
	line("stderr", "F", "2024-05-01 INFO next")
	line("stdout", "F", "out 3")
	appendFile(t, path, b.String())

	in := input("c", parse.FormatAuto, filepath.Join(dir, "*.log"))
	in.Multiline = mlSpec(t, multiline.Config{Rule: multiline.RuleJava})
	h := newHarness(t, harnessOpts{}, in)
	trace := strings.Join(javaTrace, "\n")
	want := []string{"2024-05-01 ERROR request failed", trace, "out 1", "\tat not.Part(Of.java:1)", "out 2", "2024-05-01 INFO next", "out 3"}
	evs := h.waitEvents(len(want))
	settle()
	evs = h.snapshot()
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d: %v", len(evs), len(want), evs)
	}
	got := map[string]ev{}
	for _, e := range evs {
		got[e.Msg] = e
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("missing event %q; got %v", w, evs)
		}
	}
	tr := got[trace]
	if tr.Off != traceOff || tr.End != traceEnd || tr.Lines != uint32(len(javaTrace)) || tr.Stream != ferryv1.StreamName_STREAM_STDERR ||
		tr.Flags != flagMultiline|flagJoined {
		t.Errorf("trace event: off %d end %d lines %d stream %v flags %b; want off %d end %d lines %d stderr, multiline|joined",
			tr.Off, tr.End, tr.Lines, tr.Stream, tr.Flags, traceOff, traceEnd, len(javaTrace))
	}
	for _, w := range want {
		if e := got[w]; w != trace && (e.Lines != 0 || e.End != 0 || e.Flags != 0) {
			t.Errorf("single line %q: lines %d end %d flags %b", w, e.Lines, e.End, e.Flags)
		}
	}
}

// TestMultilineFlushAfter: a trace at the end of a file that then stays
// quiet is sent once flush_after has passed, and until then no chunk
// lets the file's offset pass its first line.
func TestMultilineFlushAfter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	head := "before\n"
	trace := strings.Join(javaTrace, "\n")
	appendFile(t, path, head+trace+"\n")
	in := input("p", parse.FormatPlain, filepath.Join(dir, "*.log"))
	const after = 300 * time.Millisecond
	in.Multiline = mlSpec(t, multiline.Config{Rule: multiline.RuleJava, FlushAfter: after})
	start := time.Now()
	h := newHarness(t, harnessOpts{}, in)
	h.waitMsgs([]string{"before"})
	var firstSeen time.Duration
	waitFor(t, "the trace", func() bool {
		chunks := h.chunkList() // before the events: theirs are in the snapshot
		seen := false
		for _, e := range h.snapshot() {
			seen = seen || e.Msg == trace
		}
		for _, c := range chunks {
			if c.End > int64(len(head)) && !seen {
				t.Fatalf("a chunk ends at %d, past the first line of the trace at %d, before the trace was sent", c.End, len(head))
			}
		}
		if seen {
			firstSeen = time.Since(start)
		}
		return seen
	})
	if firstSeen < after {
		t.Errorf("trace sent %s after the start, before flush_after %s", firstSeen, after)
	}
	evs := h.snapshot()
	last := evs[len(evs)-1]
	if last.Msg != trace || last.Off != int64(len(head)) || last.Lines != uint32(len(javaTrace)) || last.End != int64(len(head)+len(trace)+1) {
		t.Fatalf("trace event %v lines %d end %d", last, last.Lines, last.End)
	}
	var ended int64
	waitFor(t, "the chunk end past the trace", func() bool {
		for _, c := range h.chunkList() {
			ended = max(ended, c.End)
		}
		return ended == int64(len(head)+len(trace)+1)
	})
}

// TestMultilineCrashRereadsGroup: the agent stops (as after a crash) while a
// trace is half written: nothing of it was sent, the committed offset is
// its first line, and after the restart the whole trace comes as one event
// under the same file identity and offset, so with the same id.
func TestMultilineCrashRereadsGroup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendFile(t, path, "before\n"+strings.Join(javaTrace[:3], "\n")+"\n")
	in := input("p", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.Multiline = mlSpec(t, multiline.Config{Rule: multiline.RuleJava, FlushAfter: time.Hour})
	h := newHarness(t, harnessOpts{}, in)
	h.waitMsgs([]string{"before"})
	waitFor(t, "the chunk ending at the trace", func() bool {
		for _, c := range h.chunkList() {
			if c.End == int64(len("before\n")) && c.Commit {
				return true
			}
		}
		return false
	})
	settle()
	for _, c := range h.chunkList() {
		if c.End > int64(len("before\n")) {
			t.Fatalf("a chunk ends at %d, inside the open trace", c.End)
		}
	}
	h.restart()
	appendFile(t, path, strings.Join(javaTrace[3:], "\n")+"\nafter\n")
	evs := h.waitMsgs([]string{"after"})
	trace := strings.Join(javaTrace, "\n")
	var n int
	for _, e := range evs {
		if strings.Contains(e.Msg, "Failed to process order") || strings.Contains(e.Msg, "\tat ") {
			n++
			if e.Msg != trace || e.Run != 2 || e.Off != int64(len("before\n")) || e.FileID != evs[0].FileID {
				t.Errorf("trace event %v, want the whole trace at offset %d of file %s in run 2", e, len("before\n"), evs[0].FileID)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d events hold trace lines, want 1: %v", n, evs)
	}
}

// TestMultilinePodRule: Input.RuleFor overrides the input's rule per file
// once the pod's metadata is known; until then the input's rule applies,
// and a pod asking for nothing keeps it.
func TestMultilinePodRule(t *testing.T) {
	dir := t.TempDir()
	py := "Traceback (most recent call last):\n  File \"/app/x.py\", line 1, in <module>\nZeroDivisionError: division by zero"
	const cid = "0123456789abcdef0123"
	appFile := filepath.Join(dir, "web-1_prod_app-"+cid+".log")
	sideFile := filepath.Join(dir, "web-1_prod_side-"+cid+".log")
	text := py + "\n" + strings.Join(javaTrace, "\n") + "\nend\n"
	var known atomic.Bool
	var asked, answered atomic.Int32
	in := input("c", parse.FormatPlain, filepath.Join(dir, "*.log"))
	in.Container = true
	in.Multiline = mlSpec(t, multiline.Config{Rule: multiline.RuleJava, FlushAfter: 100 * time.Millisecond})
	in.RuleFor = func(k *ferryv1.Kubernetes) (string, bool) {
		asked.Add(1)
		if k.GetNamespace() != "prod" || k.GetPod() != "web-1" {
			t.Errorf("RuleFor(%v)", k)
		}
		if !known.Load() {
			return "", false
		}
		answered.Add(1)
		if k.GetContainer() == "app" {
			return multiline.RulePython, true
		}
		return "", true
	}
	appendFile(t, appFile, "start\n")
	appendFile(t, sideFile, "start\n")
	h := newHarness(t, harnessOpts{}, in)
	// Asked while the metadata is unknown, again every poll interval.
	waitFor(t, "RuleFor asked three times per file", func() bool { return asked.Load() >= 6 })
	known.Store(true)
	waitFor(t, "RuleFor answered for both files", func() bool { return answered.Load() >= 2 })
	appendFile(t, appFile, text)
	appendFile(t, sideFile, text)
	h.waitMsgs([]string{py, strings.Join(javaTrace, "\n")})
	settle()
	files := byFile(h.snapshot())
	for id, evs := range files {
		var got []string
		for _, e := range evs {
			got = append(got, e.Msg)
		}
		want := append([]string{"start"}, strings.Split(py, "\n")...)
		want = append(want, strings.Join(javaTrace, "\n"), "end")
		if strings.Contains(evs[0].Path, "_app-") {
			want = append([]string{"start", py}, javaTrace...)
			want = append(want, "end")
		}
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("file %s (%s): %q\nwant %q", id, evs[0].Path, got, want)
		}
	}
	if len(files) != 2 {
		t.Errorf("%d files", len(files))
	}
}

// TestMultilineDocker: Docker json-file lines are joined per stream too,
// after a line split by Docker (a "log" without "\n") is joined.
func TestMultilineDocker(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	line := func(stream, log string) {
		q, _ := json.Marshal(log)
		b.WriteString(`{"log":` + string(q) + `,"stream":"` + stream + `","time":"2024-05-01T12:00:00.000000001Z"}` + "\n")
	}
	py := []string{"Traceback (most recent call last):", `  File "/app/x.py", line 1, in <module>`, "ZeroDivisionError: division by zero"}
	line("stdout", "INFO start\n")
	line("stderr", py[0]+"\n")
	line("stdout", "INFO tick\n")
	line("stderr", py[1][:10]) // split by Docker
	line("stderr", py[1][10:]+"\n")
	line("stderr", py[2]+"\n")
	line("stderr", "INFO after\n")
	appendFile(t, filepath.Join(dir, "a.log"), b.String())
	in := input("d", parse.FormatAuto, filepath.Join(dir, "*.log"))
	in.Multiline = mlSpec(t, multiline.Config{Rule: multiline.RulePython})
	h := newHarness(t, harnessOpts{}, in)
	want := []string{"INFO start", strings.Join(py, "\n"), "INFO tick", "INFO after"}
	h.waitMsgs(want)
	settle()
	evs := h.snapshot()
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d: %v", len(evs), len(want), evs)
	}
	for _, e := range evs {
		if e.Msg == want[1] && (e.Lines != 3 || e.Flags != flagMultiline|flagJoined || e.Stream != ferryv1.StreamName_STREAM_STDERR) {
			t.Errorf("traceback: lines %d flags %b stream %v", e.Lines, e.Flags, e.Stream)
		}
	}
}

// mlVocabulary: lines that begin, continue, hold and end Java and Go
// groups, and plain ones.
var mlVocabulary = []string{
	"plain log line", "", "java.lang.IllegalStateException: x", "\tat a.B.c(B.java:1)", "Caused by: a.BError: y",
	"\t... 3 more", "panic: boom", "goroutine 1 [running]:", "main.main()", "\t/app/m.go:1 +0x1",
}

// TestMultilineRestartsPartition writes random CRI lines of two streams
// with the rules java and go (max_lines 5, so groups are cut too) and
// restarts the manager while groups are open: the distinct events (by
// offset, so by id) split the lines of each stream into runs of
// consecutive lines, every line in exactly one, and an id never carries
// two texts.
func TestMultilineRestartsPartition(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		rule := []string{multiline.RuleJava, multiline.RuleGo}[seed%2]
		t.Run(fmt.Sprintf("%s-%d", rule, seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			dir := t.TempDir()
			path := filepath.Join(dir, "a.log")
			type line struct {
				off, end int64
				stream   string
				msg      string
			}
			var lines []line
			var off int64
			batch := func(n int) string {
				var b strings.Builder
				for i := 0; i < n; i++ {
					l := line{off: off, stream: []string{"stdout", "stderr"}[rng.Intn(2)], msg: mlVocabulary[rng.Intn(len(mlVocabulary))]}
					if rng.Intn(2) == 0 { // runs of trace lines
						l.msg = mlVocabulary[2+rng.Intn(len(mlVocabulary)-2)]
					}
					s := criLine(l.stream, "F", l.msg) + "\n"
					off += int64(len(s))
					l.end = off
					lines = append(lines, l)
					b.WriteString(s)
				}
				return b.String()
			}
			in := input("p", parse.FormatCRI, filepath.Join(dir, "*.log"))
			in.Multiline = mlSpec(t, multiline.Config{Rule: rule, MaxLines: 5, FlushAfter: time.Hour})
			h := newHarness(t, harnessOpts{}, in)
			for r := 0; r < 4; r++ {
				from := off
				appendFile(t, path, batch(60))
				// Restart once some of the batch is sent: groups are
				// likely open then.
				waitFor(t, "an event of the batch", func() bool {
					for _, e := range h.snapshot() {
						if e.Off >= from {
							return true
						}
					}
					return false
				})
				h.restart()
			}
			appendFile(t, path, criLine("stdout", "F", "END")+"\n"+criLine("stderr", "F", "END")+"\n")
			h.waitMsgs([]string{"END"})
			waitFor(t, "both ENDs", func() bool {
				n := 0
				for _, e := range h.snapshot() {
					if e.Msg == "END" {
						n++
					}
				}
				return n >= 2
			})

			texts := map[int64]string{}
			lineCount := map[int64]int{}
			for _, e := range h.snapshot() {
				if e.Msg == "END" {
					continue
				}
				if prev, ok := texts[e.Off]; ok && prev != e.Msg {
					t.Fatalf("offset %d (one id) carries two texts:\n%q\n%q", e.Off, prev, e.Msg)
				}
				texts[e.Off] = e.Msg
				lineCount[e.Off] = max(1, int(e.Lines))
			}
			byOff := map[int64]int{}
			for i, l := range lines {
				byOff[l.off] = i
			}
			covered := make([]int, len(lines))
			for o, text := range texts {
				i, ok := byOff[o]
				if !ok {
					t.Fatalf("event at offset %d is not at a line", o)
				}
				var run []string
				for k := i; k < len(lines) && len(run) < lineCount[o]; k++ {
					if lines[k].stream == lines[i].stream {
						run = append(run, lines[k].msg)
						covered[k]++
					}
				}
				if want := strings.Join(run, "\n"); text != want {
					t.Fatalf("event at line %d: %q, want the run %q", i, text, want)
				}
			}
			for i, n := range covered {
				if n != 1 {
					t.Fatalf("line %d (%s %q) is in %d events", i, lines[i].stream, lines[i].msg, n)
				}
			}
		})
	}
}
