package elasticsearch

import (
	"context"
	"strings"
)

// HAProxy request logs (an agent input with parser: haproxy, dataset
// haproxy.log) go to logs-haproxy*-* data streams, whose index template
// adds ferry-haproxy-mappings to Ferry's ECS mappings: every field the
// parser writes is typed here, so no field of a request log is left to
// dynamic mapping (addresses are ip, numbers long).
const (
	componentHAProxy = "ferry-haproxy-mappings"
	haproxyTemplate  = "ferry-logs-haproxy"
)

// haproxyFields lists every field pipeline/parse.HAProxyFields writes, by
// mapping type.
func haproxyFields() map[string][]string {
	return map[string][]string{
		"ip": {"source.ip", "destination.ip"},
		"long": {"source.port", "destination.port", "http.response.status_code", "http.response.bytes", "event.duration",
			"haproxy.timers.TR", "haproxy.timers.Tw", "haproxy.timers.Tc", "haproxy.timers.Tr", "haproxy.timers.Ta", "haproxy.timers.Tt",
			"haproxy.connections.active", "haproxy.connections.frontend", "haproxy.connections.backend",
			"haproxy.connections.server", "haproxy.connections.retries",
			"haproxy.queue.server", "haproxy.queue.backend", "haproxy.bytes_read"},
		"keyword": {"http.request.method", "http.version", "url.path", "event.outcome",
			"haproxy.frontend_name", "haproxy.backend_name", "haproxy.server_name", "haproxy.termination_state", "haproxy.mode",
			"haproxy.http.request.captured_cookie", "haproxy.http.response.captured_cookie",
			"haproxy.http.request.captured_headers", "haproxy.http.response.captured_headers", "haproxy.http.request.raw",
			"tls.version", "tls.version_protocol", "tls.cipher", "tls.client.server_name"},
		// ECS types url.original and url.query as wildcard; keyword with a
		// high ignore_above keeps them searchable on every distribution.
		"url": {"url.original", "url.query"},
	}
}

// haproxyMappings is the mapping of ferry-haproxy-mappings.
func haproxyMappings() obj {
	root := obj{}
	for typ, names := range haproxyFields() {
		m := obj{"type": typ}
		if typ == "url" {
			m = obj{"type": "keyword", "ignore_above": 8191}
		}
		for _, name := range names {
			setMapping(root, name, m)
		}
	}
	return obj{"properties": root}
}

// setMapping sets the mapping m of the dotted field name in the properties
// root, making the objects on its way.
func setMapping(root obj, name string, m obj) {
	parts := strings.Split(name, ".")
	at := root
	for _, p := range parts[:len(parts)-1] {
		child, ok := at[p].(obj)
		if !ok {
			child = obj{"properties": obj{}}
			at[p] = child
		}
		at = child["properties"].(obj)
	}
	at[parts[len(parts)-1]] = m
}

// putHAProxyTemplate installs ferry-haproxy-mappings and the index template
// of the HAProxy data streams.
func (s *Sink) putHAProxyTemplate(ctx context.Context, name string, patterns []string) error {
	if err := s.putWithFallbacks(ctx, "/_component_template/"+componentHAProxy,
		obj{"template": obj{"mappings": haproxyMappings()}, "_meta": meta}); err != nil {
		return err
	}
	return s.putIndexTemplate(ctx, name, patterns)
}
