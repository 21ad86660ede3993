package elasticsearch

import (
	"context"
	"strings"
)

// Metric data streams (metrics-system.<set>-<environment>,
// metrics-kubernetes.<set>-<environment>, metrics-node-*) are governed by
// the index template ferry-metrics, composed of the ECS mappings, the
// settings and ferry-metrics-mappings, which types every metric field the
// agent sends (percentages float, bytes and counts long; counters marked
// time_series_metric counter, the rest gauge) and marks the fields that
// tell series apart as time_series_dimension.
//
// Where the cluster supports it, ferry-metrics makes time-series data
// streams (index.mode time_series, routed by host.name): Setup tries, and
// falls back to plain data streams if the cluster refuses the settings,
// saying which with one log line. In a time-series data stream a document's
// _id is derived by Elasticsearch from its dimensions and @timestamp, and a
// given _id is refused: the sink sends metric events without one, and a
// re-sent sample (same node, set, series and time, so the same dimensions
// and @timestamp) answers 409, delivered, as a re-sent line does.
const (
	componentMetrics = "ferry-metrics-mappings"
	metricsTemplate  = "ferry-metrics"
)

// metricField types one metric field: its mapping type and its role in a
// time-series data stream: "gauge", "counter" or "dimension".
type metricField struct {
	name, typ, role string
}

// metricFields lists every field the metric sets write.
func metricFields() []metricField {
	var fs []metricField
	add := func(typ, role string, names ...string) {
		for _, n := range names {
			fs = append(fs, metricField{n, typ, role})
		}
	}
	states := []string{"user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice", "total"}
	for _, st := range states {
		add("float", "gauge", "system.cpu."+st+".pct", "system.cpu."+st+".norm.pct", "system.core."+st+".pct", "system.core."+st+".norm.pct")
	}
	add("long", "gauge", "system.cpu.cores", "system.load.cores")
	add("long", "dimension", "system.core.id")
	add("float", "gauge", "system.load.1", "system.load.5", "system.load.15", "system.load.norm.1", "system.load.norm.5", "system.load.norm.15")
	add("long", "gauge", "system.memory.total", "system.memory.free", "system.memory.used.bytes", "system.memory.actual.free",
		"system.memory.actual.used.bytes", "system.memory.cached",
		"system.memory.swap.total", "system.memory.swap.free", "system.memory.swap.used.bytes")
	add("float", "gauge", "system.memory.used.pct", "system.memory.actual.used.pct", "system.memory.swap.used.pct")
	add("keyword", "dimension", "system.filesystem.mount_point")
	add("keyword", "", "system.filesystem.device_name", "system.filesystem.type")
	add("long", "gauge", "system.filesystem.total", "system.filesystem.free", "system.filesystem.available",
		"system.filesystem.used.bytes", "system.filesystem.files", "system.filesystem.free_files")
	add("float", "gauge", "system.filesystem.used.pct")
	add("keyword", "dimension", "system.diskio.name")
	add("long", "counter", "system.diskio.read.count", "system.diskio.write.count", "system.diskio.read.bytes", "system.diskio.write.bytes",
		"system.diskio.read.time", "system.diskio.write.time", "system.diskio.io.time")
	add("float", "gauge", "system.diskio.iostat.read.per_sec.bytes", "system.diskio.iostat.write.per_sec.bytes",
		"system.diskio.iostat.read.request.per_sec", "system.diskio.iostat.write.request.per_sec", "system.diskio.iostat.busy")
	add("keyword", "dimension", "system.network.name")
	for _, c := range []string{"in.bytes", "out.bytes", "in.packets", "out.packets", "in.errors", "out.errors", "in.dropped", "out.dropped"} {
		add("long", "counter", "system.network."+c)
		add("float", "gauge", "system.network."+c+"_per_sec")
	}
	add("long", "gauge", "system.uptime.duration.ms")
	for _, k := range []string{"kubernetes.container", "kubernetes.pod"} {
		ws := "workingset"
		if k == "kubernetes.pod" {
			ws = "working_set"
		}
		add("long", "counter", k+".cpu.usage.core.ns")
		add("long", "gauge", k+".cpu.usage.nanocores", k+".memory.usage.bytes", k+".memory."+ws+".bytes", k+".memory.limit.bytes")
		add("float", "gauge", k+".cpu.usage.limit.pct", k+".cpu.usage.node.pct", k+".memory.usage.limit.pct", k+".memory."+ws+".limit.pct")
	}
	add("keyword", "dimension", "host.name", "kubernetes.pod.uid", "container.id")
	add("keyword", "", "event.module", "metricset.name")
	return fs
}

