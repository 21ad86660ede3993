// Package e2e runs the real agent and aggregator binaries over loopback and
// checks, line by line, what arrives in the sink.
package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cluster lays out log files the way a Kubernetes node does:
// containers/<pod>_<ns>_<container>-<id>.log -> pods/<ns>_<pod>_<uid>/<container>/0.log
type podFile struct {
	ns, pod, uid, container, id string
	real, link                  string
	f                           *os.File
	written                     int
	rotations                   int
	copytruncate                bool
}

func newPodFile(t *testing.T, root string, i int) *podFile {
	ns := []string{"dev", "staging", "prod"}[i%3]
	p := &podFile{
		ns: ns, pod: fmt.Sprintf("web-%d", i), uid: fmt.Sprintf("uid-%04d", i), container: "app",
		id: fmt.Sprintf("%064x", i+1), copytruncate: i%2 == 1,
	}
	dir := filepath.Join(root, "pods", p.ns+"_"+p.pod+"_"+p.uid, p.container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p.real = filepath.Join(dir, "0.log")
	p.link = filepath.Join(root, "containers", fmt.Sprintf("%s_%s_%s-%s.log", p.pod, p.ns, p.container, p.id))
	p.open(t)
	if err := os.Symlink(p.real, p.link); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *podFile) open(t *testing.T) {
	f, err := os.OpenFile(p.real, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.f = f
}

// write appends line seq of this file in CRI format; every 7th line is split
// into a partial and a final record.
func (p *podFile) write(t *testing.T, file, seq int) {
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")
	body := fmt.Sprintf("file=%d seq=%d %s", file, seq, strings.Repeat("x", 40+seq%50))
	var rec string
	if seq%7 == 0 {
		half := len(body) / 2
		rec = fmt.Sprintf("%s stdout P %s\n%s stdout F %s\n", ts, body[:half], ts, body[half:])
	} else {
		rec = fmt.Sprintf("%s stdout F %s\n", ts, body)
	}
	if _, err := p.f.WriteString(rec); err != nil {
		t.Fatal(err)
	}
	p.written++
}

// rotate rotates the file the way kubelet (rename) or logrotate's
// copytruncate would, keeping the rotated copy beside it.
func (p *podFile) rotate(t *testing.T) {
	p.rotations++
	rotated := fmt.Sprintf("%s.%d", p.real, p.rotations)
	if p.copytruncate {
		src, err := os.Open(p.real)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(rotated)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
		if err := p.f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		return
	}
	p.f.Close()
	if err := os.Rename(p.real, rotated); err != nil {
		t.Fatal(err)
	}
	p.open(t)
}

var lineRE = regexp.MustCompile(`^file=(\d+) seq=(\d+) x+$`)

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
	root := t.TempDir()
	for _, d := range []string{"containers", "pods", "state", "out"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	listen, aggHTTP, agentHTTP := freePort(t), freePort(t), freePort(t)
	sinkPath := filepath.Join(root, "out", "events.ndjson")
	writeFile(t, filepath.Join(root, "aggregator.yaml"), fmt.Sprintf(`
listen: %s
http: %s
sinks:
  - {type: file, path: %s}
%s`, listen, aggHTTP, sinkPath, bufferConfig(buffer, filepath.Join(root, "buffer"))))
	writeFile(t, filepath.Join(root, "agent.yaml"), fmt.Sprintf(`
node: node-e2e
state_dir: %s
http: %s
aggregator:
  address: %s
  batch_timeout: 100ms
  backoff_initial: 50ms
  backoff_max: 1s
inputs:
  - type: container
    paths: ["%s/containers/*.log"]
    poll_interval: 50ms
    glob_interval: 200ms
`, filepath.Join(root, "state"), agentHTTP, listen, root))

	pods := make([]*podFile, files)
	for i := range pods {
		pods[i] = newPodFile(t, root, i)
	}
	agg := startProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	agent := startProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	defer func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", agent.logTail())
			t.Logf("aggregator log:\n%s", agg.logTail())
		}
	}()

	perRound := perFile / rounds
	for r := 0; r < rounds; r++ {
		for i, p := range pods {
			for k := 0; k < perRound; k++ {
				p.write(t, i, p.written)
				if p.written%rotateEvery == 0 {
					p.rotate(t)
				}
			}
		}
		switch r {
		case 20, 70:
			agent.kill9()
			t.Logf("round %d: agent killed with SIGKILL", r)
		case 23, 73:
			agent.start()
		case 45:
			agg.kill9()
			t.Logf("round %d: aggregator killed with SIGKILL", r)
		case 50:
			agg.start()
		}
		time.Sleep(100 * time.Millisecond) // pacing of the writer, not synchronisation
	}
	total := files * perFile

	var docs []doc
	deadline := time.Now().Add(3 * time.Minute)
	for {
		docs = readSink(t, sinkPath)
		if distinctLines(docs) >= total {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for every line: %d of %d arrived", distinctLines(docs), total)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	ids := map[string]string{} // line -> event id
	idSet := map[string]string{}
	for _, d := range docs {
		m := lineRE.FindStringSubmatch(d.Message)
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
		for s := 0; s < p.written; s++ {
			if _, ok := ids[fmt.Sprintf("%d/%d", i, s)]; !ok {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			t.Errorf("file %d (copytruncate=%v): %d lines never arrived, e.g. seq %v", i, p.copytruncate, len(missing), missing[:min(len(missing), 10)])
		}
	}
	if len(idSet) != total {
		t.Fatalf("distinct event ids = %d, lines written = %d", len(idSet), total)
	}
	t.Logf("written=%d documents=%d distinct=%d repeated=%d", total, len(docs), len(idSet), len(docs)-len(idSet))

	if err := agent.term(30 * time.Second); err != nil {
		t.Errorf("agent exit after SIGTERM: %v", err)
	}
	if err := agg.term(30 * time.Second); err != nil {
		t.Errorf("aggregator exit after SIGTERM: %v", err)
	}
}

func bufferConfig(typ, dir string) string {
	if typ == "disk" {
		return fmt.Sprintf("buffer: {type: disk, dir: %s, max_bytes: 64MiB, segment_bytes: 1MiB}\n", dir)
	}
	return ""
}

func distinctLines(docs []doc) int {
	seen := map[string]bool{}
	for _, d := range docs {
		seen[d.Event.ID] = true
	}
	return len(seen)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
