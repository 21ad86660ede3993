package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
	"github.com/ferrylogs/ferry/test/harness"
)

// esURL is the real Elasticsearch the tests write to: FERRY_ES_URL, or one
// started by TestMain with test/elasticsearch.sh.
var esURL string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	u, err := harness.SharedESURL() // FERRY_ES_URL, else test/elasticsearch.sh's, started if need be
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	esURL = u
	defer func() {
		if err := harness.StopSharedES(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	code := m.Run()
	http.DefaultClient.CloseIdleConnections()
	if err := goleak.Find(); err != nil {
		fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
		return 1
	}
	return code
}

// ---- helpers ----

var nsSeq atomic.Int64

// uniqueNS returns a data stream namespace no other test or run uses: data
// streams cannot be deleted on the test distribution.
func uniqueNS(t testing.TB) string {
	name := strings.ToLower(strings.NewReplacer("/", "", "_", "", "-", "", "=", "").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("%s%s%d", name, strconv.FormatInt(time.Now().UnixNano(), 36), nsSeq.Add(1))
}

// makeBatch builds n container-log events numbered from first, in namespace ns.
func makeBatch(ns string, first, n int) *event.Batch {
	b := &event.Batch{Node: "node-a", Events: make([]*ferryv1.Event, n)}
	now := time.Now().UnixNano()
	for i := range n {
		off := int64(first+i) * 100
		ev := &ferryv1.Event{
			Id:           event.ID(nil, "node-a", "file-"+ns, off),
			TimeUnixNano: now + int64(i),
			Message:      []byte(fmt.Sprintf("GET /item/%d HTTP/1.1 200", first+i)),
			Stream:       ferryv1.StreamName_STREAM_STDOUT,
			Source:       &ferryv1.Source{Path: "/var/log/containers/web.log", Offset: off, Input: "containers"},
			Kubernetes:   &ferryv1.Kubernetes{Namespace: "shop", Pod: "web-1", Container: "web", PodUid: "uid-1"},
			Kind:         ferryv1.Kind_KIND_LOG,
		}
		event.SetField(ev, "data_stream.namespace", event.Str(ns))
		event.SetField(ev, "source.geo.location", event.Str("52.37,4.89"))
		event.SetField(ev, "http.response.status_code", event.Int(200))
		event.SetField(ev, "kubernetes.labels.app", event.Str("web"))
		b.Events[i] = ev
	}
	return b
}

func testConfig() Config {
	return Config{
		URLs:           []string{esURL},
		FlushInterval:  20 * time.Millisecond,
		RetryInitial:   5 * time.Millisecond,
		RetryMax:       100 * time.Millisecond,
		SetupTemplates: true,
	}
}

func newSink(t testing.TB, cfg Config) *Sink {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func write(t testing.TB, s *Sink, b *event.Batch) sinks.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := s.Write(ctx, b)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return res
}

// esDo sends a request straight to the test Elasticsearch and decodes the answer.
func esDo(t testing.TB, method, path, body string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(method, esURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		t.Fatalf("%s %s: HTTP %d: %s", method, path, res.StatusCode, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
	return out
}

func count(t testing.TB, index string) int {
	t.Helper()
	esDo(t, http.MethodPost, "/"+index+"/_refresh", "")
	return int(esDo(t, http.MethodGet, "/"+index+"/_count", "")["count"].(float64))
}

// dig follows keys into nested JSON objects.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func checkResult(t testing.TB, res sinks.Result, delivered, deadLettered int) {
	t.Helper()
	if res.Delivered != delivered || res.DeadLettered != deadLettered || !res.OK() {
		t.Fatalf("result: delivered %d dead-lettered %d failed %v; want %d, %d, none",
			res.Delivered, res.DeadLettered, res.Failed, delivered, deadLettered)
	}
}

// ---- (a) volume, data stream and mappings ----

func TestWriteManyIntoDataStream(t *testing.T) {
	s := newSink(t, testConfig())
	ns := uniqueNS(t)
	const total, per, writers = 20000, 1000, 4
	var wg sync.WaitGroup
	results := make([]sinks.Result, total/per)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total/per; i += writers {
				res, err := s.Write(context.Background(), makeBatch(ns, i*per, per))
				if err != nil {
					t.Errorf("Write %d: %v", i, err)
				}
				results[i] = res
			}
		}()
	}
	wg.Wait()
	delivered := 0
	for _, r := range results {
		if !r.OK() {
			t.Fatalf("failed items: %v", r.Failed)
		}
		delivered += r.Delivered
	}
	if delivered != total {
		t.Fatalf("delivered %d, want %d", delivered, total)
	}
	ds := "logs-kubernetes.container-" + ns
	if n := count(t, ds); n != total {
		t.Fatalf("_count %d, want %d", n, total)
	}
	mapping := esDo(t, http.MethodGet, "/"+ds+"/_mapping", "")
	if len(mapping) != 1 {
		t.Fatalf("want one backing index, got %v", mapping)
	}
	for index, m := range mapping {
		if !strings.HasPrefix(index, ".ds-"+ds+"-") {
			t.Errorf("backing index %q: %s is not a data stream", index, ds)
		}
		props := dig(m, "mappings", "properties")
		for path, want := range map[string]string{
			"source.geo.location":       "geo_point",
			"@timestamp":                "date_nanos",
			"event.ingested":            "date_nanos",
			"kubernetes.labels":         "flattened",
			"http.response.status_code": "long",
			"log.offset":                "long",
		} {
			keys := strings.Split(path, ".")
			var at []string
			for _, k := range keys {
				at = append(at, k, "properties")
			}
			at[len(at)-1] = "type"
			if got := dig(props, at...); got != want {
				t.Errorf("mapping of %s: %v, want %s", path, got, want)
			}
		}
	}
	// One document carries what AppendDocument wrote, nanoseconds included.
	hit := esDo(t, http.MethodGet, "/"+ds+"/_search?size=1&q=log.offset:500", "")
	src := dig(hit, "hits", "hits").([]any)[0].(map[string]any)["_source"]
	if got := dig(src, "data_stream", "namespace"); got != ns {
		t.Errorf("data_stream.namespace %v, want %s", got, ns)
	}
	if id := dig(hit, "hits", "hits").([]any)[0].(map[string]any)["_id"]; id != dig(src, "event", "id") {
		t.Errorf("_id %v != event.id %v", id, dig(src, "event", "id"))
	}
}

// ---- (b) re-sending is idempotent ----

func TestResendSameBatch(t *testing.T) {
	s := newSink(t, testConfig())
	ns := uniqueNS(t)
	b := makeBatch(ns, 0, 500)
	checkResult(t, write(t, s, b), 500, 0)
	checkResult(t, write(t, s, b), 500, 0) // all 409: already there
	if n := count(t, "logs-kubernetes.container-"+ns); n != 500 {
		t.Fatalf("_count %d after re-send, want 500", n)
	}
}

// ---- (c) mapping conflict goes to the dead-letter data stream ----

func TestMappingConflictDeadLettered(t *testing.T) {
	cfg := testConfig()
	ns := uniqueNS(t)
	cfg.DeadLetterDataStream = "logs-ferry.deadletter-" + ns
	s := newSink(t, cfg)

	checkResult(t, write(t, s, makeBatch(ns, 0, 10)), 10, 0)
	b := makeBatch(ns, 10, 10)
	bad := b.Events[4]
	event.SetField(bad, "http.response.status_code", event.Str("not-a-number"))
	checkResult(t, write(t, s, b), 9, 1)
	if n := count(t, "logs-kubernetes.container-"+ns); n != 19 {
		t.Fatalf("_count %d, want 19 (the bad one is not there)", n)
	}

	if n := count(t, cfg.DeadLetterDataStream); n != 1 {
		t.Fatalf("dead-letter _count %d, want 1", n)
	}
	id := event.IDString(bad.Id)
	// A term query in the body: an id may start with '-', which the query
	// string syntax of ?q= reads as an operator.
	hits := dig(esDo(t, http.MethodPost, "/"+cfg.DeadLetterDataStream+"/_search", `{"query":{"term":{"event.id":"`+id+`"}}}`), "hits", "hits").([]any)
	if len(hits) != 1 {
		t.Fatalf("dead letter of %s: %d hits", id, len(hits))
	}
	src := hits[0].(map[string]any)["_source"]
	if typ := dig(src, "error", "type"); typ != "document_parsing_exception" && typ != "mapper_parsing_exception" {
		t.Errorf("error.type %v", typ)
	}
	if reason, _ := dig(src, "error", "reason").(string); !strings.Contains(reason, "http.response.status_code") {
		t.Errorf("error.reason %q does not name the field", reason)
	}
	if got := dig(src, "ferry", "original_index"); got != "logs-kubernetes.container-"+ns {
		t.Errorf("ferry.original_index %v", got)
	}
	var orig map[string]any
	if err := json.Unmarshal([]byte(dig(src, "event", "original").(string)), &orig); err != nil {
		t.Fatalf("event.original is not the JSON document: %v", err)
	}
	if orig["http.response.status_code"] != "not-a-number" || dig(orig, "event", "id") != id {
		t.Errorf("event.original is not the refused document: %v", orig)
	}

	// A re-send dead-letters again without a second dead-letter document.
	checkResult(t, write(t, s, b), 9, 1)
	if n := count(t, cfg.DeadLetterDataStream); n != 1 {
		t.Fatalf("dead-letter _count %d after re-send, want 1", n)
	}
}

// ---- (d) 429s: only the rejected items are retried ----

func TestRetriesOnlyRejectedItems(t *testing.T) {
	p := newRejectingProxy(t, esURL, 1, 3)
	cfg := testConfig()
	cfg.URLs = []string{p.URL()}
	s := newSink(t, cfg)
	ns := uniqueNS(t)
	const n = 1000
	checkResult(t, write(t, s, makeBatch(ns, 0, n)), n, 0)
	if got := count(t, "logs-kubernetes.container-"+ns); got != n {
		t.Fatalf("_count %d, want %d (lost or duplicated)", got, n)
	}
	reqs := p.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d bulk requests, want 5 (whole 429, 3 partial 429s, the rest): %v", len(reqs), reqs)
	}
	if len(reqs[0].sent) != n || !sameIDs(reqs[1].sent, reqs[0].sent) {
		t.Errorf("after a whole-request 429 the same %d items must come again, got %d", n, len(reqs[1].sent))
	}
	for i := 1; i < len(reqs)-1; i++ {
		if len(reqs[i].rejected) == 0 || !sameIDs(reqs[i+1].sent, reqs[i].rejected) {
			t.Errorf("request %d carries %d items; want exactly the %d rejected by request %d",
				i+1, len(reqs[i+1].sent), len(reqs[i].rejected), i)
		}
	}
}

