package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// mlDoc is the part of a sink document TestMultilineKill looks at.
type mlDoc struct {
	Message string `json:"message"`
	Event   struct {
		ID string `json:"id"`
	} `json:"event"`
	Log struct {
		Offset    int64 `json:"offset"`
		EndOffset int64 `json:"end_offset"`
		Lines     int   `json:"lines"`
	} `json:"log"`
	Ferry struct {
		Flags []string `json:"flags"`
	} `json:"ferry"`
	Stream     string `json:"stream"`
	Kubernetes struct {
		Pod struct {
			Name string `json:"name"`
		} `json:"pod"`
	} `json:"kubernetes"`
}

func readMLDocs(t *testing.T, path string) []mlDoc {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []mlDoc
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var d mlDoc
		if json.Unmarshal(sc.Bytes(), &d) == nil { // a torn last line comes again
			docs = append(docs, d)
		}
	}
	return docs
}

// mlTrace returns the lines of Java trace k: 6 to 12 lines, one of them
// long enough to be written as CRI partial records.
func mlTrace(k int) []string {
	lines := []string{fmt.Sprintf("java.lang.IllegalStateException: trace %d failed", k)}
	for f := 0; f < 2+k%4; f++ {
		lines = append(lines, fmt.Sprintf("\tat com.example.shop.Service%d.call%d(Service.java:%d) ~[classes/:na]", k, f, 10+f))
	}
	lines = append(lines, fmt.Sprintf("Caused by: java.io.IOException: disk %d %s", k, strings.Repeat("x", 100)))
	for f := 0; f < 2+k%3; f++ {
		lines = append(lines, fmt.Sprintf("\tat java.base/java.io.FileOutputStream.write%d(FileOutputStream.java:%d)", f, 300+f))
	}
	return append(lines, "\t... 12 more")
}