// metricMappings is the mapping of ferry-metrics-mappings.
func metricMappings() obj {
	root := obj{}
	for _, f := range metricFields() {
		m := obj{"type": f.typ}
		switch f.role {
		case "dimension":
			m["time_series_dimension"] = true
		case "gauge", "counter":
			m["time_series_metric"] = f.role
		}
		setMapping(root, f.name, m)
	}
	return obj{"properties": root}
}

// timeSeriesSettings are the index settings of a time-series data stream.
func timeSeriesSettings() obj {
	return obj{"index": obj{"mode": "time_series", "routing_path": []string{"host.name"}}}
}

// composedOf returns the component templates of the index template name.
func composedOf(name string) []string {
	switch name {
	case metricsTemplate:
		return []string{componentMappings, componentSettings, componentMetrics}
	case haproxyTemplate:
		return []string{componentMappings, componentSettings, componentHAProxy}
	}
	return []string{componentMappings, componentSettings}
}

// addTimeSeries adds the time-series settings to the body of the index
// template name, if it is ferry-metrics and the cluster takes them.
func (s *Sink) addTimeSeries(name string, body obj) {
	s.tmpl.mu.Lock()
	off := s.tmpl.noTimeSeries
	s.tmpl.mu.Unlock()
	if name != metricsTemplate || off {
		return
	}
	t, _ := body["template"].(obj)
	if t == nil {
		t = obj{}
		body["template"] = t
	}
	t["settings"] = timeSeriesSettings()
}

// putMetricsTemplate installs ferry-metrics-mappings and ferry-metrics, as
// time-series data streams if the cluster accepts them, else as plain ones;
// the first time, it logs which.
func (s *Sink) putMetricsTemplate(ctx context.Context, name string, patterns []string) error {
	if err := s.putWithFallbacks(ctx, "/_component_template/"+componentMetrics,
		obj{"template": obj{"mappings": metricMappings()}, "_meta": meta}); err != nil {
		return err
	}
	err := s.putIndexTemplate(ctx, name, patterns)
	s.tmpl.mu.Lock()
	tried := !s.tmpl.noTimeSeries
	s.tmpl.mu.Unlock()
	if err != nil && tried && timeSeriesRefused(err) {
		s.tmpl.mu.Lock()
		s.tmpl.noTimeSeries = true
		s.tmpl.mu.Unlock()
		s.logModeOnce("metrics go to plain data streams: the cluster refuses time-series data streams", "err", err)
		return s.putIndexTemplate(ctx, name, patterns)
	}
	if err == nil && tried {
		s.logModeOnce("metrics go to time-series data streams (index.mode time_series, dimensions host.name and the series fields)")
	}
	return err
}

// timeSeriesRefused reports whether a template error is about the
// time-series settings.
func timeSeriesRefused(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "time_series") || strings.Contains(msg, "index.mode") || strings.Contains(msg, "routing_path")
}

func (s *Sink) logModeOnce(msg string, args ...any) {
	s.tmpl.mu.Lock()
	first := !s.tmpl.modeLogged
	s.tmpl.modeLogged = true
	s.tmpl.mu.Unlock()
	if first {
		s.log.Info(msg, args...)
	}
}

// TimeSeries reports whether Setup made metric data streams time-series
// ones.
func (s *Sink) TimeSeries() bool {
	s.tmpl.mu.Lock()
	defer s.tmpl.mu.Unlock()
	return s.tmpl.modeLogged && !s.tmpl.noTimeSeries
}
