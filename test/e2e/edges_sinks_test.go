//go:build linux

package e2e

// End-to-end tests of the aggregator's sinks and disk buffer at the edges
// (issue 19): a full disk under the file sink and under the disk buffer,
// and Elasticsearch templates that are not Ferry's. A full disk is made
// with RLIMIT_FSIZE on the aggregator process (harness.SetFileSizeLimit):
// its writes past the limit fail with EFBIG, which needs no mount rights.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// TestFileSinkFullDisk (issue 19, case 5): the file sink's file can grow to
// 128 KiB only, so a batch's write fails part way, and then every write,
// until the limit is lifted. Afterwards the file holds every line exactly
// once, each a valid JSON document: the failed write was cut back off and
// the batch's retry wrote each of its documents once.
func TestFileSinkFullDisk(t *testing.T) {
	const lines = 2000
	root := harness.NodeRoot(t)
	listen, aggHTTP, agentHTTP := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	sinkPath := filepath.Join(root, "out", "events.ndjson")
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), fmt.Sprintf(`
listen: %s
http: %s
sinks:
  - {type: file, path: %s}
`, listen, aggHTTP, sinkPath))
	harness.AgentConfig{Node: "node-full", Root: root, HTTP: agentHTTP, Address: listen}.Write(t, filepath.Join(root, "agent.yaml"))
	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	harness.WaitHealthy(t, "the aggregator", aggHTTP)
	harness.SetFileSizeLimit(t, agg.PID(), 128<<10)

	pod := harness.NewPodFile(t, root, 0)
	for s := range lines {
		pod.Write(t, 0, s)
	}
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent, agg)

	harness.WaitFor(t, time.Minute, "a batch refused by the full file sink", func() bool {
		n, err := harness.Stat(aggHTTP, "ferry_aggregator_batches_retry_total")
		return err == nil && n >= 2
	})
	if fi, err := os.Stat(sinkPath); err != nil || fi.Size() > 128<<10 {
		t.Fatalf("sink file: %v, %v; want it bounded by the limit", fi, err)
	}
	harness.SetFileSizeLimit(t, agg.PID(), harness.NoFileSizeLimit)

	var seen map[int]int
	if !harness.Poll(time.Minute, 100*time.Millisecond, func() bool {
		seen = fileSinkLines(t, sinkPath, false)
		return len(seen) >= lines
	}) {
		t.Fatalf("timed out: %d of %d lines in the file sink", len(seen), lines)
	}
	harness.StopAll(t, 30*time.Second, agent, agg)
	seen = fileSinkLines(t, sinkPath, true)
	var wrong []string
	for s := range lines {
		if seen[s] != 1 {
			wrong = append(wrong, fmt.Sprintf("%d×%d", s, seen[s]))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d lines are not in the file exactly once, e.g. seq×count %v", len(wrong), wrong[:min(len(wrong), 10)])
	}
}

// fileSinkLines returns how often each line of file 0 is in the file sink.
// With strict, every line must be a complete JSON document holding one of
// them, and the file must end in a newline.
func fileSinkLines(t *testing.T, path string, strict bool) map[int]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if strict && len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("the file ends in a torn line: %q", data[max(0, len(data)-80):])
	}
	seen, bad := map[int]int{}, 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var d harness.Doc
		err := json.Unmarshal(sc.Bytes(), &d)
		f, s, ok := harness.ParseLine(d.Message)
		if err != nil || !ok || f != 0 {
			if bad++; strict && bad <= 5 {
				t.Errorf("line %d of the file is not a whole document of a line written: %v: %.120q", n, err, sc.Text())
			}
			continue
		}
		seen[s]++
	}
	return seen
}

// bulkGate stands between the aggregator and Elasticsearch: while closed it
// answers every bulk request with a whole-request 429, so nothing is
// delivered; everything else (template setup) passes through.
type bulkGate struct {
	srv    *httptest.Server
	closed atomic.Bool
}