// TestMultilineKill writes Java stack traces (with log lines before them,
// stdout lines between their lines, and lines split into CRI partial
// records) into a container log while the agent is SIGKILLed several
// times, each time in the middle of a trace: every trace arrives whole, as
// one event with the id and offset of its first line, and no fragment of a
// trace arrives as an event of its own.
func TestMultilineKill(t *testing.T) {
	const (
		traces = 40
		kills  = 5
	)
	root := harness.NodeRoot(t)
	if err := os.Mkdir(filepath.Join(root, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	listen, aggHTTP, agentHTTP := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	sinkPath := filepath.Join(root, "out", "events.ndjson")
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), fmt.Sprintf(`
listen: %s
http: %s
sinks:
  - {type: file, path: %s}
`, listen, aggHTTP, sinkPath))
	harness.WriteFile(t, filepath.Join(root, "agent.yaml"), fmt.Sprintf(`
node: node-ml
state_dir: %s
http: %s
aggregator:
  address: %s
  batch_timeout: 50ms
  backoff_initial: 50ms
  backoff_max: 1s
inputs:
  - type: container
    paths: ["%s/containers/*.log"]
    poll_interval: 20ms
    glob_interval: 100ms
    multiline:
      rule: java
      flush_after: 10s  # longer than the positions' save interval: no trace is sent half
`, filepath.Join(root, "state"), agentHTTP, listen, root))

	logPath := filepath.Join(root, "containers", "shop-1_prod_app-"+strings.Repeat("ab", 32)+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var off int64
	seq := 0
	write := func(stream, tag, msg string) int64 {
		t.Helper()
		seq++
		line := fmt.Sprintf("2024-05-01T10:%02d:%02d.%09dZ %s %s %s\n", seq/60%60, seq%60, seq, stream, tag, msg)
		at := off
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		off += int64(len(line))
		return at
	}

	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent, agg)

	starts := make([]int64, traces) // offset of each trace's first line
	killAt := map[int]bool{}
	for i := 0; i < kills; i++ {
		killAt[3+i*(traces-6)/kills] = true
	}
	for k := 0; k < traces; k++ {
		write("stderr", "F", fmt.Sprintf("2024-05-01 ERROR 1 --- [exec-%d] c.e.shop.Controller : request %d failed", k, k))
		lines := mlTrace(k)
		for i, l := range lines {
			if i == 0 {
				starts[k] = write("stderr", "F", l)
			} else if strings.HasPrefix(l, "Caused by:") {
				write("stderr", "P", l[:20]) // one line in three partial records
				write("stderr", "P", l[20:60])
				write("stderr", "F", l[60:])
			} else {
				write("stderr", "F", l)
			}
			if i%3 == 1 {
				write("stdout", "F", fmt.Sprintf("tick %d.%d", k, i))
			}
			if killAt[k] && i == len(lines)/2 {
				// Wait until the agent has saved the offset of the
				// trace's first line (everything before it acknowledged;
				// it holds the group open), then kill it; the rest is
				// written while it is down.
				var saved int64
				if !harness.Poll(20*time.Second, 10*time.Millisecond, func() bool {
					saved, _ = harness.PositionsSum(filepath.Join(root, "state"))
					return saved >= starts[k]
				}) {
					t.Fatalf("trace %d: the agent saved offset %d, never the trace's first line at %d", k, saved, starts[k])
				}
				agent.Kill9()
				if saved != starts[k] {
					t.Errorf("trace %d: the agent committed offset %d, past the first line of the open trace at %d", k, saved, starts[k])
				}
				t.Logf("agent killed with SIGKILL in trace %d (first line at %d, saved offset %d, half of it written up to %d)", k, starts[k], saved, off)
			}
		}
		if killAt[k] {
			agent.Start()
		}
		time.Sleep(20 * time.Millisecond) // pacing of the writer
	}
	write("stderr", "F", "END")

	var docs []mlDoc
	complete := func() bool {
		docs = readMLDocs(t, sinkPath)
		seen := map[string]bool{}
		end := false
		for _, d := range docs {
			if strings.HasPrefix(d.Message, "java.lang.IllegalStateException: trace ") {
				seen[d.Message] = true
			}
			end = end || d.Message == "END"
		}
		return end && len(seen) >= traces
	}
	if !harness.Poll(60*time.Second, 100*time.Millisecond, complete) {
		t.Fatalf("timed out: %d documents so far", len(docs))
	}

	ids := map[int]string{}
	idOwner := map[string]string{}
	for _, d := range docs {
		if other, ok := idOwner[d.Event.ID]; ok && other != d.Message {
			t.Fatalf("event id %s carries two texts:\n%q\n%q", d.Event.ID, other, d.Message)
		}
		idOwner[d.Event.ID] = d.Message
		var k int
		if _, err := fmt.Sscanf(d.Message, "java.lang.IllegalStateException: trace %d failed", &k); err != nil {
			if strings.Contains(d.Message, "\tat ") || strings.Contains(d.Message, "Caused by:") || strings.Contains(d.Message, "... 12 more") {
				t.Fatalf("a fragment of a trace arrived as an event of its own: %q", d.Message)
			}
			continue
		}
		want := strings.Join(mlTrace(k), "\n")
		if d.Message != want {
			t.Fatalf("trace %d arrived as\n%s\nwant\n%s", k, d.Message, want)
		}
		if d.Log.Offset != starts[k] || d.Log.Lines != len(mlTrace(k)) || !slices.Contains(d.Ferry.Flags, "multiline") || d.Stream != "stderr" {
			t.Fatalf("trace %d: offset %d lines %d flags %v stream %s; want offset %d (its first line), %d lines, multiline, stderr",
				k, d.Log.Offset, d.Log.Lines, d.Ferry.Flags, d.Stream, starts[k], len(mlTrace(k)))
		}
		if prev, ok := ids[k]; ok && prev != d.Event.ID {
			t.Fatalf("trace %d arrived under two ids, %s and %s", k, prev, d.Event.ID)
		}
		ids[k] = d.Event.ID
	}
	if len(ids) != traces {
		t.Fatalf("%d of %d traces arrived", len(ids), traces)
	}
	t.Logf("documents=%d distinct=%d traces=%d agent starts=%d", len(docs), len(idOwner), len(ids), agent.Runs())
	harness.StopAll(t, 20*time.Second, agent, agg)
}

