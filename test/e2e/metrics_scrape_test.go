package e2e

import (
	"fmt"
	"net"
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
	// One agent connected: one ingest stream, on both sides.
	for _, c := range []struct {
		fams map[string]*dto.MetricFamily
		name string
	}{{gm, "ferry_aggregator_streams_open"}, {gm, "ferry_aggregator_streams_total"}, {am, "ferry_agent_streams_open"}} {
		if got := gaugeValue(c.fams, c.name, nil); got != 1 {
			t.Errorf("%s = %v with one agent connected once, want 1", c.name, got)
		}
	}
	// A clean run: every error and drop series is there, at 0.
	for who, fams := range map[string]map[string]*dto.MetricFamily{"agent": am, "aggregator": gm} {
		for _, name := range []string{"ferry_errors_total", "ferry_" + who + "_events_dropped_total"} {
			f := fams[name]
			if f == nil || f.GetType() != dto.MetricType_COUNTER || len(f.Metric) < 2 {
				t.Errorf("%s's %s = %v, want a counter with its closed set of series", who, name, f)
				continue
			}
			for _, m := range f.Metric {
				if v := m.Counter.GetValue(); v != 0 {
					t.Errorf("%s's %s%v = %v in a clean run, want 0", who, name, labelMap(m), v)
				}
			}
		}
		checkDropLabels(t, who, fams)
	}
	checkExposition(t, map[string]map[string]*dto.MetricFamily{"agent": am, "aggregator": gm})
	harness.StopAll(t, 30*time.Second, agent, agg)
}

// checkExposition: both binaries serve the Go runtime and process
// collectors, only ferry_, go_ and process_ names, and a HELP text of its
// own (not the generic fallback of ops) for every ferry_ family.
func checkExposition(t *testing.T, byWho map[string]map[string]*dto.MetricFamily) {
	t.Helper()
	for who, fams := range byWho {
		for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
			if fams[name] == nil {
				t.Errorf("%s's /metrics lacks %s", who, name)
			}
		}
		for name, f := range fams {
			if !strings.HasPrefix(name, "ferry_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
				t.Errorf("%s's /metrics serves %s: not ferry_, go_ or process_", who, name)
			}
			if strings.HasPrefix(name, "ferry_") && (strings.Contains(f.GetHelp(), "see the README's metric list") || len(f.GetHelp()) < 15) {
				t.Errorf("%s's %s has a generic HELP %q: add it to ops/metrichelp.go", who, name, f.GetHelp())
			}
		}
	}
}

// checkDropLabels: every series of a binary's events_dropped family has a
// reason and intentional="true" or "false".
func checkDropLabels(t *testing.T, who string, fams map[string]*dto.MetricFamily) {
	t.Helper()
	f := fams["ferry_"+who+"_events_dropped_total"]
	if f == nil {
		t.Errorf("%s serves no ferry_%s_events_dropped_total", who, who)
		return
	}
	for _, m := range f.Metric {
		l := labelMap(m)
		if len(l) != 2 || l["reason"] == "" || (l["intentional"] != "true" && l["intentional"] != "false") {
			t.Errorf("%s's drop series %v: want labels reason and intentional=true|false", who, l)
		}
	}
}

