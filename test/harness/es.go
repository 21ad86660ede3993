package harness

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

// esScriptPath finds test/elasticsearch.sh above the working directory (a
// test runs in its package's directory).
func esScriptPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "test", "elasticsearch.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("test/elasticsearch.sh not found above the working directory")
		}
		dir = parent
	}
}

// esScript runs test/elasticsearch.sh with args and the extra environment
// env and returns its combined output.
func esScript(env []string, args ...string) ([]byte, error) {
	cmd, err := esCommand(env, args...)
	if err != nil {
		return nil, err
	}
	return cmd.CombinedOutput()
}

func esCommand(env []string, args ...string) (*exec.Cmd, error) {
	script, err := esScriptPath()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd, nil
}

// sharedES is the Elasticsearch most tests write to: $FERRY_ES_URL, else
// test/elasticsearch.sh's default instance, started on the first use only
// (tests without Elasticsearch never start it).
//
// `go test ./...` runs packages in parallel, each its own process, and
// several of them use that instance. Each holds a shared flock on the
// state directory's "users" file for as long as it may use it; the last
// one to let go (it gets the lock exclusively) stops the instance, but
// only one that a test process started (the "started-by-tests" file holds
// its pid), never one a developer or `make test` started. So no package
// stops it under another, and none leaves it running: one left behind
// idles at a few percent of a core and skews every benchmark run later.
var sharedES struct {
	once  sync.Once
	url   string
	err   error
	users *os.File // holds the shared lock; nil: none held
}

