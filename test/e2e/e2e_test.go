// Package e2e runs the real agent and aggregator binaries over loopback and
// checks, line by line, what arrives in the sink.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// TestKillAndRotate writes 50,000 lines into 20 container log files with
// rename and copytruncate rotations while the agent is killed twice and the
// aggregator once with SIGKILL, and checks that every line arrives, and
// that every copy of a line carries the same event id.
func TestKillAndRotate(t *testing.T) {
	for _, buffer := range []string{"memory", "disk"} {
		t.Run("buffer="+buffer, func(t *testing.T) { killAndRotate(t, buffer) })
	}
}

// killAndRotate is TestKillAndRotate with the aggregator's buffer of the
// given type: with "disk" the aggregator acks once a batch is in its
// write-ahead buffer, and a SIGKILL must not lose what it acked.
func killAndRotate(t *testing.T, buffer string) {
	const (
		files       = 20
		perFile     = 2500
		rounds      = 100
		rotateEvery = 600
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
%s`, listen, aggHTTP, sinkPath, bufferConfig(buffer, filepath.Join(root, "buffer"))))
	harness.AgentConfig{Node: "node-e2e", Root: root, HTTP: agentHTTP, Address: listen}.Write(t, filepath.Join(root, "agent.yaml"))

	pods := harness.NewPodFiles(t, root, files)
	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent, agg)

	perRound := perFile / rounds
	for r := 0; r < rounds; r++ {
		for i, p := range pods {
			for k := 0; k < perRound; k++ {
				p.Write(t, i, p.Written)
				if p.Written%rotateEvery == 0 {
					p.Rotate(t)
				}
			}
		}
		switch r {
		case 20, 70:
			agent.Kill9()
			t.Logf("round %d: agent killed with SIGKILL", r)
		case 23, 73:
			agent.Start()
		case 45:
			agg.Kill9()
			t.Logf("round %d: aggregator killed with SIGKILL", r)
		case 50:
			agg.Start()
		}
		time.Sleep(100 * time.Millisecond) // pacing of the writer, not synchronisation
	}
	total := files * perFile

	var docs []harness.Doc
	if !harness.Poll(3*time.Minute, 100*time.Millisecond, func() bool {
		docs = harness.ReadSink(t, sinkPath)
		return distinctLines(docs) >= total
	}) {
		t.Errorf("timed out waiting for every line: %d of %d arrived", distinctLines(docs), total)
	}

	ids := map[string]string{} // line -> event id
	idSet := map[string]string{}
	for _, d := range docs {
		m := harness.LineRE.FindStringSubmatch(d.Message)
		if m == nil {
			t.Fatalf("unexpected message %q (joined lines must be whole)", d.Message)
		}
		key := m[1] + "/" + m[2]
		if prev, ok := ids[key]; ok && prev != d.Event.ID {
			t.Fatalf("line %s arrived with two event ids: %s and %s", key, prev, d.Event.ID)
		}
		ids[key] = d.Event.ID
		if other, ok := idSet[d.Event.ID]; ok && other != key {
			t.Fatalf("event id %s used by two lines: %s and %s", d.Event.ID, other, key)
		}
		idSet[d.Event.ID] = key
		if d.Kubernetes.Pod.Name == "" || d.Kubernetes.Pod.UID == "" || d.Kubernetes.Namespace == "" {
			t.Fatalf("document without Kubernetes coordinates: %+v", d)
		}
	}
	for i, p := range pods {
		var missing []int
		for s := 0; s < p.Written; s++ {
			if _, ok := ids[fmt.Sprintf("%d/%d", i, s)]; !ok {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			t.Errorf("file %d (copytruncate=%v): %d lines never arrived, e.g. seq %v", i, p.Copytruncate, len(missing), missing[:min(len(missing), 10)])
		}
	}
	if len(idSet) != total {
		t.Fatalf("distinct event ids = %d, lines written = %d", len(idSet), total)
	}
	t.Logf("written=%d documents=%d distinct=%d repeated=%d", total, len(docs), len(idSet), len(docs)-len(idSet))

	harness.StopAll(t, 30*time.Second, agent, agg)
}

func bufferConfig(typ, dir string) string {
	if typ == "disk" {
		return fmt.Sprintf("buffer: {type: disk, dir: %s, max_bytes: 64MiB, segment_bytes: 1MiB}\n", dir)
	}
	return ""
}

func distinctLines(docs []harness.Doc) int {
	seen := map[string]bool{}
	for _, d := range docs {
		seen[d.Event.ID] = true
	}
	return len(seen)
}