// TestMultilinePodAnnotation: against a real API server, a pod's
// ferry.io/multiline annotation (or ferry.io/multiline.<container>)
// overrides the input's rule (java) for its container's file; a pod
// without one keeps the input's.
func TestMultilinePodAnnotation(t *testing.T) {
	api := harness.SharedKube(t)
	root := harness.NodeRoot(t)
	node := harness.UniqueNode(t, "ml")
	ns := "ml-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	api.Grant(t, "ferry-test-agent", "agent", "pods", "namespaces")
	api.CreateNamespace(t, ns, nil)
	pods := []harness.KubePod{
		{NS: ns, Name: "py-1", Node: node, Annotations: map[string]string{"ferry.io/multiline": "python"}},
		{NS: ns, Name: "go-1", Node: node, Annotations: map[string]string{"ferry.io/multiline": "java", "ferry.io/multiline.app": "go"}},
		{NS: ns, Name: "java-1", Node: node},
	}
	uids := make([]string, len(pods))
	for i, p := range pods {
		uids[i] = api.CreatePod(t, p)
	}

	if err := os.Mkdir(filepath.Join(root, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	listen, aggHTTP, agentHTTP := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	sinkPath := filepath.Join(root, "out", "events.ndjson")
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), fmt.Sprintf("listen: %s\nhttp: %s\nsinks:\n  - {type: file, path: %s}\n", listen, aggHTTP, sinkPath))
	harness.WriteFile(t, filepath.Join(root, "agent.yaml"), harness.AgentConfig{Node: node, Root: root, HTTP: agentHTTP, Address: listen}.YAML()+
		"    multiline: {rule: java, flush_after: 300ms}\n"+
		"kubernetes:\n  kubeconfig: "+api.KubeconfigOf("agent")+"\n")
	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent, agg)
	harness.WaitFor(t, 30*time.Second, "the agent's metadata cache synced", func() bool {
		b, _ := os.ReadFile(agent.Log)
		return strings.Contains(string(b), "Kubernetes metadata cache synced")
	})

	py := []string{"Traceback (most recent call last):", `  File "/app/x.py", line 1, in <module>`, "ZeroDivisionError: division by zero"}
	goPanic := []string{"panic: boom", "", "goroutine 1 [running]:", "main.main()", "\t/app/main.go:5 +0x1d"}
	java := mlTrace(1)
	for i, p := range pods {
		f := harness.NewKubePodFile(t, root, p.NS, p.Name, uids[i], i)
		var b strings.Builder
		for _, l := range append(append(append(append([]string{"start"}, py...), goPanic...), java...), "END") {
			fmt.Fprintf(&b, "2024-05-01T10:00:00.000000000Z stderr F %s\n", l)
		}
		harness.WriteFile(t, f.Real, b.String())
	}
	byPod := map[string][]string{}
	if !harness.Poll(60*time.Second, 100*time.Millisecond, func() bool {
		byPod = map[string][]string{}
		ends := 0
		for _, d := range readMLDocs(t, sinkPath) {
			byPod[d.Kubernetes.Pod.Name] = append(byPod[d.Kubernetes.Pod.Name], d.Message)
			if d.Message == "END" {
				ends++
			}
		}
		return ends >= len(pods)
	}) {
		t.Fatalf("timed out: %v", byPod)
	}
	joined := func(lines []string) []string { return []string{strings.Join(lines, "\n")} }
	want := map[string][]string{
		"py-1":   slices.Concat([]string{"start"}, joined(py), goPanic, java, []string{"END"}),
		"go-1":   slices.Concat([]string{"start"}, py, joined(goPanic), java, []string{"END"}),
		"java-1": slices.Concat([]string{"start"}, py, goPanic, joined(java), []string{"END"}),
	}
	for pod, w := range want {
		got := slices.Compact(slices.Sorted(slices.Values(byPod[pod]))) // a re-sent document is no new event
		w = slices.Sorted(slices.Values(w))
		if !slices.Equal(got, w) {
			t.Errorf("pod %s: events %q\nwant %q", pod, got, w)
		}
	}
	harness.StopAll(t, 20*time.Second, agent, agg)
}
