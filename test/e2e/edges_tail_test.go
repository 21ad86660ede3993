package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// tailSetup is an aggregator with the NDJSON file sink and an agent config
// with one plain-file input over root/plain/*.log and one container input.
type tailSetup struct {
	root, plain, sink, agentConfig, state string
	agentHTTP                             string
	agg                                   *harness.Proc
}

func newTailSetup(t *testing.T, extraInput string) *tailSetup {
	t.Helper()
	root := harness.NodeRoot(t)
	s := &tailSetup{root: root, plain: filepath.Join(root, "plain"), sink: filepath.Join(root, "out", "events.ndjson"),
		agentConfig: filepath.Join(root, "agent.yaml"), state: filepath.Join(root, "state")}
	for _, d := range []string{"out", "plain"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	listen, aggHTTP := harness.FreePort(t), harness.FreePort(t)
	s.agentHTTP = harness.FreePort(t)
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), fmt.Sprintf("listen: %s\nhttp: %s\nsinks:\n  - {type: file, path: %s}\n", listen, aggHTTP, s.sink))
	harness.WriteFile(t, s.agentConfig, fmt.Sprintf(`node: node-edges
state_dir: %s
http: %s
aggregator:
  address: %s
  batch_timeout: 50ms
  backoff_initial: 50ms
  backoff_max: 1s
inputs:
  - type: file
    paths: ["%s/*.log"]
    poll_interval: 20ms
    glob_interval: 100ms
  - type: container
    paths: ["%s/containers/*.log"]
    poll_interval: 20ms
    glob_interval: 100ms
%s`, s.state, s.agentHTTP, listen, s.plain, root, extraInput))
	s.agg = harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	harness.LogTailsOnFailure(t, s.agg)
	return s
}

// waitDocs waits until the sink holds n documents, then a little longer to
// show that no more come, and returns them.
func (s *tailSetup) waitDocs(t *testing.T, n int) []harness.FlagDoc {
	t.Helper()
	var docs []harness.FlagDoc
	harness.WaitFor(t, 30*time.Second, fmt.Sprintf("%d documents", n), func() bool {
		docs = harness.ReadFlagDocs(t, s.sink)
		return len(docs) >= n
	})
	time.Sleep(500 * time.Millisecond) // to show that nothing more comes (25 poll intervals)
	return harness.ReadFlagDocs(t, s.sink)
}

func numberedLines(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s line %03d", prefix, i)
	}
	return out
}

func text(lines []string) string { return strings.Join(lines, "\n") + "\n" }

func inodeOf(t *testing.T, path string) uint64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestEdgesRecreatedFile (issue 19, case 1): app.log removed and at once
// written again with the same banner and the same 50 lines, four times.
// ext4 hands a new file the inode of one let go; every generation must
// arrive whole, each line under its own event id.
func TestEdgesRecreatedFile(t *testing.T) {
	s := newTailSetup(t, "")
	agent := harness.StartProc(t, s.root, "agent", "--config", s.agentConfig)
	harness.LogTailsOnFailure(t, agent)
	app := filepath.Join(s.plain, "app.log")
	lines := append([]string{"=== app v1.2 starting ==="}, numberedLines("app", 50)...)
	inodes := map[uint64]int{}
	for g := 0; g < 4; g++ {
		if g > 0 {
			if err := os.Remove(app); err != nil {
				t.Fatal(err)
			}
		}
		harness.WriteFile(t, app, text(lines))
		inodes[inodeOf(t, app)]++
		harness.WaitFor(t, 30*time.Second, fmt.Sprintf("generation %d", g), func() bool {
			return len(harness.ReadFlagDocs(t, s.sink)) >= (g+1)*len(lines)
		})
	}
	docs := s.waitDocs(t, 4*len(lines))
	want := map[string]int{}
	for _, l := range lines {
		want[l] = 4
	}
	if err := harness.ExactlyOnce(docs, want); err != nil {
		t.Fatalf("%v (inodes: %v)", err, inodes)
	}
	t.Logf("4 generations, inodes %v: %d documents, %d distinct ids", inodes, len(docs), len(docs))
	harness.StopAll(t, 10*time.Second, agent, s.agg)
}

