package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// TestSIGHUPReload: SIGHUP reloads the configuration of both binaries
// instead of killing them (issue 19, case 8). The aggregator gets one while
// it starts and one while it runs; the agent gets a configuration with a
// second input inserted before the first, which renames the first (applied
// live: its lines arrive from the same process, with every line of the
// first input exactly once across the reload), a
// changed key that needs a restart (named in the log), and then an invalid
// configuration (logged by field; the agent keeps running on the previous
// one).
func TestSIGHUPReload(t *testing.T) {
	root := harness.NodeRoot(t)
	for _, d := range []string{"out", "plain"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	listen, aggHTTP, agentHTTP := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	sinkPath := filepath.Join(root, "out", "events.ndjson")
	aggConfig := filepath.Join(root, "aggregator.yaml")
	harness.WriteFile(t, aggConfig, fmt.Sprintf("listen: %s\nhttp: %s\nsinks:\n  - {type: file, path: %s}\n", listen, aggHTTP, sinkPath))
	agentConfig := filepath.Join(root, "agent.yaml")
	plain := filepath.Join(root, "plain", "app.log")
	writeAgentConfig := func(extra, pollInterval string) {
		harness.WriteFile(t, agentConfig, fmt.Sprintf(`node: node-reload
state_dir: %s
http: %s
aggregator:
  address: %s
  batch_timeout: 100ms
  backoff_initial: 50ms
  backoff_max: 1s
%sinputs:
  - type: container
    paths: ["%s/containers/*.log"]
    poll_interval: %s
    glob_interval: 200ms
`, filepath.Join(root, "state"), agentHTTP, listen, extra, root, pollInterval))
	}
	writeAgentConfig("", "50ms")

	// The aggregator: a SIGHUP as soon as it has logged its first line,
	// while it is still starting.
	agg := harness.StartProc(t, root, "aggregator", "--config", aggConfig)
	harness.LogTailsOnFailure(t, agg)
	harness.WaitFor(t, 10*time.Second, "the aggregator's first log line", func() bool { return logLines(agg) > 0 })
	aggPID := agg.PID()
	hangup(t, agg)
	harness.WaitFor(t, 30*time.Second, "the aggregator healthy or gone", func() bool {
		exited, _ := agg.Exited()
		return exited || harness.Healthy(aggHTTP)
	})
	stillRuns(t, agg, aggPID)

	pod := harness.NewPodFile(t, root, 0)
	agent := harness.StartProc(t, root, "agent", "--config", agentConfig)
	harness.LogTailsOnFailure(t, agent)
	harness.WaitHealthy(t, "agent", agentHTTP)
	agentPID := agent.PID()
	for range 100 {
		pod.Write(t, 0, pod.Written)
	}
	waitLines(t, sinkPath, map[int]int{0: 100})

	// A second input, a new log level (live) and a new batch size (needs a
	// restart). Lines go on being written to the first input during the
	// reload; the second input's file exists before it.
	f, err := os.OpenFile(plain, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for s := range 50 {
		fmt.Fprintln(f, harness.Line(1, s))
	}
	writeAgentConfig("  batch_max_events: 500\nlog: {level: debug}\n", "50ms")
	// The new input goes first: the container input, unnamed, is renamed
	// from container-0 to container-1, and its file must keep being read
	// once, by one follower, while its lines are in flight.
	harness.WriteFile(t, agentConfig, strings.Replace(readFile(t, agentConfig), "inputs:\n",
		fmt.Sprintf("inputs:\n  - {type: file, paths: [\"%s/plain/*.log\"]}\n", root), 1))
	reloads := countLog(agent, "configuration reloaded")
	if countLog(agent, "level=DEBUG") > 0 {
		t.Fatalf("debug lines at log level info")
	}
	for range 50 {
		pod.Write(t, 0, pod.Written)
	}
	hangup(t, agent)
	for range 50 {
		pod.Write(t, 0, pod.Written)
	}
	harness.WaitFor(t, 10*time.Second, "the agent's reload", func() bool { return countLog(agent, "configuration reloaded") > reloads })
	for s := 50; s < 100; s++ {
		fmt.Fprintln(f, harness.Line(1, s))
	}
	waitLines(t, sinkPath, map[int]int{0: 200, 1: 100})
	stillRuns(t, agent, agentPID)
	log := readFile(t, agent.Log)
	if !strings.Contains(log, "needs a restart") || !strings.Contains(log, "key=aggregator.batch_max_events") {
		t.Errorf("the agent's log does not name aggregator.batch_max_events as needing a restart")
	}
	if strings.Contains(log, "key=log.level") || strings.Contains(log, "key=inputs") {
		t.Errorf("the agent's log names a live key as needing a restart")
	}
	if !strings.Contains(log[strings.Index(log, "needs a restart"):], "level=DEBUG") { // log.level is applied first
		t.Errorf("no debug line after log.level became debug")
	}

	// An invalid configuration: logged by field, and the agent runs on.
	writeAgentConfig("", "1ns")
	hangup(t, agent)
	harness.WaitFor(t, 10*time.Second, "the invalid configuration logged", func() bool {
		return countLog(agent, "field=inputs[0].poll_interval") > 0
	})
	if !strings.Contains(readFile(t, agent.Log), `err="must be at least 10ms, got 1ns"`) {
		t.Errorf("the agent's log does not say what is wrong with poll_interval")
	}
	stillRuns(t, agent, agentPID)

	// The aggregator again, running, with a new log level (live) and a new
	// max_batches_in_flight (needs a restart): same process, still
	// acknowledging.
	harness.WriteFile(t, aggConfig, readFile(t, aggConfig)+"log: {level: debug}\nmax_batches_in_flight: 4\n")
	hangup(t, agg)
	harness.WaitFor(t, 10*time.Second, "the aggregator's reload", func() bool { return countLog(agg, "configuration reloaded") >= 2 })
	if log := readFile(t, agg.Log); !strings.Contains(log, "applied=[log.level] needs_restart=[max_batches_in_flight]") ||
		!strings.Contains(log, "needs a restart; running with the previous value until then\" file="+aggConfig+" key=max_batches_in_flight") {
		t.Errorf("the aggregator's log does not say that log.level was applied and max_batches_in_flight needs a restart")
	}
	for range 100 {
		pod.Write(t, 0, pod.Written)
	}
	for s := 100; s < 150; s++ {
		fmt.Fprintln(f, harness.Line(1, s))
	}
	waitLines(t, sinkPath, map[int]int{0: 300, 1: 150})
	stillRuns(t, agg, aggPID)
	stillRuns(t, agent, agentPID)

	harness.StopAll(t, 30*time.Second, agent, agg)
}

// hangup sends SIGHUP to p.
func hangup(t *testing.T, p *harness.Proc) {
	t.Helper()
	if err := syscall.Kill(p.PID(), syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP to %s: %v", p.Label(), err)
	}
}

// stillRuns fails the test unless p runs, as process pid.
func stillRuns(t *testing.T, p *harness.Proc, pid int) {
	t.Helper()
	if exited, err := p.Exited(); exited {
		t.Fatalf("%s exited (%v)", p.Label(), err)
	}
	if got := p.PID(); got != pid {
		t.Fatalf("%s is process %d, was %d", p.Label(), got, pid)
	}
}

// waitLines waits until the sink holds want[file] lines of each file (see
// harness.Line), and fails the test if any line arrived twice or a line
// is missing.
func waitLines(t *testing.T, sinkPath string, want map[int]int) {
	t.Helper()
	var seen map[[2]int]int
	count := func() bool {
		seen = map[[2]int]int{}
		for _, d := range harness.ReadSink(t, sinkPath) {
			if file, seq, ok := harness.ParseLine(d.Message); ok {
				seen[[2]int{file, seq}]++
			}
		}
		for file, n := range want {
			for s := range n {
				if seen[[2]int{file, s}] == 0 {
					return false
				}
			}
		}
		return true
	}
	if !harness.Poll(20*time.Second, 100*time.Millisecond, count) {
		t.Fatalf("timed out waiting for lines %v: %d distinct arrived", want, len(seen))
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("line file=%d seq=%d arrived %d times", k[0], k[1], n)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// countLog counts the lines of p's log holding s.
func countLog(p *harness.Proc, s string) int {
	b, _ := os.ReadFile(p.Log)
	return strings.Count(string(b), s)
}

// logLines counts the lines p logged, not those of the harness.
func logLines(p *harness.Proc) int {
	b, _ := os.ReadFile(p.Log)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "=== ") {
			n++
		}
	}
	return n
}

// TestTimestampEdges: through both binaries, a CRI line timed at the Unix
// epoch keeps that time, and lines timed out of date_nanos's range keep
// their stream and message, get the time of reading as @timestamp and carry
// their time as written, flagged (issue 19, case 10c).
func TestTimestampEdges(t *testing.T) {
	root := harness.NodeRoot(t)
	if err := os.Mkdir(filepath.Join(root, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	listen, aggHTTP, agentHTTP := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	sinkPath := filepath.Join(root, "out", "events.ndjson")
	aggConfig := filepath.Join(root, "aggregator.yaml")
	harness.WriteFile(t, aggConfig, fmt.Sprintf("listen: %s\nhttp: %s\nsinks:\n  - {type: file, path: %s}\n", listen, aggHTTP, sinkPath))
	harness.AgentConfig{Node: "node-times", Root: root, HTTP: agentHTTP, Address: listen}.Write(t, filepath.Join(root, "agent.yaml"))
	harness.WriteFile(t, filepath.Join(root, "containers", "web-0_dev_app-"+strings.Repeat("a", 64)+".log"),
		"1970-01-01T00:00:00Z stdout F epoch\n"+
			"2262-04-12T00:00:00.5Z stderr F late\n"+
			"1600-01-01T00:00:00+01:00 stdout F early\n")

	before := time.Now()
	agg := harness.StartProc(t, root, "aggregator", "--config", aggConfig)
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent, agg)
	type doc struct {
		TS      string `json:"@timestamp"`
		Message string `json:"message"`
		Stream  string `json:"stream"`
		Ferry   struct {
			Flags []string `json:"flags"`
			Orig  string   `json:"original_timestamp"`
		} `json:"ferry"`
	}
	docs := map[string]doc{}
	harness.WaitFor(t, 30*time.Second, "three documents", func() bool {
		b, _ := os.ReadFile(sinkPath)
		for _, l := range strings.Split(string(b), "\n") {
			var d doc
			if json.Unmarshal([]byte(l), &d) == nil {
				docs[d.Message] = d
			}
		}
		return len(docs) >= 3
	})
	after := time.Now()
	if d := docs["epoch"]; d.TS != "1970-01-01T00:00:00.000000000Z" || len(d.Ferry.Flags) != 0 || d.Stream != "stdout" {
		t.Errorf("epoch line: %+v", d)
	}
	for msg, want := range map[string]struct{ stream, orig string }{
		"late":  {"stderr", "2262-04-12T00:00:00.5Z"},
		"early": {"stdout", "1600-01-01T00:00:00+01:00"},
	} {
		d := docs[msg]
		ts, err := time.Parse(time.RFC3339Nano, d.TS)
		if err != nil || ts.Before(before) || ts.After(after) {
			t.Errorf("%s: @timestamp %s, want the time of reading (%v)", msg, d.TS, err)
		}
		if d.Stream != want.stream || d.Ferry.Orig != want.orig || len(d.Ferry.Flags) != 1 || d.Ferry.Flags[0] != "timestamp_out_of_range" {
			t.Errorf("%s: %+v, want stream %s, original_timestamp %s, flagged timestamp_out_of_range", msg, d, want.stream, want.orig)
		}
	}
	harness.StopAll(t, 30*time.Second, agent, agg)
}
