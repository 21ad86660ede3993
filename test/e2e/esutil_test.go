package e2e

// Helpers of the Elasticsearch end-to-end tests (es_test.go): the
// configuration of an aggregator with the Elasticsearch sink and of an
// agent, and the line-by-line check of what arrived. Processes, pod files
// and Elasticsearch itself are run by test/harness.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// checkLines checks that docs hold every line "file=F seq=S" written by
// harness.PodFile.Write, for F < files and S < perFile, exactly once, each with a
// distinct event id that is also the document's _id.
func checkLines(t *testing.T, docs []harness.ESDoc, files, perFile int) {
	t.Helper()
	seen := make(map[[2]int]int, files*perFile)
	ids := make(map[string]bool, len(docs))
	bad := 0
	for _, d := range docs {
		m := harness.LineRE.FindStringSubmatch(d.Source.Message)
		if m == nil {
			if bad++; bad <= 5 {
				t.Errorf("unexpected message %q in %s", d.Source.Message, d.Index)
			}
			continue
		}
		f, _ := strconv.Atoi(m[1])
		s, _ := strconv.Atoi(m[2])
		seen[[2]int{f, s}]++
		if d.ID != d.Source.Event.ID {
			if bad++; bad <= 5 {
				t.Errorf("document _id %s differs from its event.id %s", d.ID, d.Source.Event.ID)
			}
		}
		ids[d.Source.Event.ID] = true
	}
	var missing, dup []string
	for f := range files {
		for s := range perFile {
			switch n := seen[[2]int{f, s}]; {
			case n == 0:
				missing = append(missing, fmt.Sprintf("%d/%d", f, s))
			case n > 1:
				dup = append(dup, fmt.Sprintf("%d/%d×%d", f, s, n))
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d lines missing in Elasticsearch, e.g. file/seq %v", len(missing), missing[:min(len(missing), 10)])
	}
	if len(dup) > 0 {
		t.Errorf("%d lines indexed more than once, e.g. %v", len(dup), dup[:min(len(dup), 10)])
	}
	if len(ids) != len(docs) {
		t.Errorf("%d documents but %d distinct event ids", len(docs), len(ids))
	}
	if len(docs) != files*perFile {
		t.Errorf("%d documents for %d lines written", len(docs), files*perFile)
	}
}

// esSinkOpts are the aggregator's Elasticsearch sink settings a test sets.
type esSinkOpts struct {
	url                   string
	flushEvents           int    // 0: the default
	maxConcurrentRequests int    // 0: the default
	retryInitial          string // default 100ms
	retryMax              string // default 2s
	// buffer is the sink's buffer: "memory" (the default here: the aggregator
	// acks only what Elasticsearch took, which the outage and 429 tests
	// check) or "disk" (acks once durable in root/buffer).
	buffer string
}

// ferryProcs is an aggregator with the Elasticsearch sink and an agent
// tailing root/containers/*.log, shipping to it.
type ferryProcs struct {
	root, node, stateDir  string
	listen, aggHTTP, http string
	agg, agent            *harness.Proc
}

// startAggregator starts an aggregator with one Elasticsearch sink and
// waits until it answers on its health port.
func startAggregator(t *testing.T, root string, o esSinkOpts) (agg *harness.Proc, listen, httpAddr string) {
	t.Helper()
	listen, httpAddr = harness.FreePort(t), harness.FreePort(t)
	if o.retryInitial == "" {
		o.retryInitial = "100ms"
	}
	if o.retryMax == "" {
		o.retryMax = "2s"
	}
	extra := ""
	if o.flushEvents > 0 {
		extra += fmt.Sprintf("    flush_events: %d\n", o.flushEvents)
	}
	if o.maxConcurrentRequests > 0 {
		extra += fmt.Sprintf("    max_concurrent_requests: %d\n", o.maxConcurrentRequests)
	}
	if o.buffer == "" {
		o.buffer = "memory"
	}
	path := filepath.Join(root, "aggregator.yaml")
	harness.WriteFile(t, path, fmt.Sprintf(`
listen: %s
http: %s
buffer: {dir: %s}
sinks:
  - type: elasticsearch
    buffer: %s
    urls: ["%s"]
    flush_interval: 200ms
    retry_initial: %s
    retry_max: %s
%s`, listen, httpAddr, filepath.Join(root, "buffer"), o.buffer, o.url, o.retryInitial, o.retryMax, extra))
	agg = harness.StartProc(t, root, "aggregator", "--config", path)
	harness.WaitFor(t, 30*time.Second, "the aggregator's /healthz", func() bool {
		_, err := harness.HTTPGet(httpAddr, "/healthz")
		return err == nil
	})
	return agg, listen, httpAddr
}

// startFerry starts an aggregator writing to Elasticsearch and an agent
// (node name node) tailing root/containers/*.log. agentExtra holds more
// lines of the agent's aggregator: section, indented by two spaces.
func startFerry(t *testing.T, root, node string, o esSinkOpts, agentExtra string) *ferryProcs {
	t.Helper()
	f := &ferryProcs{root: root, node: node, stateDir: filepath.Join(root, "state")}
	f.agg, f.listen, f.aggHTTP = startAggregator(t, root, o)
	f.http = harness.FreePort(t)
	path := filepath.Join(root, "agent.yaml")
	harness.WriteFile(t, path, fmt.Sprintf(`
node: %s
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
    poll_interval: 50ms
    glob_interval: 200ms
`, node, f.stateDir, f.http, f.listen, agentExtra, root))
	f.agent = harness.StartProc(t, root, "agent", "--config", path)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", f.agent.LogTail())
			t.Logf("aggregator log:\n%s", f.agg.LogTail())
		}
	})
	return f
}

// stop stops agent and aggregator with SIGTERM; both must exit cleanly.
func (f *ferryProcs) stop(t *testing.T) {
	t.Helper()
	if err := f.agent.Term(30 * time.Second); err != nil {
		t.Errorf("agent exit after SIGTERM: %v", err)
	}
	if err := f.agg.Term(30 * time.Second); err != nil {
		t.Errorf("aggregator exit after SIGTERM: %v", err)
	}
}

// acked returns the agent's ferry_agent_events_acked_total.
func (f *ferryProcs) acked() (uint64, error) {
	return harness.Stat(f.http, "ferry_agent_events_acked_total")
}

// waitAcked waits until the agent has n events acknowledged.
func (f *ferryProcs) waitAcked(t *testing.T, n uint64, timeout time.Duration) {
	t.Helper()
	var last uint64
	deadline := time.Now().Add(timeout)
	for {
		v, err := f.acked()
		if err == nil {
			last = v
			if v >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: the agent has %d of %d events acknowledged", timeout, last, n)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}
