package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ferrylogs/ferry/sinks"
)

// Template names. None starts with '@' (Elastic's reserved style) and the
// index patterns match only Ferry's own datasets, so Ferry never changes the
// mappings of anybody else's data streams.
const (
	componentMappings = "ferry-ecs-mappings"
	componentSettings = "ferry-settings"
	templatePriority  = 250 // above the built-ins (100) and Fleet (up to 200)
)

var indexTemplates = []struct {
	name     string
	patterns []string
}{
	{"ferry-logs", []string{"logs-kubernetes.container-*", "logs-file-*", "logs-ferry*-*"}},
	{haproxyTemplate, []string{"logs-haproxy*-*"}}, // see templates_haproxy.go
	{metricsTemplate, []string{"metrics-node-*", "metrics-kubernetes*-*", "metrics-system.*-*"}},
}

// typeFallbacks replaces mapping types that minimal distributions lack.
var typeFallbacks = map[string]string{
	"match_only_text":  "text",
	"constant_keyword": "keyword",
}

var missingType = regexp.MustCompile(`mapper type \[([a-z_]+)\] declared on field`)

// templateState is what Setup learned about the cluster.
type templateState struct {
	mu          sync.Mutex
	fallback    map[string]string // mapping types replaced
	noLifecycle bool              // templates refuse "lifecycle"
	warned      bool              // the retention line was logged
	version     bool              // the version line was logged
	// noTimeSeries: the cluster refused time-series settings (see
	// templates_metrics.go); modeLogged: that line was logged.
	noTimeSeries, modeLogged bool
}

type obj = map[string]any

var (
	keyword   = obj{"type": "keyword"}
	long      = obj{"type": "long"}
	dateNanos = obj{"type": "date_nanos"}
	constKW   = obj{"type": "constant_keyword"}
)

func props(p obj) obj { return obj{"properties": p} }

// ecsMappings is the mapping of every Ferry data stream.
func ecsMappings() obj {
	return obj{
		"dynamic": true,
		"dynamic_templates": append(geoDynamicTemplates(), obj{"strings_as_keyword": obj{
			"match_mapping_type": "string",
			"mapping":            obj{"type": "keyword", "ignore_above": 1024},
		}}),
		"properties": addGeoMappings(obj{
			"@timestamp": dateNanos,
			"message":    obj{"type": "match_only_text"},
			"event": props(obj{
				"id": keyword, "dataset": keyword, "kind": keyword, "ingested": dateNanos,
				"original": obj{"type": "keyword", "index": false, "doc_values": false},
			}),
			"data_stream": props(obj{"type": constKW, "dataset": constKW, "namespace": constKW}),
			"host":        props(obj{"name": keyword}),
			// Labels and annotations are flattened: one field each however
			// many keys pods have, so label churn cannot grow the mapping.
			"kubernetes": props(obj{
				"namespace":        keyword,
				"pod":              props(obj{"name": keyword, "uid": keyword}),
				"container":        props(obj{"name": keyword}),
				"node":             props(obj{"name": keyword}),
				"labels":           obj{"type": "flattened"},
				"namespace_labels": obj{"type": "flattened"},
				"annotations":      obj{"type": "flattened"},
				"deployment":       props(obj{"name": keyword}),
				"statefulset":      props(obj{"name": keyword}),
				"daemonset":        props(obj{"name": keyword}),
				"cronjob":          props(obj{"name": keyword}),
				"job":              props(obj{"name": keyword}),
				"replicaset":       props(obj{"name": keyword}),
			}),
			"orchestrator": props(obj{
				"type": keyword, "cluster": props(obj{"name": keyword}),
			}),
			"container": props(obj{"id": keyword, "image": props(obj{"name": keyword})}),
			"log":       props(obj{"file": props(obj{"path": keyword}), "offset": long}),
			"stream":    keyword,
			"service":   props(obj{"name": keyword, "environment": keyword}),
			"ferry":     props(obj{"input": keyword, "flags": keyword, "original_index": keyword, "original_timestamp": keyword}),
			"source":    props(obj{"ip": obj{"type": "ip"}}), // and geo, as: templates_geo.go
			"http": props(obj{
				"response": props(obj{"status_code": long}),
				"request":  props(obj{"method": keyword}),
			}),
			"url":   props(obj{"path": keyword}),
			"error": props(obj{"type": keyword, "reason": obj{"type": "text"}}),
		}),
	}
}

