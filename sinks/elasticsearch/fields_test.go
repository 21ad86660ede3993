package elasticsearch

import "testing"

func TestIndexTemplateFields(t *testing.T) {
	byName := map[string]TemplateFields{}
	for _, tf := range IndexTemplateFields() {
		byName[tf.Name] = tf
	}
	for _, c := range []struct{ template, field, typ string }{
		{"ferry-logs", "@timestamp", "date_nanos"},
		{"ferry-logs", "kubernetes.pod.name", "keyword"},
		{"ferry-logs", "source.geo.location", "geo_point"},
		{"ferry-logs", "kubernetes.labels", "flattened"},
		{haproxyTemplate, "source.geo.location", "geo_point"},
		{haproxyTemplate, "haproxy.timers.Tt", "long"},
		{haproxyTemplate, "url.original", "keyword"},
		{haproxyTemplate, "service.name", "keyword"}, // from the ECS component
		{metricsTemplate, "system.cpu.total.norm.pct", "float"},
		{metricsTemplate, "host.name", "keyword"},
	} {
		tf, ok := byName[c.template]
		if !ok {
			t.Fatalf("no index template %s in %v", c.template, byName)
		}
		if got := tf.Fields[c.field]; got != c.typ {
			t.Errorf("%s: %s is %q, want %q", c.template, c.field, got, c.typ)
		}
	}
	if _, ok := byName["ferry-logs"].Fields["haproxy.timers.Tt"]; ok {
		t.Error("ferry-logs maps haproxy.timers.Tt: components leaked between templates")
	}
	m := byName[metricsTemplate]
	if !m.Counters["system.network.in.bytes"] || m.Counters["system.network.in.bytes_per_sec"] {
		t.Errorf("counters: %v", m.Counters)
	}
	if _, ok := byName["ferry-logs"].Fields["kubernetes"]; ok {
		t.Error("object field listed as a leaf")
	}
}