// ESURL returns the URL of the shared Elasticsearch (see sharedES),
// failing the test if it cannot be started. A package that uses it calls
// StopSharedES at the end (harness.Main does).
func ESURL(tb testing.TB) string {
	tb.Helper()
	u, err := SharedESURL()
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// SharedESURL is ESURL for a TestMain.
func SharedESURL() (string, error) {
	sharedES.once.Do(func() {
		sharedES.url, sharedES.err = useSharedES()
	})
	return sharedES.url, sharedES.err
}

func esStateDir() string {
	if d := os.Getenv("FERRY_ES_STATE_DIR"); d != "" {
		return d
	}
	return "/tmp/ferry-es" // test/elasticsearch.sh's default
}

const startedByTests = "started-by-tests"

func useSharedES() (string, error) {
	if u := os.Getenv("FERRY_ES_URL"); u != "" {
		return strings.TrimRight(u, "/"), nil
	}
	dir := esStateDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("shared Elasticsearch: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "users"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("shared Elasticsearch: %w", err)
	}
	// Blocks while a last user stops it; it is started again below.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return "", fmt.Errorf("shared Elasticsearch: lock %s: %w", f.Name(), err)
	}
	sharedES.users = f
	_, statusErr := esScript(nil, "status")
	if out, err := esScript(nil, "start"); err != nil {
		return "", fmt.Errorf("FERRY_ES_URL is unset and elasticsearch.sh start failed: %v\n%s", err, out)
	}
	if statusErr != nil {
		// Started here, or by another test process at the same moment:
		// the last user stops it.
		pid, err := esPID(nil)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, startedByTests), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return "", fmt.Errorf("shared Elasticsearch: %w", err)
		}
	}
	cmd, err := esCommand(nil, "url")
	if err != nil {
		return "", err
	}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("elasticsearch.sh url: %v", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// StopSharedES says this process is done with the shared Elasticsearch,
// and stops it if this process is its last user and a test process
// started it (see sharedES).
func StopSharedES() error {
	f := sharedES.users
	if f == nil {
		return nil
	}
	sharedES.users = nil
	defer f.Close() // releases any lock still held
	fd := int(f.Fd())
	if err := syscall.Flock(fd, syscall.LOCK_UN); err != nil {
		return fmt.Errorf("shared Elasticsearch: unlock: %w", err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil // another test process still uses it; the last one stops it
	}
	marker := filepath.Join(esStateDir(), startedByTests)
	b, err := os.ReadFile(marker)
	if err != nil {
		return nil // not started by a test process
	}
	if pid, err := esPID(nil); err != nil || strconv.Itoa(pid) != strings.TrimSpace(string(b)) {
		_ = os.Remove(marker) // a stale mark: this instance was started by someone else
		return nil
	}
	if out, err := esScript(nil, "stop"); err != nil {
		return fmt.Errorf("stopping Elasticsearch: %v\n%s", err, out)
	}
	return os.Remove(marker)
}

// esPID returns the pid of the instance of test/elasticsearch.sh with the
// extra environment env.
func esPID(env []string) (int, error) {
	cmd, err := esCommand(env, "pid")
	if err != nil {
		return 0, err
	}
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("elasticsearch.sh pid: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}

// PrivateES is an Elasticsearch of one test, on its own port and with its
// own state directory (FERRY_ES_STATE_DIR), so that stopping or killing it
// disturbs no other test or package (`make test` runs packages in parallel
// against the shared one).
type PrivateES struct {
	URL string
	env []string
}

// StartPrivateES starts a private Elasticsearch and returns once it is
// yellow; it is stopped (continued first, if stopped) when the test ends.
func StartPrivateES(tb testing.TB) *PrivateES {
	tb.Helper()
	_, port, _ := net.SplitHostPort(FreePort(tb))
	p := &PrivateES{
		env: []string{"FERRY_ES_PORT=" + port, "FERRY_ES_STATE_DIR=" + tb.TempDir()},
		URL: "http://127.0.0.1:" + port,
	}
	start := time.Now()
	if out, err := esScript(p.env, "start"); err != nil {
		tb.Fatalf("starting a private Elasticsearch: %v\n%s", err, out)
	}
	tb.Logf("private Elasticsearch at %s ready after %s", p.URL, time.Since(start).Round(time.Second))
	tb.Cleanup(func() {
		if pid, err := p.PID(); err == nil {
			_ = syscall.Kill(pid, syscall.SIGCONT) // a stopped JVM ignores SIGTERM
		}
		if out, err := esScript(p.env, "stop"); err != nil {
			tb.Errorf("stopping the private Elasticsearch: %v\n%s", err, out)
		}
	})
	return p
}

// PID returns the pid of the Elasticsearch JVM.
func (p *PrivateES) PID() (int, error) { return esPID(p.env) }

// Signal sends sig (SIGSTOP, SIGCONT) to the Elasticsearch JVM and returns
// its pid.
func (p *PrivateES) Signal(sig syscall.Signal) (int, error) {
	pid, err := p.PID()
	if err != nil {
		return 0, err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return pid, fmt.Errorf("%v to Elasticsearch (pid %d): %w", sig, pid, err)
	}
	return pid, nil
}

// Restart kills Elasticsearch with SIGKILL and starts it again with the
// same data directory; it returns once the cluster is yellow.
func (p *PrivateES) Restart() error {
	if out, err := esScript(p.env, "restart"); err != nil {
		return fmt.Errorf("elasticsearch.sh restart: %v\n%s", err, out)
	}
	return nil
}

// ESClient is the little of the Elasticsearch API the tests need. Its
// methods fail the test on errors; Call returns them.
type ESClient struct {
	tb  testing.TB
	URL string
	hc  *http.Client
}

// NewESClient returns a client of the Elasticsearch at url.
func NewESClient(tb testing.TB, url string) *ESClient {
	return &ESClient{tb: tb, URL: url, hc: &http.Client{Timeout: 60 * time.Second}}
}

// Call sends a request with a JSON body (nil for none) and returns status
// and body.
func (c *ESClient) Call(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.URL+path, rd)
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

// TryMust sends a request and decodes a 200 answer into out (if not nil).
func (c *ESClient) TryMust(method, path string, body, out any) error {
	status, b, err := c.Call(method, path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %v", method, path, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return nil
}

// Must is TryMust failing the test on an error.
func (c *ESClient) Must(method, path string, body, out any) {
	c.tb.Helper()
	if err := c.TryMust(method, path, body, out); err != nil {
		c.tb.Fatal(err)
	}
}

// TryCount refreshes index and counts the documents matching query.
func (c *ESClient) TryCount(index string, query map[string]any) (int, error) {
	if err := c.TryMust(http.MethodPost, "/"+index+"/_refresh", nil, nil); err != nil {
		return 0, err
	}
	var a struct {
		Count int `json:"count"`
	}
	err := c.TryMust(http.MethodPost, "/"+index+"/_count", map[string]any{"query": query}, &a)
	return a.Count, err
}

// Count is TryCount failing the test on an error.
func (c *ESClient) Count(index string, query map[string]any) int {
	c.tb.Helper()
	n, err := c.TryCount(index, query)
	if err != nil {
		c.tb.Fatal(err)
	}
	return n
}

// TermQuery is {"term": {field: value}}.
func TermQuery(field, value string) map[string]any {
	return map[string]any{"term": map[string]any{field: value}}
}

// NodeCount counts the documents of the agent node (host.name) in index.
func (c *ESClient) NodeCount(index, node string) int {
	c.tb.Helper()
	return c.Count(index, TermQuery("host.name", node))
}

// WaitNodeCount polls until the node has want documents in logs-*; more
// than want fails at once (a duplicate).
func (c *ESClient) WaitNodeCount(node string, want int, timeout time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := c.NodeCount("logs-*", node)
		if n == want {
			return
		}
		if n > want {
			c.tb.Fatalf("node %s has %d documents in logs-*, more than the %d lines written", node, n, want)
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("timed out after %s: node %s has %d of %d documents in logs-*", timeout, node, n, want)
		}
		time.Sleep(250 * time.Millisecond) // poll interval
	}
}

// ESDoc is what the tests read back of a document.
type ESDoc struct {
	Index  string `json:"_index"`
	ID     string `json:"_id"`
	Source struct {
		Message string `json:"message"`
		Event   struct {
			ID string `json:"id"`
		} `json:"event"`
	} `json:"_source"`
}

// NodeDocs reads every document of node (host.name) in index with a scroll.
func (c *ESClient) NodeDocs(index, node string) []ESDoc {
	c.tb.Helper()
	c.Must(http.MethodPost, "/"+index+"/_refresh", nil, nil)
	type page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []ESDoc `json:"hits"`
		} `json:"hits"`
	}
	var p page
	c.Must(http.MethodPost, "/"+index+"/_search?scroll=1m", map[string]any{
		"size":    5000,
		"_source": []string{"message", "event.id"},
		"query":   TermQuery("host.name", node),
		"sort":    []string{"_doc"},
	}, &p)
	var docs []ESDoc
	ids := map[string]bool{}
	for len(p.Hits.Hits) > 0 {
		docs = append(docs, p.Hits.Hits...)
		ids[p.ScrollID] = true
		id := p.ScrollID
		p = page{}
		c.Must(http.MethodPost, "/_search/scroll", map[string]any{"scroll": "1m", "scroll_id": id}, &p)
	}
	ids[p.ScrollID] = true
	for id := range ids {
		if id != "" {
			_, _, _ = c.Call(http.MethodDelete, "/_search/scroll", map[string]any{"scroll_id": id})
		}
	}
	return docs
}
