package ops

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// get fetches path from the health server and returns the status and body.
func get(t *testing.T, h *Health, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + h.Addr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestReadyz: /readyz answers 200 while ready returns nil and 503 with the
// reason otherwise, following ready from one request to the next; /healthz
// answers 200 either way.
func TestReadyz(t *testing.T) {
	var (
		mu     sync.Mutex
		reason error
	)
	ready := func() error {
		mu.Lock()
		defer mu.Unlock()
		return reason
	}
	stats := func() map[string]uint64 { return map[string]uint64{"ferry_test_total": 7} }
	h, err := StartHealth("127.0.0.1:0", Checks{Ready: ready}, stats, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())

	cases := []struct {
		name     string
		reason   error
		wantCode int
		wantBody string
	}{
		{"ready", nil, http.StatusOK, "ready\n"},
		{"buffer failed", errors.New("buffer es: wal: failed: fsync 0000000000000012.seg: input/output error"),
			http.StatusServiceUnavailable, "not ready: buffer es: wal: failed: fsync 0000000000000012.seg: input/output error\n"},
		{"not connected", errors.New("not connected to the aggregator"),
			http.StatusServiceUnavailable, "not ready: not connected to the aggregator\n"},
		{"ready again", nil, http.StatusOK, "ready\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			reason = tc.reason
			mu.Unlock()
			if code, body := get(t, h, "/readyz"); code != tc.wantCode || body != tc.wantBody {
				t.Fatalf("/readyz = %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
			if code, body := get(t, h, "/healthz"); code != http.StatusOK || body != "ok\n" {
				t.Fatalf("/healthz = %d %q", code, body)
			}
			if code, body := get(t, h, "/stats"); code != http.StatusOK || !strings.Contains(body, "ferry_test_total 7\n") {
				t.Fatalf("/stats = %d %q", code, body)
			}
		})
	}
}

// TestMetrics: /metrics serves the counters in the Prometheus text format,
// sorted, counters (_total) and gauges typed; /stats the same values as
// plain lines.
func TestMetrics(t *testing.T) {
	stats := func() map[string]uint64 {
		return map[string]uint64{"ferry_b_total": 3, "ferry_a_bytes": 1 << 20, "ferry_c_total": 0}
	}
	h, err := StartHealth("127.0.0.1:0", Checks{Ready: func() error { return nil }}, stats, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	want := "# TYPE ferry_a_bytes gauge\nferry_a_bytes 1048576\n" +
		"# TYPE ferry_b_total counter\nferry_b_total 3\n" +
		"# TYPE ferry_c_total counter\nferry_c_total 0\n"
	if code, body := get(t, h, "/metrics"); code != http.StatusOK || body != want {
		t.Fatalf("/metrics = %d\n%s\nwant\n%s", code, body, want)
	}
	if code, body := get(t, h, "/stats"); code != http.StatusOK || body != "ferry_a_bytes 1048576\nferry_b_total 3\nferry_c_total 0\n" {
		t.Fatalf("/stats = %d %q", code, body)
	}
}

// TestHealthz: /healthz answers 200 while Live returns nil and 503 with the
// reason otherwise.
func TestHealthz(t *testing.T) {
	var (
		mu     sync.Mutex
		reason error
	)
	live := func() error {
		mu.Lock()
		defer mu.Unlock()
		return reason
	}
	h, err := StartHealth("127.0.0.1:0", Checks{Live: live, Ready: func() error { return nil }}, func() map[string]uint64 { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	cases := []struct {
		reason   error
		wantCode int
		wantBody string
	}{
		{nil, http.StatusOK, "ok\n"},
		{errors.New("buffer es failed and holds nothing more to deliver"), http.StatusServiceUnavailable, "unhealthy: buffer es failed and holds nothing more to deliver\n"},
	}
	for _, tc := range cases {
		mu.Lock()
		reason = tc.reason
		mu.Unlock()
		if code, body := get(t, h, "/healthz"); code != tc.wantCode || body != tc.wantBody {
			t.Fatalf("/healthz = %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
		}
	}
}

// TestMetricsLabelled: series of one metric with labels share one TYPE
// line; extra handlers are served.
func TestMetricsLabelled(t *testing.T) {
	stats := func() map[string]uint64 {
		return map[string]uint64{`ferry_n_total{receiver="a",result="sent"}`: 2, `ferry_n_total{receiver="b",result="retry"}`: 1, "ferry_p": 4}
	}
	extra := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("extra")) })
	h, err := StartHealth("127.0.0.1:0", Checks{Ready: func() error { return nil }, Handlers: map[string]http.Handler{"/api/x": extra}}, stats, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	want := "# TYPE ferry_n_total counter\n" + `ferry_n_total{receiver="a",result="sent"} 2` + "\n" + `ferry_n_total{receiver="b",result="retry"} 1` + "\n" +
		"# TYPE ferry_p gauge\nferry_p 4\n"
	if code, body := get(t, h, "/metrics"); code != http.StatusOK || body != want {
		t.Fatalf("/metrics = %d\n%s\nwant\n%s", code, body, want)
	}
	if code, body := get(t, h, "/api/x"); code != http.StatusOK || body != "extra" {
		t.Fatalf("/api/x = %d %q", code, body)
	}
}