// Items Elasticsearch keeps refusing with 429 are reported as retryable
// failures when the context ends; the others are delivered; no error.
func TestItemRetriesEndWithContext(t *testing.T) {
	ns := uniqueNS(t)
	b := makeBatch(ns, 0, 100)
	p := newRejectingProxy(t, esURL, 0, 0)
	p.always = map[string]bool{}
	for i := 1; i < len(b.Events); i += 2 {
		p.always[event.IDString(b.Events[i].Id)] = true
	}
	cfg := testConfig()
	cfg.URLs = []string{p.URL()}
	s := newSink(t, cfg)
	if err := s.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The data stream is created (and its template checked) first, so the
	// deadline below covers the retries alone, however slow the machine.
	if res, err := s.Write(context.Background(), makeBatch(ns, 1000, 1)); err != nil || !res.OK() {
		t.Fatalf("first write: %v %+v", err, res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := s.Write(ctx, b)
	if err != nil {
		t.Fatalf("Write: %v (every item had an answer: want per-item failures)", err)
	}
	if res.Delivered != 50 || len(res.Failed) != 50 || res.OK() {
		t.Fatalf("delivered %d, failed %d; want 50, 50", res.Delivered, len(res.Failed))
	}
	for _, f := range res.Failed {
		if !f.Retryable || f.Index%2 != 1 || !strings.Contains(f.Err.Error(), "429") {
			t.Errorf("failure %v (retryable %v), want a retryable 429 of an odd event", f, f.Retryable)
		}
	}
}

// Close ends the Writes still waiting, with an error, and is safe twice.
func TestCloseUnblocksWrites(t *testing.T) {
	for _, setup := range []bool{false, true} {
		t.Run(fmt.Sprintf("setup=%v", setup), func(t *testing.T) {
			cfg := testConfig()
			cfg.URLs = []string{"http://127.0.0.1:1"}
			cfg.SetupTemplates = setup
			s, err := New(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := s.Write(context.Background(), makeBatch(uniqueNS(t), 0, 3))
				errc <- err
			}()
			time.Sleep(100 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := s.Close(ctx); err == nil {
				t.Error("Close reported success with a Write in progress")
			}
			if err := <-errc; !errors.Is(err, errClosed) {
				t.Errorf("pending Write: %v, want errClosed", err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := s.Write(context.Background(), makeBatch("x", 0, 1)); !errors.Is(err, errClosed) {
				t.Errorf("Write after Close: %v", err)
			}
		})
	}
}

// ---- (e) Elasticsearch unreachable ----

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, setup := range []bool{true, false} {
		t.Run(fmt.Sprintf("setup=%v", setup), func(t *testing.T) {
			cfg := testConfig()
			cfg.URLs = []string{"http://" + addr}
			cfg.SetupTemplates = setup
			s := newSink(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			res, err := s.Write(ctx, makeBatch(uniqueNS(t), 0, 10))
			if err == nil {
				t.Fatalf("Write succeeded against a closed port: %+v", res)
			}
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connect") {
				t.Errorf("error %q should say the deadline passed and why (connect)", err)
			}
			if res.Delivered != 0 || res.DeadLettered != 0 {
				t.Errorf("counted delivered: %+v", res)
			}
		})
	}
}

// ---- (f) backoff bounds ----

func TestBackoffBounds(t *testing.T) {
	const initial, maxWait = 100 * time.Millisecond, 5 * time.Second
	for attempt := range 70 {
		ceiling := time.Duration(math.Min(float64(maxWait), float64(initial)*math.Pow(2, float64(attempt+1))))
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 2000 {
			d := backoff(attempt, initial, maxWait)
			if d < initial || d > ceiling {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, initial, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter: the draws cover most of the range.
		if spread := ceiling - initial; hi-lo < spread*8/10 {
			t.Errorf("attempt %d: draws in [%v, %v], want most of [%v, %v]", attempt, lo, hi, initial, ceiling)
		}
	}
	if d := backoff(3, time.Second, time.Second); d != time.Second {
		t.Errorf("initial == max: %v", d)
	}
	if d := backoff(0, 0, time.Second); d != 0 {
		t.Errorf("initial 0: %v", d)
	}
}

// ---- setup ----

func TestSetupIdempotent(t *testing.T) {
	cfg := testConfig()
	cfg.Retention = 7 * 24 * time.Hour
	s := newSink(t, cfg)
	for i := range 2 {
		if err := s.Setup(context.Background()); err != nil {
			t.Fatalf("Setup #%d: %v", i+1, err)
		}
	}
	tmpl := esDo(t, http.MethodGet, "/_index_template/ferry-logs", "")
	got := dig(tmpl["index_templates"].([]any)[0], "index_template")
	if prio := dig(got, "priority"); prio != float64(templatePriority) {
		t.Errorf("priority %v", prio)
	}
	for _, p := range dig(got, "index_patterns").([]any) {
		if p == "logs-*" || p == "logs-*-*" {
			t.Errorf("ferry-logs claims %v", p)
		}
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if v, err := s.Version(context.Background()); err != nil || !strings.HasPrefix(v, "8.") {
		t.Errorf("Version: %q, %v", v, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "urls"},
		{Config{URLs: []string{"es:9200"}}, "urls[0]"},
		{Config{URLs: []string{"http://u:secret@es:9200", "ftp://x"}}, "urls[1]"},
		{Config{URLs: []string{"http://es"}, RetryInitial: time.Second, RetryMax: time.Millisecond}, "retry_max"},
		{Config{URLs: []string{"http://es"}, DeadLetterDataStream: "ferry-dlq"}, "dead_letter_data_stream"},
		{Config{URLs: []string{"http://es"}, Retention: time.Hour}, "retention"},
		{Config{URLs: []string{"http://es"}, DeadLetterDataStream: "logs-dlq-default"}, "none of Ferry's index templates"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one naming %s", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks a password: %v", err)
		}
	}
	if err := (Config{URLs: []string{"https://es:9200"}}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

// A cluster that refuses "lifecycle" in index templates still gets its
// templates, and the missing retention is logged once.
func TestSetupWithoutLifecycleSupport(t *testing.T) {
	var puts []string
	var mu sync.Mutex
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPut && strings.Contains(string(body), `"lifecycle"`) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"type":"x_content_parse_exception","reason":"[1:2] [index_template] unknown field [lifecycle]"},"status":400}`)
			return
		}
		if r.Method == http.MethodPut {
			mu.Lock()
			puts = append(puts, r.URL.Path)
			mu.Unlock()
		}
		io.WriteString(w, `{"acknowledged":true}`)
	}))
	defer fake.Close()
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	cfg := Config{URLs: []string{fake.URL}, Retention: 30 * 24 * time.Hour}
	s, err := New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	for range 2 {
		if err := s.Setup(context.Background()); err != nil {
			t.Fatalf("Setup: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "retention is NOT enforced"); n != 1 {
		t.Errorf("%d retention lines, want 1:\n%s", n, logs.String())
	}
	if len(puts) != 14 {
		t.Errorf("accepted PUTs %v, want 7 templates twice", puts)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
