package ops

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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

// TestMetrics: /metrics serves the counters through the registry in the
// Prometheus text format, counters (_total) and gauges typed, beside the
// registry's runtime and process collectors; /stats the same values as
// plain lines.
func TestMetrics(t *testing.T) {
	stats := func() map[string]uint64 {
		return map[string]uint64{"ferry_b_total": 3, "ferry_a_bytes": 1 << 20, "ferry_c_total": 0}
	}
	h, err := StartHealth("127.0.0.1:0", Checks{Ready: func() error { return nil }, Registry: NewRegistry()}, stats, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	fams := scrape(t, h)
	for _, want := range []struct {
		name  string
		typ   dto.MetricType
		value float64
	}{
		{"ferry_a_bytes", dto.MetricType_GAUGE, 1 << 20},
		{"ferry_b_total", dto.MetricType_COUNTER, 3},
		{"ferry_c_total", dto.MetricType_COUNTER, 0},
	} {
		f := fams[want.name]
		if f == nil || f.GetType() != want.typ || len(f.Metric) != 1 || value(f.Metric[0]) != want.value {
			t.Errorf("%s = %v, want %v %v", want.name, f, want.typ, want.value)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if code, body := get(t, h, "/stats"); code != http.StatusOK || body != "ferry_a_bytes 1048576\nferry_b_total 3\nferry_c_total 0\n" {
		t.Fatalf("/stats = %d %q", code, body)
	}
}

// scrape parses the health server's /metrics by family name.
func scrape(t *testing.T, h *Health) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// value is a counter's or gauge's value.
func value(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestParseSeries: a key of the counter map splits into name and labels;
// a malformed one is an error.
func TestParseSeries(t *testing.T) {
	cases := []struct {
		in      string
		name    string
		labels  map[string]string
		wantErr bool
	}{
		{in: "ferry_x_total", name: "ferry_x_total"},
		{in: `ferry_x_total{a="1"}`, name: "ferry_x_total", labels: map[string]string{"a": "1"}},
		{in: `ferry_x_total{a="1",b="two words"}`, name: "ferry_x_total", labels: map[string]string{"a": "1", "b": "two words"}},
		{in: `ferry_x_total{a="1"`, wantErr: true},
		{in: `ferry_x_total{a}`, wantErr: true},
		{in: `ferry_x_total{a="1}`, wantErr: true},
	}
	for _, tc := range cases {
		name, labels, err := parseSeries(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseSeries(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if name != tc.name || !maps.Equal(map[string]string(labels), tc.labels) {
			t.Errorf("parseSeries(%q) = %s %v, want %s %v", tc.in, name, labels, tc.name, tc.labels)
		}
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

// TestMetricsLabelled: series of one metric with labels are one family
// with their labels; extra handlers are served.
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
	fams := scrape(t, h)
	n := fams["ferry_n_total"]
	if n == nil || n.GetType() != dto.MetricType_COUNTER || len(n.Metric) != 2 {
		t.Fatalf("ferry_n_total = %v, want a counter with 2 series", n)
	}
	got := map[string]float64{}
	for _, m := range n.Metric {
		var ls []string
		for _, l := range m.Label {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		got[strings.Join(ls, ",")] = value(m)
	}
	if want := map[string]float64{"receiver=a,result=sent": 2, "receiver=b,result=retry": 1}; !maps.Equal(got, want) {
		t.Errorf("ferry_n_total series %v, want %v", got, want)
	}
	if p := fams["ferry_p"]; p == nil || p.GetType() != dto.MetricType_GAUGE || value(p.Metric[0]) != 4 {
		t.Errorf("ferry_p = %v, want gauge 4", p)
	}
	if code, body := get(t, h, "/api/x"); code != http.StatusOK || body != "extra" {
		t.Fatalf("/api/x = %d %q", code, body)
	}
}