// TestEdgesRewrittenWhileDown (issue 19, case 2): while the agent is
// stopped, the application reopens its log with O_TRUNC and writes the same
// banner and more bytes than before. The new content arrives whole.
func TestEdgesRewrittenWhileDown(t *testing.T) {
	s := newTailSetup(t, "")
	agent := harness.StartProc(t, s.root, "agent", "--config", s.agentConfig)
	harness.LogTailsOnFailure(t, agent)
	app := filepath.Join(s.plain, "app.log")
	banner := "=== app v1.2 starting ==="
	first := append([]string{banner}, numberedLines("first", 50)...)
	harness.WriteFile(t, app, text(first))
	s.waitDocs(t, len(first))
	if err := agent.Term(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	second := append([]string{banner}, numberedLines("second", 100)...)
	harness.WriteFile(t, app, text(second)) // O_TRUNC, same inode
	agent.Start()
	docs := s.waitDocs(t, len(first)+len(second)-1)
	want := map[string]int{banner: 2}
	for _, l := range append(first[1:], second[1:]...) {
		want[l] = 1
	}
	if err := harness.ExactlyOnce(docs, want); err != nil {
		t.Fatal(err)
	}
	harness.StopAll(t, 10*time.Second, agent, s.agg)
}

// TestEdgesPartialFlush (issue 19, case 4): a CRI "P" record never
// followed by "F" ships after partial_flush_after, flagged partial, and
// the offset moves on: a restart of the agent sends nothing twice.
func TestEdgesPartialFlush(t *testing.T) {
	s := newTailSetup(t, "    partial_flush_after: 300ms\n")
	agent := harness.StartProc(t, s.root, "agent", "--config", s.agentConfig)
	harness.LogTailsOnFailure(t, agent)
	pod := harness.NewPodFile(t, s.root, 0)
	const ts = "2026-11-30T10:00:00.000000000Z"
	cri := func(tag, msg string) string { return ts + " stdout " + tag + " " + msg + "\n" }
	if _, err := fmt.Fprint(openAppend(t, pod.Real), cri("F", "before")+cri("P", "half a line")); err != nil {
		t.Fatal(err)
	}
	docs := s.waitDocs(t, 2)
	var half *harness.FlagDoc
	for i := range docs {
		if docs[i].Message == "half a line" {
			half = &docs[i]
		}
	}
	if half == nil || strings.Join(half.Ferry.Flags, ",") != "partial" {
		t.Fatalf("partial record: %+v, want it flagged partial", half)
	}
	// Restart: nothing is sent again; new lines come once.
	if err := agent.Term(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	agent.Start()
	if _, err := fmt.Fprint(openAppend(t, pod.Real), cri("F", "after")); err != nil {
		t.Fatal(err)
	}
	docs = s.waitDocs(t, 3)
	if err := harness.ExactlyOnce(docs, map[string]int{"before": 1, "half a line": 1, "after": 1}); err != nil {
		t.Fatal(err)
	}
	harness.StopAll(t, 10*time.Second, agent, s.agg)
}

func openAppend(t *testing.T, path string) *os.File {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestEdgesStateDirNotWritable (issue 19, case 9): an agent that cannot
// write its positions refuses to start, naming state_dir, instead of
// shipping and failing to save every second. Run as nobody: root writes
// anywhere.
func TestEdgesStateDirNotWritable(t *testing.T) {
	s := newTailSetup(t, "")
	harness.OpenUp(t, s.root)
	if err := os.Chmod(s.state, 0o755); err != nil { // root's, not nobody's
		t.Fatal(err)
	}
	harness.WriteFile(t, filepath.Join(s.plain, "app.log"), "a line\n")
	harness.OpenUp(t, filepath.Join(s.plain, "app.log"))
	agent := harness.StartAgentAs(t, s.root, filepath.Join(s.root, "agent-nobody.log"), harness.Nobody, harness.Nobody, "--config", s.agentConfig)
	var err error
	harness.WaitFor(t, 10*time.Second, "the agent to exit", func() bool {
		var done bool
		done, err = agent.Exited()
		return done
	})
	out := agent.LogText()
	if err == nil || !strings.Contains(out, "state_dir") || !strings.Contains(out, s.state) || !strings.Contains(out, "permission denied") {
		t.Fatalf("exit %v, output:\n%s\nwant a failure naming state_dir, %s and the reason", err, out, s.state)
	}
	if strings.Count(out, s.state+"/.probe") != 1 {
		t.Fatalf("the path is not named exactly once:\n%s", out)
	}
	if docs := harness.ReadFlagDocs(t, s.sink); len(docs) != 0 {
		t.Fatalf("%d documents shipped by an agent that cannot save positions", len(docs))
	}
}

// TestEdgesUnreadableFile (issue 19, case 10): a file the agent (nobody)
// may not read is logged once with its path and the reason, counted in
// /stats, and followed once its permissions change; the other files are
// read meanwhile. Every line arrives once.
func TestEdgesUnreadableFile(t *testing.T) {
	s := newTailSetup(t, "")
	ok, denied := filepath.Join(s.plain, "ok.log"), filepath.Join(s.plain, "denied.log")
	harness.WriteFile(t, ok, text(numberedLines("ok", 20)))
	harness.WriteFile(t, denied, text(numberedLines("denied", 20)))
	if err := os.Chmod(denied, 0); err != nil {
		t.Fatal(err)
	}
	harness.OpenUp(t, s.root)
	harness.OpenUp(t, ok)
	if err := os.Chown(s.state, harness.Nobody, harness.Nobody); err != nil {
		t.Fatal(err)
	}
	agent := harness.StartAgentAs(t, s.root, filepath.Join(s.root, "agent-nobody.log"), harness.Nobody, harness.Nobody, "--config", s.agentConfig)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", agent.LogText())
		}
	})
	s.waitDocs(t, 20)
	harness.WaitFor(t, 10*time.Second, "the warning and the metric", func() bool {
		n, err := harness.Stat(s.agentHTTP, "ferry_agent_files_unreadable")
		return err == nil && n == 1 && strings.Contains(agent.LogText(), "cannot read file")
	})
	time.Sleep(500 * time.Millisecond) // five more glob scans: still one warning
	out := agent.LogText()
	if n := strings.Count(out, "cannot read file"); n != 1 || !strings.Contains(out, denied) || !strings.Contains(out, "permission denied") || !strings.Contains(out, "level=WARN") {
		t.Fatalf("%d warnings, want one at WARN naming %s and the reason:\n%s", n, denied, out)
	}
	if err := os.Chmod(denied, 0o644); err != nil {
		t.Fatal(err)
	}
	docs := s.waitDocs(t, 40)
	want := map[string]int{}
	for _, l := range append(numberedLines("ok", 20), numberedLines("denied", 20)...) {
		want[l] = 1
	}
	if err := harness.ExactlyOnce(docs, want); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(agent.LogText(), "file can be read now") {
		t.Fatal("the recovery is not logged")
	}
	for name, v := range map[string]uint64{"ferry_agent_files_unreadable": 0, "ferry_agent_files_unreadable_total": 1} {
		if n, err := harness.Stat(s.agentHTTP, name); err != nil || n != v {
			t.Fatalf("%s = %d (%v), want %d", name, n, err, v)
		}
	}
	if err := agent.Term(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.StopAll(t, 10*time.Second, s.agg)
}

// TestEdgesDamagedPositions (issue 19, case 11): an empty positions.json
// does not stop the agent (a crash loop in Kubernetes): it is moved aside,
// logged at ERROR, and the agent starts with start_at: end not applied, so
// what was written meanwhile arrives; lines read again carry the ids they
// had.
func TestEdgesDamagedPositions(t *testing.T) {
	s := newTailSetup(t, "")
	app := filepath.Join(s.plain, "app.log")
	first := numberedLines("first", 30)
	harness.WriteFile(t, app, text(first))
	agent := harness.StartProc(t, s.root, "agent", "--config", s.agentConfig)
	harness.LogTailsOnFailure(t, agent)
	before := s.waitDocs(t, len(first))
	if err := agent.Term(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	positions := filepath.Join(s.state, "positions.json")
	harness.WriteFile(t, positions, "")
	later := numberedLines("later", 10)
	f := openAppend(t, app)
	if _, err := f.WriteString(text(later)); err != nil {
		t.Fatal(err)
	}
	// start_at: end, as a DaemonSet would have it.
	cfg, err := os.ReadFile(s.agentConfig)
	if err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, s.agentConfig, strings.ReplaceAll(string(cfg), "    glob_interval: 100ms\n", "    glob_interval: 100ms\n    start_at: end\n"))
	agent.Start()
	docs := s.waitDocs(t, 2*len(first)+len(later))
	aside, _ := filepath.Glob(positions + ".corrupt-*")
	log, _ := os.ReadFile(agent.Log)
	if len(aside) != 1 || !strings.Contains(string(log), "level=ERROR") || !strings.Contains(string(log), aside[0]) {
		t.Fatalf("moved aside: %v; want one, named in an ERROR line:\n%s", aside, log)
	}
	ids := map[string]string{}
	for _, d := range before {
		ids[d.Message] = d.Event.ID
	}
	var fresh []harness.FlagDoc
	for _, d := range docs {
		if id, ok := ids[d.Message]; ok {
			if id != d.Event.ID {
				t.Fatalf("%q read again under id %s, it had %s", d.Message, d.Event.ID, id)
			}
			continue
		}
		fresh = append(fresh, d)
	}
	want := map[string]int{}
	for _, l := range later {
		want[l] = 1
	}
	if err := harness.ExactlyOnce(fresh, want); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2*len(first)+len(later) {
		t.Fatalf("%d documents, want %d (every first line twice, under one id)", len(docs), 2*len(first)+len(later))
	}
	harness.StopAll(t, 10*time.Second, agent, s.agg)
}

// TestEdgesInvalidUTF8FileNames: files whose names are not valid UTF-8 (a
// plain file, and a container log whose name gives the pod coordinates)
// beside ordinary ones. The wire format's strings must be valid UTF-8, so
// an invalid path once made every batch holding one of its lines fail to
// encode, and with it every other file's lines in that batch, again and
// again. Now each run of invalid bytes travels as U+FFFD and every line arrives
// once.
func TestEdgesInvalidUTF8FileNames(t *testing.T) {
	s := newTailSetup(t, "")
	cid := strings.Repeat("c0", 32)
	files := map[string]string{
		filepath.Join(s.plain, "good.log"):                                  "good",
		filepath.Join(s.plain, "bad\xff\xfe.log"):                           "bad",
		filepath.Join(s.root, "containers", "web\xff_prod_app-"+cid+".log"): "pod",
	}
	want := map[string]int{}
	for path, prefix := range files {
		lines := numberedLines(prefix, 30)
		content := text(lines)
		if strings.Contains(path, "containers") {
			var b strings.Builder
			for _, l := range lines {
				fmt.Fprintf(&b, "2026-11-30T10:00:00.000000000Z stdout F %s\n", l)
			}
			content = b.String()
		}
		harness.WriteFile(t, path, content)
		for _, l := range lines {
			want[l] = 1
		}
	}
	agent := harness.StartProc(t, s.root, "agent", "--config", s.agentConfig)
	harness.LogTailsOnFailure(t, agent)
	docs := s.waitDocs(t, len(want))
	if err := harness.ExactlyOnce(docs, want); err != nil {
		t.Fatal(err)
	}
	// The paths and pod name as sent: U+FFFD for each run of invalid bytes.
	raw, err := os.ReadFile(s.sink)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"bad\uFFFD.log\"", "\"name\":\"web\uFFFD\""} {
		if !strings.Contains(string(raw), w) {
			t.Errorf("no %s in the documents", w)
		}
	}
}
