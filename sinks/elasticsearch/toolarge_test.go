package elasticsearch

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// sizeLimitProxy answers 413 to every bulk request whose body is larger
// than limit, as Elasticsearch does past http.max_content_length, and
// forwards everything else.
func sizeLimitProxy(t *testing.T, limit int, refused *atomic.Int64) string {
	t.Helper()
	u, err := url.Parse(esURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/_bulk" {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if len(body) > limit {
				refused.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				io.WriteString(w, `{"error":{"type":"content_too_long_exception","reason":"request body is too large"},"status":413}`)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestTooLargeRequestIsSplit: a bulk request refused with 413 is sent again
// in halves until each fits; every event arrives once. A single document
// larger than the limit is refused for good (not retryable), and the others
// of its batch are delivered.
func TestTooLargeRequestIsSplit(t *testing.T) {
	var refused atomic.Int64
	cfg := testConfig()
	cfg.URLs = []string{sizeLimitProxy(t, 64<<10, &refused)}
	s := newSink(t, cfg)
	ns := uniqueNS(t)
	const n = 2000 // about 1.5 MiB of bulk body: one request, refused, split about five times
	checkResult(t, write(t, s, makeBatch(ns, 0, n)), n, 0)
	if got := count(t, "logs-kubernetes.container-"+ns); got != n {
		t.Fatalf("_count %d, want %d", got, n)
	}
	if refused.Load() == 0 {
		t.Fatal("no request was refused: the test did not exercise the split")
	}

	b := makeBatch(ns, n, 10)
	b.Events[3].Message = []byte(strings.Repeat("x", 100<<10))
	res := write(t, s, b)
	if res.Delivered != 9 || len(res.Failed) != 1 || res.Failed[0].Index != 3 || res.Failed[0].Retryable {
		t.Fatalf("result %+v: want 9 delivered and event 3 failed for good", res)
	}
	if !strings.Contains(res.Failed[0].Error(), "too large") {
		t.Errorf("failure %q does not say why", res.Failed[0].Error())
	}
	if got := count(t, "logs-kubernetes.container-"+ns); got != n+9 {
		t.Fatalf("_count %d, want %d", got, n+9)
	}
	t.Logf("%d requests refused with 413 on the way", refused.Load())
}
