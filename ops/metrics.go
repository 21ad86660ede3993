package ops

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns the one Prometheus registry a binary serves on
// /metrics, holding the Go runtime and process collectors. The binary
// creates it in main and hands it to what registers metrics of its own;
// no package registers on the global default registry.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// LatencyBuckets are the buckets, in seconds, of ferry's latency
// histograms: 5 ms to 2 minutes.
var LatencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// statsCollector exports a binary's flat counter map (the one /stats
// serves) through a registry: a name ending in _total is a counter, any
// other a gauge. A key may carry labels (`name{receiver="x",result="sent"}`).
// It is unchecked: the names are only known when the map is read.
type statsCollector struct {
	stats func() map[string]uint64
	log   *slog.Logger
}

// Describe sends nothing: the collector is unchecked.
func (statsCollector) Describe(chan<- *prometheus.Desc) {}

// Collect sends one constant metric per key of the map; a key that does
// not parse is logged and skipped.
func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	for k, v := range c.stats() {
		name, labels, err := parseSeries(k)
		if err != nil {
			c.log.Warn("metric skipped", "series", k, "err", err)
			continue
		}
		typ := prometheus.GaugeValue
		if strings.HasSuffix(name, "_total") {
			typ = prometheus.CounterValue
		}
		m, err := prometheus.NewConstMetric(prometheus.NewDesc(name, help(name), nil, labels), typ, float64(v))
		if err != nil {
			c.log.Warn("metric skipped", "series", k, "err", err)
			continue
		}
		ch <- m
	}
}

// help is the HELP text of a series exported from the counter map.
func help(name string) string {
	if strings.HasSuffix(name, "_total") {
		return "Counter " + name + " (see the README's metric list)."
	}
	return "Gauge " + name + " (see the README's metric list)."
}

// parseSeries splits `name{a="x",b="y"}` into the name and its labels.
// Label values must not contain `",` or `"}` (ferry's never do).
func parseSeries(k string) (string, prometheus.Labels, error) {
	name, rest, ok := strings.Cut(k, "{")
	if !ok {
		return k, nil, nil
	}
	body, ok := strings.CutSuffix(rest, "}")
	if !ok {
		return "", nil, fmt.Errorf("no closing brace")
	}
	labels := prometheus.Labels{}
	for body != "" {
		ln, after, ok := strings.Cut(body, `="`)
		if !ok {
			return "", nil, fmt.Errorf("label without value in %q", body)
		}
		val, next, ok := strings.Cut(after, `"`)
		if !ok {
			return "", nil, fmt.Errorf("unterminated value of label %s", ln)
		}
		labels[ln] = val
		body = strings.TrimPrefix(next, ",")
	}
	return name, labels, nil
}
