package e2e

// Helpers of the Elasticsearch end-to-end tests (es_test.go): the shared
// Elasticsearch (FERRY_ES_URL, else started once by test/elasticsearch.sh),
// a private instance for tests that stop or kill it, a small HTTP client for
// counting and reading documents, and the configuration of an aggregator
// with the Elasticsearch sink and of an agent.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := stopSharedES(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// sharedES is the Elasticsearch most tests write to. It is started on the
// first use only, so tests without Elasticsearch never start it, and stopped
// by TestMain only if this process started it.
var sharedES struct {
	once    sync.Once
	url     string
	err     error
	started bool
}

// esScript returns a command running test/elasticsearch.sh with args and
// the extra environment env.
func esScript(env []string, args ...string) *exec.Cmd {
	script, err := filepath.Abs("../elasticsearch.sh")
	if err != nil {
		script = "../elasticsearch.sh"
	}
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// esURL returns the URL of the shared Elasticsearch: $FERRY_ES_URL (set by
// `make test`), else one started here with test/elasticsearch.sh.
func esURL(t *testing.T) string {
	t.Helper()
	sharedES.once.Do(func() {
		if u := os.Getenv("FERRY_ES_URL"); u != "" {
			sharedES.url = strings.TrimRight(u, "/")
			return
		}
		running := esScript(nil, "status").Run() == nil
		if out, err := esScript(nil, "start").CombinedOutput(); err != nil {
			sharedES.err = fmt.Errorf("FERRY_ES_URL is unset and elasticsearch.sh start failed: %v\n%s", err, out)
			return
		}
		sharedES.started = !running
		out, err := esScript(nil, "url").Output()
		if err != nil {
			sharedES.err = fmt.Errorf("elasticsearch.sh url: %v", err)
			return
		}
		sharedES.url = strings.TrimSpace(string(out))
	})
	if sharedES.err != nil {
		t.Fatal(sharedES.err)
	}
	return sharedES.url
}

func stopSharedES() error {
	if !sharedES.started {
		return nil
	}
	if out, err := esScript(nil, "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("stopping Elasticsearch: %v\n%s", err, out)
	}
	return nil
}

// privateES is an Elasticsearch of one test, on its own port and with its
// own state directory, so that stopping or killing it disturbs no other test
// or package (`make test` runs packages in parallel against the shared one).
type privateES struct {
	env []string
	url string
}

func startPrivateES(t *testing.T) *privateES {
	t.Helper()
	_, port, _ := net.SplitHostPort(freePort(t))
	p := &privateES{
		env: []string{"FERRY_ES_PORT=" + port, "FERRY_ES_STATE_DIR=" + t.TempDir()},
		url: "http://127.0.0.1:" + port,
	}
	start := time.Now()
	if out, err := p.script("start"); err != nil {
		t.Fatalf("starting a private Elasticsearch: %v\n%s", err, out)
	}
	t.Logf("private Elasticsearch at %s ready after %s", p.url, time.Since(start).Round(time.Second))
	t.Cleanup(func() {
		if pid, err := p.pid(); err == nil {
			_ = syscall.Kill(pid, syscall.SIGCONT) // a stopped JVM ignores SIGTERM
		}
		if out, err := p.script("stop"); err != nil {
			t.Errorf("stopping the private Elasticsearch: %v\n%s", err, out)
		}
	})
	return p
}

func (p *privateES) script(args ...string) ([]byte, error) {
	return esScript(p.env, args...).CombinedOutput()
}

// pid returns the pid of the Elasticsearch JVM.
func (p *privateES) pid() (int, error) {
	out, err := esScript(p.env, "pid").Output()
	if err != nil {
		return 0, fmt.Errorf("elasticsearch.sh pid: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}

// restart kills Elasticsearch with SIGKILL and starts it again with the same
// data directory; it returns once the cluster is yellow.
func (p *privateES) restart() error {
	if out, err := p.script("restart"); err != nil {
		return fmt.Errorf("elasticsearch.sh restart: %v\n%s", err, out)
	}
	return nil
}

// esClient is the little of the Elasticsearch API the tests need.
type esClient struct {
	t   *testing.T
	url string
	hc  *http.Client
}

func newESClient(t *testing.T, url string) *esClient {
	return &esClient{t: t, url: url, hc: &http.Client{Timeout: 60 * time.Second}}
}

// call sends a request with a JSON body (nil for none) and returns status
// and body.
func (c *esClient) call(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// must sends a request and decodes a 200 answer into out (if not nil).
func (c *esClient) must(method, path string, body, out any) {
	c.t.Helper()
	status, b, err := c.call(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if status != http.StatusOK {
		c.t.Fatalf("%s %s: HTTP %d: %s", method, path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
}

// count refreshes index and counts the documents matching query.
func (c *esClient) count(index string, query map[string]any) int {
	c.t.Helper()
	c.must(http.MethodPost, "/"+index+"/_refresh", nil, nil)
	var a struct {
		Count int `json:"count"`
	}
	c.must(http.MethodPost, "/"+index+"/_count", map[string]any{"query": query}, &a)
	return a.Count
}

func termQuery(field, value string) map[string]any {
	return map[string]any{"term": map[string]any{field: value}}
}

// nodeCount counts the documents of the agent node (host.name) in index.
func (c *esClient) nodeCount(index, node string) int {
	c.t.Helper()
	return c.count(index, termQuery("host.name", node))
}

// waitNodeCount polls until the node has want documents in logs-*; more
// than want fails at once (a duplicate).
func (c *esClient) waitNodeCount(node string, want int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := c.nodeCount("logs-*", node)
		if n == want {
			return
		}
		if n > want {
			c.t.Fatalf("node %s has %d documents in logs-*, more than the %d lines written", node, n, want)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s: node %s has %d of %d documents in logs-*", timeout, node, n, want)
		}
		time.Sleep(250 * time.Millisecond) // poll interval
	}
}

// esDoc is what the tests read back of a document.
type esDoc struct {
	Index  string `json:"_index"`
	ID     string `json:"_id"`
	Source struct {
		Message string `json:"message"`
		Event   struct {
			ID string `json:"id"`
		} `json:"event"`
	} `json:"_source"`
}

// nodeDocs reads every document of node in index with a scroll.
func (c *esClient) nodeDocs(index, node string) []esDoc {
	c.t.Helper()
	c.must(http.MethodPost, "/"+index+"/_refresh", nil, nil)
	type page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []esDoc `json:"hits"`
		} `json:"hits"`
	}
	var p page
	c.must(http.MethodPost, "/"+index+"/_search?scroll=1m", map[string]any{
		"size":    5000,
		"_source": []string{"message", "event.id"},
		"query":   termQuery("host.name", node),
		"sort":    []string{"_doc"},
	}, &p)
	var docs []esDoc
	ids := map[string]bool{}
	for len(p.Hits.Hits) > 0 {
		docs = append(docs, p.Hits.Hits...)
		ids[p.ScrollID] = true
		id := p.ScrollID
		p = page{}
		c.must(http.MethodPost, "/_search/scroll", map[string]any{"scroll": "1m", "scroll_id": id}, &p)
	}
	ids[p.ScrollID] = true
	for id := range ids {
		if id != "" {
			_, _, _ = c.call(http.MethodDelete, "/_search/scroll", map[string]any{"scroll_id": id})
		}
	}
	return docs
}

// checkLines checks that docs hold every line "file=F seq=S" written by
// podFile.write, for F < files and S < perFile, exactly once, each with a
// distinct event id that is also the document's _id.
func checkLines(t *testing.T, docs []esDoc, files, perFile int) {
	t.Helper()
	seen := make(map[[2]int]int, files*perFile)
	ids := make(map[string]bool, len(docs))
	bad := 0
	for _, d := range docs {
		m := lineRE.FindStringSubmatch(d.Source.Message)
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

// uniqueNode returns an agent node name (host.name) used by no earlier run:
// data streams cannot be deleted on the test distribution, so every test
// counts its own documents by node.
func uniqueNode(t *testing.T) string {
	return fmt.Sprintf("e2e-%s-%s", strings.ToLower(strings.TrimPrefix(t.Name(), "Test")),
		strconv.FormatInt(time.Now().UnixNano(), 36))
}

// nodeRoot makes the directory layout of one test: containers/, pods/,
// state/.
func nodeRoot(t *testing.T) string {
	root := t.TempDir()
	for _, d := range []string{"containers", "pods", "state"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// writeAll writes perFile lines into each of n new pod files and returns them.
func writeAll(t *testing.T, root string, n, perFile int) []*podFile {
	pods := make([]*podFile, n)
	for i := range pods {
		pods[i] = newPodFile(t, root, i)
		for s := 0; s < perFile; s++ {
			pods[i].write(t, i, s)
		}
	}
	return pods
}

// esSinkOpts are the aggregator's Elasticsearch sink settings a test sets.
type esSinkOpts struct {
	url                   string
	flushEvents           int    // 0: the default
	maxConcurrentRequests int    // 0: the default
	retryInitial          string // default 100ms
	retryMax              string // default 2s
}

// ferryProcs is an aggregator with the Elasticsearch sink and an agent
// tailing root/containers/*.log, shipping to it.
type ferryProcs struct {
	root, node, stateDir  string
	listen, aggHTTP, http string
	agg, agent            *proc
}

// startAggregator starts an aggregator with one Elasticsearch sink and
// waits until it answers on its health port.
func startAggregator(t *testing.T, root string, o esSinkOpts) (agg *proc, listen, httpAddr string) {
	t.Helper()
	listen, httpAddr = freePort(t), freePort(t)
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
	path := filepath.Join(root, "aggregator.yaml")
	writeFile(t, path, fmt.Sprintf(`
listen: %s
http: %s
sinks:
  - type: elasticsearch
    urls: ["%s"]
    flush_interval: 200ms
    retry_initial: %s
    retry_max: %s
%s`, listen, httpAddr, o.url, o.retryInitial, o.retryMax, extra))
	agg = startProc(t, root, "aggregator", "--config", path)
	waitFor(t, 30*time.Second, "the aggregator's /healthz", func() bool {
		_, err := httpGet(httpAddr, "/healthz")
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
	f.http = freePort(t)
	path := filepath.Join(root, "agent.yaml")
	writeFile(t, path, fmt.Sprintf(`
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
	f.agent = startProc(t, root, "agent", "--config", path)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", f.agent.logTail())
			t.Logf("aggregator log:\n%s", f.agg.logTail())
		}
	})
	return f
}

// stop stops agent and aggregator with SIGTERM; both must exit cleanly.
func (f *ferryProcs) stop(t *testing.T) {
	t.Helper()
	if err := f.agent.term(30 * time.Second); err != nil {
		t.Errorf("agent exit after SIGTERM: %v", err)
	}
	if err := f.agg.term(30 * time.Second); err != nil {
		t.Errorf("aggregator exit after SIGTERM: %v", err)
	}
}

// acked returns the agent's ferry_agent_events_acked_total.
func (f *ferryProcs) acked() (uint64, error) {
	return stat(f.http, "ferry_agent_events_acked_total")
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

var statsClient = &http.Client{Timeout: 5 * time.Second}

func httpGet(addr, path string) ([]byte, error) {
	res, err := statsClient.Get("http://" + addr + path)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d: %s", path, res.StatusCode, b)
	}
	return b, err
}

// stat returns one counter of a process's /stats.
func stat(addr, name string) (uint64, error) {
	b, err := httpGet(addr, "/stats")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == name {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /stats", name)
}

// positionsSum returns the sum of the offsets saved in the agent's
// positions.json (0 while there is none).
func positionsSum(stateDir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, "positions.json"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var f struct {
		Entries []struct {
			Offset int64 `json:"offset"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return 0, fmt.Errorf("positions.json: %w", err)
	}
	var sum int64
	for _, e := range f.Entries {
		sum += e.Offset
	}
	return sum, nil
}
