package elasticsearch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

// Template conflicts (Config.TemplateConflict).
const (
	// ConflictError refuses the events of a data stream that another index
	// template governs, as retryable failures, with an error naming that
	// template, until it is fixed (checked again every recheckAfter).
	ConflictError = "error"
	// ConflictWarn writes them anyway, after one warning naming the
	// template.
	ConflictWarn = "warn"
)

// recheckAfter is how long a data stream found in conflict keeps that
// verdict: fixing the other template takes effect without a restart.
const recheckAfter = 30 * time.Second

// streamChecks caches, per data stream, whether Ferry's index templates
// govern it.
type streamChecks struct {
	mu sync.Mutex
	m  map[string]verdict
}

type verdict struct {
	conflict error // nil: a Ferry template governs the data stream
	at       time.Time
}

// checkStream tells whether Ferry's index templates govern the data stream
// name, asking Elasticsearch the first time it sees the name (and again
// recheckAfter after a conflict). Ferry's templates cover its own datasets;
// for any other dataset (an input's own `dataset:`) that no template, or
// only Elasticsearch's built-in catch-all (`logs`, `metrics`, priority 100),
// matches, it installs a Ferry template of that dataset first
// (ferry-<type>-<dataset>, pattern <type>-<dataset>-*, the same mappings):
// the aggregator cannot know the agents' datasets in advance. A data stream
// that another template governs (outranking Ferry's, or matching a dataset
// Ferry has no template for) is a conflict: its error names the template,
// its priority and what follows; it is logged once per verdict (an error,
// or a warning with ConflictWarn). A check that cannot be made (the cluster
// does not answer) returns nil and is made again next time: the bulk
// request would fail as well.
func (s *Sink) checkStream(ctx context.Context, name string) error {
	s.streams.mu.Lock()
	v, ok := s.streams.m[name]
	s.streams.mu.Unlock()
	if ok && (v.conflict == nil || time.Since(v.at) < recheckAfter) {
		return v.conflict
	}
	conflict, err := s.governs(ctx, name)
	if err != nil {
		s.log.Debug("could not check which index template governs a data stream; writing, checking again next time", "data_stream", name, "err", err)
		return nil
	}
	s.streams.mu.Lock()
	if s.streams.m == nil {
		s.streams.m = map[string]verdict{}
	}
	s.streams.m[name] = verdict{conflict: conflict, at: time.Now()}
	s.streams.mu.Unlock()
	if conflict != nil {
		if s.cfg.TemplateConflict == ConflictWarn {
			s.log.Warn("writing into a data stream that another index template governs (template_conflict: warn)", "data_stream", name, "err", conflict)
		} else {
			s.log.Error("refusing events for a data stream that another index template governs; they are retried until it is fixed (or set template_conflict: warn)",
				"data_stream", name, "err", conflict)
		}
	}
	return conflict
}

// indexTemplate is an index template as GET _index_template lists it.
type indexTemplate struct {
	Name          string `json:"name"`
	IndexTemplate struct {
		IndexPatterns []string        `json:"index_patterns"`
		Priority      int             `json:"priority"`
		DataStream    json.RawMessage `json:"data_stream"`
		Meta          map[string]any  `json:"_meta"`
	} `json:"index_template"`
}

func (t indexTemplate) ferrys() bool { return t.IndexTemplate.Meta["managed_by"] == "ferry" }

// builtin reports whether t is Elasticsearch's own catch-all template of a
// data stream type (logs-*-*, metrics-*-* at priority 100).
func (t indexTemplate) builtin() bool {
	return (t.Name == "logs" || t.Name == "metrics") && t.IndexTemplate.Meta["managed"] == true
}

