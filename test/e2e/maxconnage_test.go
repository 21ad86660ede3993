package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// TestMaxConnectionAge: the aggregator's max_connection_age and
// max_connection_age_grace end an agent's connection (GOAWAY, then close),
// the agent reconnects and re-sends, and every line written meanwhile
// arrives, under one event id (so Elasticsearch keeps it once). This is what lets agents behind a headless Service
// spread over aggregator replicas added after they connected.
func TestMaxConnectionAge(t *testing.T) {
	root := harness.NodeRoot(t)
	if err := os.Mkdir(filepath.Join(root, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	listen, aggHTTP, agentHTTP := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	sinkPath := filepath.Join(root, "out", "events.ndjson")
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), fmt.Sprintf(`
listen: %s
http: %s
max_connection_age: 1s
max_connection_age_grace: 1s
sinks:
  - {type: file, path: %s}
`, listen, aggHTTP, sinkPath))
	harness.AgentConfig{Node: "node-conn-age", Root: root, HTTP: agentHTTP, Address: listen}.Write(t, filepath.Join(root, "agent.yaml"))
	pod := harness.NewPodFile(t, root, 0)
	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	harness.WaitHealthy(t, "aggregator", aggHTTP)
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent, agg)
	harness.WaitHealthy(t, "agent", agentHTTP)

	// Lines keep coming while the connection is aged out twice.
	deadline := time.Now().Add(20 * time.Second)
	for stat(t, agentHTTP, "ferry_agent_reconnects_total") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("agent reconnected %d times in 20 s with max_connection_age 1s + grace 1s, want 2",
				stat(t, agentHTTP, "ferry_agent_reconnects_total"))
		}
		for range 20 {
			pod.Write(t, 0, pod.Written)
		}
		time.Sleep(50 * time.Millisecond) // pacing of the writer, not synchronisation
	}
	// At least once; a batch cut off with its connection is re-sent with
	// the ids it had (the file sink keeps both copies, Elasticsearch drops
	// the second), so each line has exactly one event id.
	ids := map[int]map[string]bool{}
	harness.WaitFor(t, 30*time.Second, "every line written", func() bool {
		clear(ids)
		for _, d := range harness.ReadSink(t, sinkPath) {
			if f, seq, ok := harness.ParseLine(d.Message); ok && f == 0 {
				if ids[seq] == nil {
					ids[seq] = map[string]bool{}
				}
				ids[seq][d.Event.ID] = true
			}
		}
		return len(ids) >= pod.Written
	})
	for seq := range pod.Written {
		if len(ids[seq]) != 1 {
			t.Errorf("line %d arrived with %d event ids, want 1", seq, len(ids[seq]))
		}
	}
	if len(ids) != pod.Written {
		t.Errorf("%d distinct lines arrived, %d written", len(ids), pod.Written)
	}
}
