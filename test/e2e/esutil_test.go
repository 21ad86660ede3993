package e2e

// Helpers of the Elasticsearch end-to-end tests (es_test.go): the
// configuration of an aggregator with the Elasticsearch sink and of an
// agent, and the line-by-line check of what arrived. Processes, pod files
// and Elasticsearch itself are run by test/harness.

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// sharedESNode returns a client of the shared Elasticsearch and the root
// directory and name of a node of the test's own, with files pod files of
// perFile lines each written under root.
func sharedESNode(t *testing.T, files, perFile int) (es *harness.ESClient, root, node string) {
	t.Helper()
	es = harness.NewESClient(t, harness.ESURL(t))
	root = harness.NodeRoot(t)
	node = harness.UniqueNode(t, "e2e")
	harness.WriteAll(t, root, files, perFile)
	return es, root, node
}

// checkLines checks that docs hold every line "file=F seq=S" written by
// harness.PodFile.Write, for F < files and S < perFile, exactly once, each with a
// distinct event id that is also the document's _id.
func checkLines(t *testing.T, docs []harness.ESDoc, files, perFile int) {
	t.Helper()
	seen := make(map[[2]int]int, files*perFile)
	ids := make(map[string]bool, len(docs))
	bad := 0
	for _, d := range docs {
		f, s, ok := harness.ParseLine(d.Source.Message)
		if !ok {
			if bad++; bad <= 5 {
				t.Errorf("unexpected message %q in %s", d.Source.Message, d.Index)
			}
			continue
		}
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

// ferryProcs is an aggregator with the Elasticsearch sink and an agent
// tailing root/containers/*.log, shipping to it.
type ferryProcs struct {
	root, node, stateDir  string
	listen, aggHTTP, http string
	agg, agent            *harness.Proc
}

// startAggregator starts an aggregator with the Elasticsearch sink of o
// (its addresses and buffer directory, root/buffer, are set here) and waits
// until it answers on its health port. The sink's buffer is memory unless o
// says disk: the aggregator acks only what Elasticsearch took, which the
// outage and 429 tests check.
func startAggregator(t *testing.T, root string, o harness.ESAggregatorConfig) (agg *harness.Proc, listen, httpAddr string) {
	t.Helper()
	o.Listen, o.HTTP, o.BufferDir = harness.FreePort(t), harness.FreePort(t), filepath.Join(root, "buffer")
	path := filepath.Join(root, "aggregator.yaml")
	o.Write(t, path)
	agg = harness.StartProc(t, root, "aggregator", "--config", path)
	harness.WaitHealthy(t, "the aggregator", o.HTTP)
	return agg, o.Listen, o.HTTP
}

// startFerry starts an aggregator writing to Elasticsearch and an agent
// (node name node) tailing root/containers/*.log. agentExtra holds more
// lines of the agent's aggregator: section, indented by two spaces.
func startFerry(t *testing.T, root, node string, o harness.ESAggregatorConfig, agentExtra string) *ferryProcs {
	t.Helper()
	f := &ferryProcs{root: root, node: node, stateDir: filepath.Join(root, "state")}
	f.agg, f.listen, f.aggHTTP = startAggregator(t, root, o)
	f.http = harness.FreePort(t)
	path := filepath.Join(root, "agent.yaml")
	harness.AgentConfig{Node: node, Root: root, HTTP: f.http, Address: f.listen, Extra: agentExtra}.Write(t, path)
	f.agent = harness.StartProc(t, root, "agent", "--config", path)
	harness.LogTailsOnFailure(t, f.agent, f.agg)
	return f
}

// stop stops agent and aggregator with SIGTERM; both must exit cleanly.
func (f *ferryProcs) stop(t *testing.T) {
	t.Helper()
	harness.StopAll(t, 30*time.Second, f.agent, f.agg)
}

// acked returns the agent's ferry_agent_events_acked_total.
func (f *ferryProcs) acked() (uint64, error) {
	return harness.AgentAcked(f.http)
}

// waitAcked waits until the agent has n events acknowledged.
func (f *ferryProcs) waitAcked(t *testing.T, n uint64, timeout time.Duration) {
	t.Helper()
	var last uint64
	if !harness.Poll(timeout, 100*time.Millisecond, func() bool {
		v, err := f.acked()
		if err == nil {
			last = v
		}
		return err == nil && v >= n
	}) {
		t.Fatalf("timed out after %s: the agent has %d of %d events acknowledged", timeout, last, n)
	}
}
