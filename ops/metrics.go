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

// help is the HELP text of a series exported from the counter map: its
// entry in the table of help texts (metrichelp.go), else a generic text
// that TestHelpTexts keeps out of what the binaries serve.
func help(name string) string {
	if h, ok := Help(name); ok {
		return h
	}
	if strings.HasSuffix(name, "_total") {
		return "Counter " + name + " (see the README's metric list)."
	}
	return "Gauge " + name + " (see the README's metric list)."
}

// ErrorsName is the metric both binaries count their errors in, by stage
// and reason (see AddErrors).
const ErrorsName = "ferry_errors_total"

// Errors is one (stage, reason) of ferry_errors_total and its count, taken
// from a counter the binary already keeps.
type Errors struct {
	Stage, Reason string
	N             uint64
}

// AddErrors adds ferry_errors_total{stage,reason} to m for each of errs.
// A binary passes its whole closed set every time, with 0 for what did
// not happen (or is not configured), so that every series exists from the
// start and increase() sees its first error; pairs given twice are summed.
func AddErrors(m map[string]uint64, errs []Errors) {
	for _, e := range errs {
		m[ErrorsName+`{stage="`+e.Stage+`",reason="`+e.Reason+`"}`] += e.N
	}
}

// Drops is one reason for which a binary drops events and how many it
// dropped. Intentional drops are those the configuration or a documented
// bound asks for; the others are data Ferry was meant to deliver and lost,
// which the chart's FerryEventsDropped alerts on.
type Drops struct {
	Reason      string
	Intentional bool
	N           uint64
}

// AddDrops adds name{reason,intentional="true|false"} to m for each of
// drops (the binary's closed set, with 0 for what did not happen).
func AddDrops(m map[string]uint64, name string, drops []Drops) {
	for _, d := range drops {
		m[fmt.Sprintf(`%s{reason=%q,intentional="%t"}`, name, d.Reason, d.Intentional)] += d.N
	}
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