// governs returns the conflict, if another index template than Ferry's
// governs the data stream name; err is a failed request.
func (s *Sink) governs(ctx context.Context, name string) (conflict, err error) {
	typ, dataset, _, perr := splitDataStream(name)
	if perr != nil {
		return nil, perr
	}
	winner, found, err := s.winningTemplate(ctx, name)
	if err != nil {
		return nil, err
	}
	switch {
	case found && winner.ferrys() && winner.IndexTemplate.DataStream != nil:
		return nil, nil
	case !found && coveredByTemplates(name):
		// Ferry's own template should match: Setup did not run, or the
		// answer is not Elasticsearch's.
		return nil, fmt.Errorf("no index template matches %s, not even Ferry's", name)
	case !found || winner.builtin():
		// A dataset of an input's own: give it Ferry's mappings.
		tname := "ferry-" + typ + "-" + dataset
		if err := s.putIndexTemplate(ctx, tname, []string{typ + "-" + dataset + "-*"}); err != nil {
			return nil, err
		}
		s.log.Info("installed an index template for a dataset of an input's own", "template", tname, "data_stream", name)
		if winner, found, err = s.winningTemplate(ctx, name); err != nil {
			return nil, err
		}
		if found && winner.Name == tname {
			return nil, nil
		}
	}
	if !found {
		return fmt.Errorf(
			"data stream %s: no index template applies even after installing Ferry's: Elasticsearch would create a plain index", name), nil
	}
	t := winner.IndexTemplate
	what := fmt.Sprintf("index template %q (priority %d, index_patterns %v)", winner.Name, t.Priority, t.IndexPatterns)
	if coveredByTemplates(name) {
		what += fmt.Sprintf(" outranks Ferry's (priority %d)", templatePriority)
	} else {
		what += " governs this dataset, for which Ferry has no template"
	}
	if t.DataStream == nil {
		return fmt.Errorf(
			"data stream %s: %s and has no data_stream: Elasticsearch would create a plain index with guessed mappings (@timestamp as date: nanoseconds lost; no retention, no rollover); remove it, give it a priority below %d or a data_stream, or set template_conflict: warn",
			name, what, templatePriority), nil
	}
	return fmt.Errorf(
		"data stream %s: %s: its mappings apply, not Ferry's (@timestamp as date_nanos, ECS fields); remove it, give it a priority below %d, or set template_conflict: warn",
		name, what, templatePriority), nil
}

// winningTemplate returns the index template that Elasticsearch would apply
// to a new data stream or index named name, if any. It asks
// POST _index_template/_simulate_index/<name>, which applies the cluster's
// own rules and lists the matching templates that lose ("overlapping"),
// and GET _index_template for the one that wins (its name, priority and
// whether it makes data streams).
func (s *Sink) winningTemplate(ctx context.Context, name string) (indexTemplate, bool, error) {
	r, err := s.do(ctx, http.MethodPost, "/_index_template/_simulate_index/"+url.PathEscape(name), "", "", nil)
	if err != nil {
		return indexTemplate{}, false, err
	}
	if r.status/100 != 2 {
		return indexTemplate{}, false, fmt.Errorf("simulate index %s: HTTP %d: %s", name, r.status, r.errorSummary())
	}
	var sim struct {
		Template    json.RawMessage `json:"template"`
		Overlapping []struct {
			Name string `json:"name"`
		} `json:"overlapping"`
	}
	if err := json.Unmarshal(r.body, &sim); err != nil {
		return indexTemplate{}, false, fmt.Errorf("simulate index %s: %w", name, err)
	}
	if sim.Template == nil {
		return indexTemplate{}, false, nil // no template matches
	}
	r, err = s.do(ctx, http.MethodGet, "/_index_template", "", "", nil)
	if err != nil {
		return indexTemplate{}, false, err
	}
	if r.status/100 != 2 {
		return indexTemplate{}, false, fmt.Errorf("list index templates: HTTP %d: %s", r.status, r.errorSummary())
	}
	var list struct {
		IndexTemplates []indexTemplate `json:"index_templates"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil {
		return indexTemplate{}, false, fmt.Errorf("list index templates: %w", err)
	}
	losers := map[string]bool{}
	for _, o := range sim.Overlapping {
		losers[o.Name] = true
	}
	var best indexTemplate
	found := false
	for _, t := range list.IndexTemplates {
		if losers[t.Name] || !matchesAny(t.IndexTemplate.IndexPatterns, name) {
			continue
		}
		if !found || t.IndexTemplate.Priority > best.IndexTemplate.Priority {
			best, found = t, true
		}
	}
	return best, found, nil
}

// matchesAny reports whether name matches one of the index patterns
// (wildcards: *).
func matchesAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if strings.ContainsAny(p, "?[\\") {
			continue // not an index pattern
		}
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
