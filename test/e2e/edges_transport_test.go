package e2e

// The aggregator's edges with the real binaries: its connection limit
// under idle TCP connections (issue 19, case 7) and bearer tokens revoked
// while a stream is open (case 10a).

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
	"github.com/ferrylogs/ferry/transport/tlsconf/tlstest"
)

// fileLines returns, per line of file number file, how many documents of
// the sink hold it, and the number of documents.
func fileLines(t *testing.T, sinkPath string, file int) (map[int]int, int) {
	t.Helper()
	out := map[int]int{}
	n := 0
	for _, d := range harness.ReadSink(t, sinkPath) {
		if f, seq, ok := harness.ParseLine(d.Message); ok && f == file {
			out[seq]++
			n++
		}
	}
	return out, n
}

// logCount returns how many lines of a process's log hold sub.
func logCount(p *harness.Proc, sub string) int {
	data, _ := os.ReadFile(p.Log)
	return strings.Count(string(data), sub)
}

func stat(t *testing.T, addr, name string) uint64 {
	t.Helper()
	v, err := harness.Stat(addr, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// watchReady polls /readyz every 100 ms until the returned stop is called,
// which returns the number of failed probes and the first failure.
func watchReady(addr string) (stop func() (int, error)) {
	var failed atomic.Int64
	var first error
	var once sync.Once
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if _, err := harness.HTTPGet(addr, "/readyz"); err != nil {
				failed.Add(1)
				once.Do(func() { first = err })
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() (int, error) {
		close(quit)
		<-done
		return int(failed.Load()), first
	}
}

// TestConnectionLimit: an aggregator with max_connections 20 and a
// handshake timeout of 6 s, an agent shipping, then 60 idle TCP
// connections. The idle connections beyond the limit are closed at once,
// those within it after the handshake timeout, and the metrics count both;
// the agent that was connected keeps delivering while the limit is
// reached, /readyz answers throughout, and a new agent, turned away while
// the limit holds, connects and delivers once the idle connections are
// gone.
func TestConnectionLimit(t *testing.T) {
	const (
		maxConns  = 20
		idle      = 60
		hsTimeout = 6 * time.Second
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
max_connections: %d
handshake_timeout: %s
sinks:
  - {type: file, path: %s}
`, listen, aggHTTP, maxConns, hsTimeout, sinkPath))
	harness.AgentConfig{Node: "node-conn-a", Root: root, HTTP: agentHTTP, Address: listen}.Write(t, filepath.Join(root, "agent.yaml"))
	rootB := harness.NodeRoot(t)
	agentBHTTP := harness.FreePort(t)
	harness.AgentConfig{Node: "node-conn-b", Root: rootB, HTTP: agentBHTTP, Address: listen}.Write(t, filepath.Join(rootB, "agent.yaml"))

	pod := harness.NewPodFile(t, root, 0)
	podB := harness.NewPodFile(t, rootB, 1)
	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	harness.WaitHealthy(t, "aggregator", aggHTTP)
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent, agg)
	write := func(p *harness.PodFile, file, n int) {
		for range n {
			p.Write(t, file, p.Written)
		}
	}
	arrived := func(p *harness.PodFile, file int) func() bool {
		return func() bool { lines, _ := fileLines(t, sinkPath, file); return len(lines) == p.Written }
	}
	write(pod, 0, 100)
	harness.WaitFor(t, 30*time.Second, "the first lines", arrived(pod, 0))
	stopReady := watchReady(aggHTTP)

	open0 := int(stat(t, aggHTTP, "ferry_aggregator_connections_open"))
	if open0 != 1 {
		t.Fatalf("connections open before the idle ones: %d, want 1 (the agent's)", open0)
	}
	fits := maxConns - open0
	type ended struct{ after time.Duration }
	endc := make(chan ended, idle)
	start := time.Now()
	for range idle {
		c, err := net.DialTimeout("tcp", listen, 5*time.Second)
		if err != nil { // reset before the dial returned: refused at accept
			endc <- ended{time.Since(start)}
			continue
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			buf := make([]byte, 64)
			for {
				if _, err := c.Read(buf); err != nil {
					endc <- ended{time.Since(start)}
					return
				}
			}
		}()
	}
	harness.WaitFor(t, 10*time.Second, "the idle connections accepted or refused", func() bool {
		open, _ := harness.Stat(aggHTTP, "ferry_aggregator_connections_open")
		refused, _ := harness.Stat(aggHTTP, "ferry_aggregator_connections_refused_total")
		return open == maxConns && refused == uint64(idle-fits)
	})

	// The limit holds: the connected agent delivers, a new agent cannot
	// connect.
	write(pod, 0, 100)
	harness.WaitFor(t, hsTimeout/2, "lines of the connected agent while the limit holds", arrived(pod, 0))
	if open := stat(t, aggHTTP, "ferry_aggregator_connections_open"); open != maxConns {
		t.Fatalf("connections open %d after the agent delivered, want %d: the limit must still hold", open, maxConns)
	}
	write(podB, 1, 50)
	agentB := harness.StartProcLog(t, filepath.Join(rootB, "agent.log"), "agent", "--config", filepath.Join(rootB, "agent.yaml"))
	harness.LogTailsOnFailure(t, agentB)
	harness.WaitFor(t, hsTimeout/2, "the new agent refused while the limit holds", func() bool {
		refused, _ := harness.Stat(aggHTTP, "ferry_aggregator_connections_refused_total")
		return refused > uint64(idle-fits)
	})
	if time.Since(start) >= hsTimeout {
		t.Fatalf("the checks while the limit holds took %v, longer than the handshake timeout %v", time.Since(start), hsTimeout)
	}

	// The idle connections: beyond the limit closed at once, within it
	// after the handshake timeout.
	var early, late int
	for range idle {
		select {
		case e := <-endc:
			switch {
			case e.after < hsTimeout/2:
				early++
			case e.after >= hsTimeout-time.Second:
				late++
			default:
				t.Errorf("an idle connection closed after %v: neither at once nor at the handshake timeout", e.after)
			}
		case <-time.After(3 * hsTimeout):
			t.Fatalf("idle connections still open: %d closed at once, %d after the handshake timeout", early, late)
		}
	}
	t.Logf("%d idle connections: %d reset at once, %d closed after the handshake timeout", idle, early, late)
	if early != idle-fits || late != fits {
		t.Errorf("idle connections: %d closed at once, %d after the handshake timeout; want %d and %d", early, late, idle-fits, fits)
	}
	harness.WaitFor(t, 5*time.Second, "the handshake timeouts counted", func() bool {
		n, _ := harness.Stat(aggHTTP, "ferry_aggregator_handshake_timeouts_total")
		return n == uint64(fits)
	})

	// The new agent connects and delivers once the idle connections are gone.
	harness.WaitFor(t, 30*time.Second, "the new agent's lines", arrived(podB, 1))
	if n, err := stopReady(); n != 0 {
		t.Errorf("/readyz failed %d times while the limit held: %v", n, err)
	}
	for _, want := range []string{"open files limit", "connection limit reached", "did not complete the TLS and HTTP/2 handshakes"} {
		if logCount(agg, want) == 0 {
			t.Errorf("aggregator log lacks %q", want)
		}
	}
	harness.StopAll(t, 20*time.Second, agent, agentB, agg)
}

// TestTokenRevocation: over TLS with bearer tokens, an agent ships; its
// token is removed from the aggregator's tokens file while its stream is
// open. Within seconds the aggregator ends the stream and logs it, the
// agent logs the refusal and keeps retrying, and lines written meanwhile
// do not arrive; once the token is back they do, and every line written
// arrived exactly once.
func TestTokenRevocation(t *testing.T) {
	root := harness.NodeRoot(t)
	dir := filepath.Join(root, "tls")
	for _, d := range []string{dir, filepath.Join(root, "out")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ca := tlstest.NewCA(t, "ferry-ca")
	caFile := ca.Write(t, dir, "ca")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	tokensFile, agentToken := filepath.Join(dir, "tokens"), filepath.Join(dir, "agent-token")
	const allowed = "# agents\nagent-secret-1\nother-agent-2\n"
	tlstest.WriteFile(t, tokensFile, []byte(allowed))
	tlstest.WriteFile(t, agentToken, []byte("agent-secret-1\n"))

	listen, aggHTTP, agentHTTP := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	sinkPath := filepath.Join(root, "out", "events.ndjson")
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), fmt.Sprintf(`
listen: %s
http: %s
tls: {enabled: true, cert_file: %s, key_file: %s}
auth: {bearer_tokens_file: %s}
sinks:
  - {type: file, path: %s}
`, listen, aggHTTP, certFile, keyFile, tokensFile, sinkPath))
	harness.AgentConfig{Node: "node-revoke", Root: root, HTTP: agentHTTP, Address: listen,
		Extra: fmt.Sprintf("  tls: {enabled: true, ca_file: %s}\n  bearer_token_file: %s\n", caFile, agentToken),
	}.Write(t, filepath.Join(root, "agent.yaml"))

	pod := harness.NewPodFile(t, root, 0)
	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	harness.WaitHealthy(t, "aggregator", aggHTTP)
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent, agg)
	write := func(n int) {
		for range n {
			pod.Write(t, 0, pod.Written)
		}
	}
	delivered := func() int { lines, _ := fileLines(t, sinkPath, 0); return len(lines) }

	write(300)
	harness.WaitFor(t, 30*time.Second, "the lines before the revocation", func() bool { return delivered() == 300 })

	// The token goes while the stream is open (and idle).
	revokedAt := time.Now()
	tlstest.WriteFile(t, tokensFile, []byte("# agents\nother-agent-2\n"))
	harness.WaitFor(t, 10*time.Second, "the aggregator to end the stream", func() bool {
		return logCount(agg, "ending a stream: its bearer token is no longer accepted") == 1
	})
	took := time.Since(revokedAt)
	if took > 5*time.Second {
		t.Errorf("the stream ended %v after the token was removed, want within seconds", took)
	}
	t.Logf("stream ended %v after the token was removed", took.Round(time.Millisecond))
	if logCount(agg, "agent-secret-1") != 0 {
		t.Errorf("the aggregator logged the token")
	}
	atRevocation := delivered()

	// Lines written now wait with the agent, which is refused again and
	// again.
	write(200)
	refusals := logCount(agent, "stream to aggregator refused")
	harness.WaitFor(t, 20*time.Second, "the agent to be refused three more times", func() bool {
		return logCount(agent, "stream to aggregator refused") >= refusals+3
	})
	if logCount(agent, "bearer token revoked") == 0 {
		t.Errorf("the agent's log does not say the token was revoked")
	}
	if n := delivered(); n != atRevocation {
		t.Fatalf("%d lines arrived after the revocation (%d before, %d now)", n-atRevocation, atRevocation, n)
	}
	if n := stat(t, aggHTTP, "ferry_aggregator_streams_revoked_total"); n != 1 {
		t.Errorf("ferry_aggregator_streams_revoked_total = %d, want 1", n)
	}

	// The token is back: everything arrives, once.
	tlstest.WriteFile(t, tokensFile, []byte(allowed))
	harness.WaitFor(t, 30*time.Second, "every line after the token is back", func() bool { return delivered() == 500 })
	lines, docs := fileLines(t, sinkPath, 0)
	for seq := range 500 {
		if lines[seq] != 1 {
			t.Errorf("line %d arrived %d times, want once", seq, lines[seq])
		}
	}
	if docs != 500 {
		t.Errorf("%d documents for 500 lines", docs)
	}
	harness.StopAll(t, 20*time.Second, agent, agg)
}