func settings() obj {
	return obj{"index": obj{
		"refresh_interval": "5s",
		"mapping":          obj{"total_fields": obj{"limit": 2000}},
		"query":            obj{"default_field": []string{"message"}},
	}}
}

var meta = obj{"managed_by": "ferry", "description": "Installed by Ferry's Elasticsearch sink"}

// Setup installs Ferry's component and index templates. It is idempotent:
// running it again rewrites the same templates. Errors that retrying cannot
// fix (the cluster refuses a template) are sinks.Permanent.
func (s *Sink) Setup(ctx context.Context) error {
	s.logVersionOnce(ctx)
	if err := s.putWithFallbacks(ctx, "/_component_template/"+componentMappings,
		obj{"template": obj{"mappings": ecsMappings()}, "_meta": meta}); err != nil {
		return err
	}
	if err := s.putWithFallbacks(ctx, "/_component_template/"+componentSettings,
		obj{"template": obj{"settings": settings()}, "_meta": meta}); err != nil {
		return err
	}
	for _, t := range indexTemplates {
		put := s.putIndexTemplate
		switch t.name {
		case metricsTemplate:
			put = s.putMetricsTemplate
		case haproxyTemplate:
			put = s.putHAProxyTemplate
		}
		if err := put(ctx, t.name, t.patterns); err != nil {
			return err
		}
	}
	s.tmpl.mu.Lock()
	check := s.cfg.Retention > 0 && !s.tmpl.noLifecycle
	s.tmpl.mu.Unlock()
	if check {
		s.checkLifecycle(ctx)
	}
	// The one data stream known in advance; the others are checked before
	// their first write.
	if err := s.checkStream(ctx, s.cfg.DeadLetterDataStream); err != nil && s.cfg.TemplateConflict != ConflictWarn {
		return fmt.Errorf("elasticsearch: setup: dead_letter_data_stream: %w", err)
	}
	return nil
}

func (s *Sink) putIndexTemplate(ctx context.Context, name string, patterns []string) error {
	body := obj{
		"index_patterns": patterns,
		"priority":       templatePriority,
		"data_stream":    obj{},
		"composed_of":    composedOf(name),
		"_meta":          meta,
	}
	s.tmpl.mu.Lock()
	withLifecycle := s.cfg.Retention > 0 && !s.tmpl.noLifecycle
	s.tmpl.mu.Unlock()
	if withLifecycle {
		body["template"] = obj{"lifecycle": obj{"data_retention": retentionDays(s.cfg.Retention)}}
	}
	s.addTimeSeries(name, body)
	r, err := s.put(ctx, "/_index_template/"+name, body)
	if err == nil && withLifecycle && r.status == http.StatusBadRequest && strings.Contains(string(r.body), "lifecycle") {
		s.retentionNotEnforced("the cluster refuses a data stream lifecycle in index templates: " + r.errorSummary())
		s.tmpl.mu.Lock()
		s.tmpl.noLifecycle = true
		s.tmpl.mu.Unlock()
		delete(body, "template")
		s.addTimeSeries(name, body)
		r, err = s.put(ctx, "/_index_template/"+name, body)
	}
	return templateError(name, r, err)
}

