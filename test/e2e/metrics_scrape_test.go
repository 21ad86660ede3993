package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ferrylogs/ferry/test/harness"
)

// TestMetricsScrape (issue 16, self-metrics) ships a file through the real
// agent and aggregator (an NDJSON sink behind a disk buffer), scrapes both
// /metrics and parses them with expfmt: the counters match what was
// shipped (agent events acked == lines written == aggregator events acked
// == documents in the sink), the latency histograms hold one observation
// per batch acked (agent) and per event (aggregator), the file lag falls
// to 0 once everything is acknowledged, the buffer gauges are there, the
// Go runtime and process collectors are served, and every metric name
// starts with ferry_, go_ or process_.
func TestMetricsScrape(t *testing.T) {
	const lines = 300
	root := t.TempDir()
	var text strings.Builder
	for i := range lines {
		fmt.Fprintf(&text, "scrape line %d\n", i)
	}
	harness.WriteFile(t, filepath.Join(root, "app.log"), text.String())

	listen, aggHTTP, agentHTTP := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	out := filepath.Join(root, "out.ndjson")
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), fmt.Sprintf(`
listen: %s
http: %s
sinks: [ { name: archive, type: file, path: %s, buffer: disk } ]
buffer: { dir: %s, max_bytes: 64MiB }
`, listen, aggHTTP, out, filepath.Join(root, "buffer")))
	harness.WriteFile(t, filepath.Join(root, "agent.yaml"), fmt.Sprintf(`
node: %s
state_dir: %s
http: %s
aggregator:
  address: %s
  batch_max_events: 50
  batch_timeout: 100ms
  backoff_initial: 50ms
  backoff_max: 1s
inputs:
  - type: file
    paths: ["%s"]
`, harness.UniqueNode(t, "scrape"), filepath.Join(root, "state"), agentHTTP, listen, filepath.Join(root, "app.log")))
	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	harness.WaitHealthy(t, "aggregator", aggHTTP)
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent, agg)

	harness.WaitFor(t, time.Minute, "every line acknowledged and in the sink", func() bool {
		n, err := harness.AgentAcked(agentHTTP)
		return err == nil && n == lines && len(harness.ReadSink(t, out)) == lines
	})
	// The offsets advance after the acks: poll for the lag to settle.
	var am map[string]*dto.MetricFamily
	harness.WaitFor(t, 30*time.Second, "the agent's file lag at 0", func() bool {
		am = scrapeMetrics(t, agentHTTP)
		return gaugeValue(am, "ferry_agent_file_lag_bytes", nil) == 0
	})
	gm := scrapeMetrics(t, aggHTTP)

	checks := []struct {
		fams   map[string]*dto.MetricFamily
		name   string
		labels map[string]string
		want   float64
	}{
		{am, "ferry_agent_events_acked_total", nil, lines},
		{am, "ferry_agent_files_tailed", nil, 1},
		{am, "ferry_agent_batches_in_flight", nil, 0},
		{gm, "ferry_aggregator_events_acked_total", nil, lines},
		{gm, "ferry_aggregator_buffer_capacity_bytes", map[string]string{"sink": "archive"}, 64 << 20},
	}
	for _, c := range checks {
		if got := gaugeValue(c.fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if f := am["ferry_agent_events_acked_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("ferry_agent_events_acked_total is not a counter: %v", f)
	}
	if f := gm["ferry_aggregator_buffer_bytes"]; f == nil || f.GetType() != dto.MetricType_GAUGE {
		t.Errorf("ferry_aggregator_buffer_bytes is not a gauge: %v", f)
	}
	batches := gaugeValue(am, "ferry_agent_batches_acked_total", nil)
	if n := histCount(am, "ferry_agent_ack_latency_seconds"); batches < lines/50 || n != uint64(batches) {
		t.Errorf("ferry_agent_ack_latency_seconds has %d observations, want one per batch acked (%v, at least %d)", n, batches, lines/50)
	}
	if n := histCount(gm, "ferry_aggregator_event_latency_seconds"); n != lines {
		t.Errorf("ferry_aggregator_event_latency_seconds has %d observations, want %d (one per event)", n, lines)
	}
	for who, fams := range map[string]map[string]*dto.MetricFamily{"agent": am, "aggregator": gm} {
		for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
			if fams[name] == nil {
				t.Errorf("%s's /metrics lacks %s", who, name)
			}
		}
		for name := range fams {
			if !strings.HasPrefix(name, "ferry_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
				t.Errorf("%s's /metrics serves %s: not ferry_, go_ or process_", who, name)
			}
		}
	}
	harness.StopAll(t, 30*time.Second, agent, agg)
}

// scrapeMetrics fetches the /metrics of the process with the http address
// addr and parses it, by family name.
func scrapeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	b, err := harness.HTTPGet(addr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse %s/metrics: %v\n%s", addr, err, b)
	}
	return fams
}

// gaugeValue is the value of the counter or gauge name with exactly the
// labels given (none: the series without labels); -1 if there is none.
func gaugeValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.Label {
			match = match && labels[l.GetName()] == l.GetValue()
		}
		if !match {
			continue
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	return -1
}

// histCount is the number of observations of the histogram name (0 if
// there is none).
func histCount(fams map[string]*dto.MetricFamily, name string) uint64 {
	f := fams[name]
	if f == nil || len(f.Metric) != 1 || f.Metric[0].Histogram == nil {
		return 0
	}
	return f.Metric[0].Histogram.GetSampleCount()
}