// labelMap returns a series' labels.
func labelMap(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.Label {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// TestMetricsDropsAndStreams (issue 16, self-metrics) drops syslog
// messages on purpose and connects two agents, then scrapes all three
// processes and parses their /metrics with expfmt. An agent with a UDP
// syslog input and the smallest spool (4 MiB) starts while no aggregator
// runs; datagrams are sent until its spool is full and then more, which it
// must drop. Then the aggregator and a second agent (tailing a file) start.
// Once everything received is acknowledged: the syslog agent's
// ferry_agent_events_dropped_total{reason="syslog_overflow",
// intentional="false"} equals its dropped messages, is above 0, and with
// the messages received makes no more than were sent; its
// ferry_errors_total{stage="syslog",reason="spool_full"} is above 0; every
// other drop and error series of the three is 0; the aggregator acknowledged
// what the two agents had acknowledged; and ferry_aggregator_streams_open
// is 2 with both agents connected, then 1 once the file agent stopped.
func TestMetricsDropsAndStreams(t *testing.T) {
	const lines = 200
	root := t.TempDir()
	listen, aggHTTP := harness.FreePort(t), harness.FreePort(t)
	sysHTTP, fileHTTP, udp := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	var text strings.Builder
	for i := range lines {
		fmt.Fprintf(&text, "streams line %d\n", i)
	}
	harness.WriteFile(t, filepath.Join(root, "app.log"), text.String())
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), fmt.Sprintf(`
listen: %s
http: %s
sinks: [ { name: archive, type: file, path: %s } ]
`, listen, aggHTTP, filepath.Join(root, "out.ndjson")))
	agentYAML := func(name, http, inputs string) string {
		return fmt.Sprintf(`
node: %s
state_dir: %s
http: %s
aggregator:
  address: %s
  batch_max_events: 100
  batch_timeout: 100ms
  backoff_initial: 50ms
  backoff_max: 500ms
inputs:
%s`, harness.UniqueNode(t, name), filepath.Join(root, name+"-state"), http, listen, inputs)
	}
	harness.WriteFile(t, filepath.Join(root, "syslog-agent.yaml"), agentYAML("metrics-syslog", sysHTTP,
		fmt.Sprintf("  - {name: udp, type: syslog, listen: \"udp://%s\", spool_max_bytes: 4MiB}\n", udp)))
	harness.WriteFile(t, filepath.Join(root, "file-agent.yaml"), agentYAML("metrics-file", fileHTTP,
		fmt.Sprintf("  - {type: file, paths: [%q]}\n", filepath.Join(root, "app.log"))))

	sysAgent := harness.StartProcLog(t, filepath.Join(root, "syslog-agent.log"), "agent", "--config", filepath.Join(root, "syslog-agent.yaml"))
	harness.LogTailsOnFailure(t, sysAgent)
	harness.WaitHealthy(t, "syslog agent", sysHTTP)
	conn, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pad := strings.Repeat("u", 1000)
	sent := 0
	send := func(n int) {
		for range n {
			if _, err := fmt.Fprintf(conn, "<14>metrics drop test %d %s", sent, pad); err != nil {
				t.Fatalf("send datagram %d: %v", sent, err)
			}
			sent++
			if sent%64 == 0 {
				time.Sleep(time.Millisecond) // let the input read what is in the socket
			}
		}
	}
	// No aggregator: nothing is acknowledged and the spool fills up.
	for stat(t, sysHTTP, "ferry_agent_syslog_spool_full_total") == 0 {
		if sent > 100000 {
			t.Fatalf("spool not full after %d datagrams", sent)
		}
		send(100)
	}
	// The spool is full and stays full: once its in-memory queue is full
	// too, the input drops what it cannot queue.
	for stat(t, sysHTTP, "ferry_agent_syslog_dropped_total") < 500 {
		if sent > 200000 {
			t.Fatalf("fewer than 500 datagrams dropped after %d sent", sent)
		}
		send(500)
	}

	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	fileAgent := harness.StartProcLog(t, filepath.Join(root, "file-agent.log"), "agent", "--config", filepath.Join(root, "file-agent.yaml"))
	harness.LogTailsOnFailure(t, agg, fileAgent)
	var received uint64
	harness.WaitFor(t, 2*time.Minute, "both agents' events acknowledged", func() bool {
		received = stat(t, sysHTTP, "ferry_agent_syslog_received_total")
		sysAcked, err1 := harness.AgentAcked(sysHTTP)
		fileAcked, err2 := harness.AgentAcked(fileHTTP)
		return err1 == nil && err2 == nil && fileAcked == lines && sysAcked == received
	})
	sm, fm, gm := scrapeMetrics(t, sysHTTP), scrapeMetrics(t, fileHTTP), scrapeMetrics(t, aggHTTP)

	dropped := gaugeValue(sm, "ferry_agent_syslog_dropped_total", nil)
	t.Logf("datagrams sent %d, received %d, dropped %v; spool full %v times", sent, received, dropped, gaugeValue(sm, "ferry_agent_syslog_spool_full_total", nil))
	overflow := map[string]string{"reason": "syslog_overflow", "intentional": "false"}
	if got := gaugeValue(sm, "ferry_agent_events_dropped_total", overflow); got != dropped || got < 500 {
		t.Errorf("ferry_agent_events_dropped_total%v = %v, want ferry_agent_syslog_dropped_total (%v), at least 500", overflow, got, dropped)
	}
	if float64(received)+dropped > float64(sent) {
		t.Errorf("received %d + dropped %v > sent %d", received, dropped, sent)
	}
	spoolFull := map[string]string{"stage": "syslog", "reason": "spool_full"}
	if got := gaugeValue(sm, "ferry_errors_total", spoolFull); got <= 0 || got != gaugeValue(sm, "ferry_agent_syslog_spool_full_total", nil) {
		t.Errorf("ferry_errors_total%v = %v, want ferry_agent_syslog_spool_full_total (%v) > 0", spoolFull, got, gaugeValue(sm, "ferry_agent_syslog_spool_full_total", nil))
	}
	// Nothing else was dropped or failed, anywhere.
	for who, fams := range map[string]map[string]*dto.MetricFamily{"syslog agent": sm, "file agent": fm, "aggregator": gm} {
		for _, name := range []string{"ferry_errors_total", "ferry_agent_events_dropped_total", "ferry_aggregator_events_dropped_total"} {
			f := fams[name]
			if f == nil {
				continue
			}
			for _, m := range f.Metric {
				l := labelMap(m)
				if who == "syslog agent" && (l["reason"] == "syslog_overflow" || l["reason"] == "spool_full") {
					continue
				}
				if v := m.Counter.GetValue(); v != 0 {
					t.Errorf("%s: %s%v = %v, want 0", who, name, l, v)
				}
			}
		}
	}
	checkDropLabels(t, "agent", sm)
	checkDropLabels(t, "aggregator", gm)
	if got, want := gaugeValue(gm, "ferry_aggregator_events_acked_total", nil), float64(lines)+float64(received); got != want {
		t.Errorf("aggregator acknowledged %v events, the agents %v", got, want)
	}
	if got := gaugeValue(gm, "ferry_aggregator_streams_open", nil); got != 2 {
		t.Errorf("ferry_aggregator_streams_open = %v with two agents connected, want 2", got)
	}
	if got := gaugeValue(gm, "ferry_aggregator_streams_total", nil); got < 2 {
		t.Errorf("ferry_aggregator_streams_total = %v, want at least 2", got)
	}
	for who, fams := range map[string]map[string]*dto.MetricFamily{"syslog agent": sm, "file agent": fm} {
		if got := gaugeValue(fams, "ferry_agent_streams_open", nil); got != 1 {
			t.Errorf("%s: ferry_agent_streams_open = %v, want 1", who, got)
		}
	}
	checkExposition(t, map[string]map[string]*dto.MetricFamily{"syslog agent": sm, "file agent": fm, "aggregator": gm})

	harness.StopAll(t, 30*time.Second, fileAgent)
	harness.WaitFor(t, 30*time.Second, "one ingest stream open after the file agent stopped", func() bool {
		return gaugeValue(scrapeMetrics(t, aggHTTP), "ferry_aggregator_streams_open", nil) == 1
	})
	harness.StopAll(t, 30*time.Second, sysAgent, agg)
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