func newBulkGate(t *testing.T, target string) *bulkGate {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &bulkGate{}
	g.closed.Store(true)
	rp := httputil.NewSingleHostReverseProxy(u)
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.closed.Load() && strings.HasSuffix(r.URL.Path, "/_bulk") {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Elastic-Product", "Elasticsearch")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"type":"es_rejected_execution_exception","reason":"closed by the test's gate"},"status":429}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// TestDiskBufferFullDiskRecovers (issue 19, case 6): the disk buffer has the
// default segment size (64 MiB) and its files may grow to 512 KiB only, while
// Elasticsearch takes nothing. The buffer refuses batches as full (agents
// retry), and /readyz says "buffer full" naming it. Once Elasticsearch takes
// bulks again, the delivered active segment is reclaimed and delivery
// resumes by itself: every line arrives once, and the aggregator is ready
// again.
func TestDiskBufferFullDiskRecovers(t *testing.T) {
	const lines = 6000
	es, root, node := sharedESNode(t, 1, lines)
	gate := newBulkGate(t, harness.ESURL(t))
	f := &ferryProcs{root: root, node: node, stateDir: filepath.Join(root, "state")}
	f.agg, f.listen, f.aggHTTP = startAggregator(t, root, harness.ESAggregatorConfig{URL: gate.srv.URL, SinkBuffer: "disk"})
	harness.SetFileSizeLimit(t, f.agg.PID(), 512<<10)
	f.http = harness.FreePort(t)
	// Batches of 200 events (about 70 KB): several fit in a segment file.
	harness.AgentConfig{Node: node, Root: root, HTTP: f.http, Address: f.listen, Extra: "  batch_max_events: 200\n"}.Write(t, filepath.Join(root, "agent.yaml"))
	f.agent = harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, f.agent, f.agg)

	const full = "buffer full: buffer elasticsearch-0 has no room on its disk"
	var body string
	harness.WaitFor(t, time.Minute, "/readyz to say "+full, func() bool {
		b, err := harness.HTTPGet(f.aggHTTP, "/readyz")
		body = string(b)
		if err != nil {
			body = err.Error()
		}
		return strings.Contains(body, full)
	})
	if n, err := harness.Stat(f.aggHTTP, "ferry_aggregator_buffers_full"); err != nil || n != 1 {
		t.Errorf("ferry_aggregator_buffers_full = %d, %v; want 1", n, err)
	}
	acked, err := f.acked()
	if err != nil || acked >= lines {
		t.Fatalf("agent acked %d of %d lines (%v) with the buffer full: the test needs a fuller buffer", acked, lines, err)
	}
	t.Logf("buffer full after %d of %d lines acked", acked, lines)

	gate.closed.Store(false)
	es.WaitNodeCount(node, lines, 2*time.Minute)
	harness.WaitFor(t, 30*time.Second, "/readyz to answer ready", func() bool {
		_, err := harness.HTTPGet(f.aggHTTP, "/readyz")
		return err == nil
	})
	if n, err := harness.Stat(f.aggHTTP, "ferry_aggregator_buffer_no_space_total"); err != nil || n == 0 {
		t.Errorf("ferry_aggregator_buffer_no_space_total = %d, %v; want the refusals counted", n, err)
	}
	checkLines(t, es.NodeDocs("logs-*", node), 1, lines)
	f.stop(t)
}

// TestESTemplateConflict (issue 19, case 10b): a user's index template
// "logs-edgetmpl<run>*" at priority 500 without data_stream outranks
// Ferry's for the dataset of the agent's file input. The aggregator (the
// default template_conflict: error) refuses those events with an error
// naming the template, and nothing is written (no plain index); restarted
// with template_conflict: warn, it warns, naming the template, and writes
// every line.
func TestESTemplateConflict(t *testing.T) {
	const lines = 50
	es := harness.NewESClient(t, harness.ESURL(t))
	root := harness.NodeRoot(t)
	node := harness.UniqueNode(t, "e2e")
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	dataset, tmpl := "edgetmpl"+run, "ferry-e2e-user-edgetmpl-"+run
	stream := "logs-" + dataset + "-default"
	es.Must(http.MethodPut, "/_index_template/"+tmpl, map[string]any{
		"index_patterns": []string{"logs-" + dataset + "*"},
		"priority":       500,
	}, nil)
	t.Cleanup(func() {
		_, _, _ = es.Call(http.MethodDelete, "/"+stream, nil)
		_, _, _ = es.Call(http.MethodDelete, "/_index_template/"+tmpl, nil)
	})
	var text strings.Builder
	for i := range lines {
		fmt.Fprintf(&text, "edge line %d\n", i)
	}
	harness.WriteFile(t, filepath.Join(root, "app.log"), text.String())

	o := harness.ESAggregatorConfig{URL: harness.ESURL(t)}
	agg, listen, aggHTTP := startAggregator(t, root, o)
	agentHTTP := harness.FreePort(t)
	harness.WriteFile(t, filepath.Join(root, "agent.yaml"), fmt.Sprintf(`
node: %s
state_dir: %s
http: %s
aggregator:
  address: %s
  batch_timeout: 100ms
  backoff_initial: 50ms
  backoff_max: 1s
inputs:
  - type: file
    paths: ["%s"]
    dataset: %s
`, node, filepath.Join(root, "state"), agentHTTP, listen, filepath.Join(root, "app.log"), dataset))
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent, agg)

	logHas := func(p *harness.Proc, subs ...string) bool {
		b, _ := os.ReadFile(p.Log)
		for _, line := range strings.Split(string(b), "\n") {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(line, s)
			}
			if ok {
				return true
			}
		}
		return false
	}
	harness.WaitFor(t, time.Minute, "the aggregator's error naming the template", func() bool {
		return logHas(agg, "level=ERROR", "refusing events", stream, `index template \"`+tmpl+`\"`, "priority 500", "no data_stream")
	})
	if acked, err := harness.AgentAcked(agentHTTP); err != nil || acked != 0 {
		t.Errorf("agent acked %d events (%v) of a refused data stream, want 0", acked, err)
	}
	if code, _, err := es.Call(http.MethodGet, "/"+stream, nil); err != nil || code != http.StatusNotFound {
		t.Errorf("GET /%s: HTTP %d, %v; want 404: nothing written into a plain index", stream, code, err)
	}

	// template_conflict: warn writes anyway.
	if err := agg.Term(30 * time.Second); err != nil {
		t.Fatalf("aggregator exit after SIGTERM: %v", err)
	}
	o.Listen, o.HTTP, o.BufferDir = listen, aggHTTP, filepath.Join(root, "buffer")
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), o.YAML()+"    template_conflict: warn\n")
	agg.Start()
	// A plain index: host.name is mapped as text there, so count it all.
	harness.WaitFor(t, time.Minute, "every line in "+stream, func() bool {
		n, err := es.TryCount(stream, map[string]any{"match_all": map[string]any{}})
		return err == nil && n == lines
	})
	if !logHas(agg, "level=WARN", "template_conflict: warn", tmpl) {
		t.Errorf("no warning naming the template %s in the aggregator's log", tmpl)
	}
	harness.StopAll(t, 30*time.Second, agent, agg)
}