// putWithFallbacks PUTs a template, replacing mapping types the cluster
// does not know by their fallbacks.
func (s *Sink) putWithFallbacks(ctx context.Context, path string, body obj) error {
	for range len(typeFallbacks) + 2 {
		r, err := s.put(ctx, path, body)
		if err != nil || r.status != http.StatusBadRequest {
			return templateError(path, r, err)
		}
		m := missingType.FindSubmatch(r.body)
		if m == nil {
			return templateError(path, r, nil)
		}
		missing := string(m[1])
		repl, ok := typeFallbacks[missing]
		if !ok {
			return templateError(path, r, nil)
		}
		s.tmpl.mu.Lock()
		_, known := s.tmpl.fallback[missing] // known: a concurrent Setup learned it
		if !known {
			if s.tmpl.fallback == nil {
				s.tmpl.fallback = map[string]string{}
			}
			s.tmpl.fallback[missing] = repl
		}
		s.tmpl.mu.Unlock()
		if !known {
			s.log.Info("mapping type not available on this cluster, using a fallback", "type", missing, "fallback", repl)
		}
	}
	return fmt.Errorf("elasticsearch: setup %s: mapping types keep being refused", path)
}

// put sends a template with the learned type fallbacks applied.
func (s *Sink) put(ctx context.Context, path string, body obj) (response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return response{}, fmt.Errorf("elasticsearch: encoding %s: %w", path, err)
	}
	s.tmpl.mu.Lock()
	for from, to := range s.tmpl.fallback {
		b = bytes.ReplaceAll(b, []byte(`"type":"`+from+`"`), []byte(`"type":"`+to+`"`))
	}
	s.tmpl.mu.Unlock()
	return s.do(ctx, http.MethodPut, path, "", "application/json", b)
}

// templateError turns a PUT's outcome into an error: nil for 2xx,
// permanent for a 4xx that retrying cannot change.
func templateError(what string, r response, err error) error {
	if err != nil {
		return fmt.Errorf("elasticsearch: setup %s: %w", what, err)
	}
	if r.status/100 == 2 {
		return nil
	}
	err = fmt.Errorf("elasticsearch: setup %s: HTTP %d: %s", what, r.status, r.errorSummary())
	if retryableStatus(r.status) {
		return err
	}
	return sinks.Permanent(err)
}

// checkLifecycle tells, once, whether the cluster enforces the retention:
// only distributions with the data streams module run data stream
// lifecycle, and its stats endpoint exists only there.
func (s *Sink) checkLifecycle(ctx context.Context) {
	r, err := s.do(ctx, http.MethodGet, "/_lifecycle/stats", "", "", nil)
	switch {
	case err != nil:
		s.log.Debug("could not check data stream lifecycle support", "err", err)
	case r.status/100 == 2:
		s.tmpl.mu.Lock()
		first := !s.tmpl.warned
		s.tmpl.warned = true
		s.tmpl.mu.Unlock()
		if first {
			s.log.Info("retention enforced by data stream lifecycle", "retention", retentionDays(s.cfg.Retention))
		}
	case r.status == http.StatusBadRequest || r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed:
		s.retentionNotEnforced("the cluster has no data stream lifecycle (GET /_lifecycle/stats: HTTP " + fmt.Sprint(r.status) + ")")
	default:
		s.log.Debug("could not check data stream lifecycle support", "status", r.status)
	}
}

// logVersionOnce logs which Elasticsearch Setup talks to; not knowing it
// (no monitor privilege) is no error.
func (s *Sink) logVersionOnce(ctx context.Context) {
	s.tmpl.mu.Lock()
	done := s.tmpl.version
	s.tmpl.mu.Unlock()
	if done {
		return
	}
	v, err := s.Version(ctx)
	if err != nil {
		s.log.Debug("could not read the Elasticsearch version", "err", err)
		return
	}
	s.tmpl.mu.Lock()
	s.tmpl.version = true
	s.tmpl.mu.Unlock()
	s.log.Info("connected to Elasticsearch", "version", v)
}

// retentionNotEnforced logs, once, that Retention has no effect.
func (s *Sink) retentionNotEnforced(why string) {
	s.tmpl.mu.Lock()
	first := !s.tmpl.warned
	s.tmpl.warned = true
	s.tmpl.mu.Unlock()
	if first {
		s.log.Warn("retention is NOT enforced: delete old data with ILM or by hand",
			"retention", retentionDays(s.cfg.Retention), "why", why)
	}
}

func retentionDays(d time.Duration) string {
	days := (d + 24*time.Hour - 1) / (24 * time.Hour)
	return fmt.Sprintf("%dd", days)
}
