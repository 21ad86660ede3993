// Package rules parses and validates alert rule files: YAML files holding a
// list of rules (frequency, threshold, baseline, absence, spike), every
// problem of every file reported at once as file:line:col.
//
// A rule file:
//
//	rules:
//	  - name: HighCPU
//	    type: threshold
//	    index: "metrics-system.cpu-*"
//	    field: system.cpu.total.norm.pct
//	    aggregation: avg
//	    group_by: [host.name]
//	    window: 5m
//	    above: 0.9
//	    clear: 0.8
//	    for: 10m
//	    labels: { severity: warning }
//	    annotations: { summary: "CPU {{ humanizePercentage .Value }}" }
//
// Keys common to every type: name, type, index, filter (Elasticsearch query
// DSL written in YAML), group_by, window, timestamp_field (default
// @timestamp), for, keep_firing_for, severity (becomes the label severity),
// labels, annotations (Go templates, see Template). Per type:
//
//   - frequency: min_count or max_count (documents in the window).
//   - threshold: aggregation (avg|min|max|sum|count|percentile, default
//     avg), field (not for count), percentile (for percentile), above and/or
//     below, clear (hysteresis: a firing alert resolves only once the value
//     is back past clear).
//   - baseline: aggregation and field as threshold (default count),
//     history_hours (the previous N windows back to N hours) or history_days
//     (the same window on each of the previous N days), stddev (k) or band
//     ([low, high] percentiles of the history), direction (up|down|both,
//     default both), min_history (history points needed, default 5).
//   - absence: lookback (> window): a group seen in the lookback with no
//     document in the window.
//   - spike: ratio (> 1) of this window's count to the previous window's,
//     direction (up|down|both, default up), min_count (default 1) that the
//     larger of the two counts must reach.
package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferrylogs/ferry/config"
)

// Types of rule.
const (
	Frequency = "frequency"
	Threshold = "threshold"
	Baseline  = "baseline"
	Absence   = "absence"
	Spike     = "spike"
)

// Rule is one validated rule.
type Rule struct {
	Name           string            `json:"name"`
	Type           string            `json:"type"`
	Index          string            `json:"index"`
	TimestampField string            `json:"timestamp_field"`
	Filter         map[string]any    `json:"filter,omitempty"`
	GroupBy        []string          `json:"group_by,omitempty"`
	Window         time.Duration     `json:"window"`
	For            time.Duration     `json:"for,omitempty"`
	KeepFiringFor  time.Duration     `json:"keep_firing_for,omitempty"`
	Severity       string            `json:"severity,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Annotations    map[string]string `json:"annotations,omitempty"`

	MinCount *int64 `json:"min_count,omitempty"` // frequency, spike
	MaxCount *int64 `json:"max_count,omitempty"` // frequency

	Aggregation string   `json:"aggregation,omitempty"` // threshold, baseline
	Field       string   `json:"field,omitempty"`
	Percentile  float64  `json:"percentile,omitempty"`
	Above       *float64 `json:"above,omitempty"`
	Below       *float64 `json:"below,omitempty"`
	Clear       *float64 `json:"clear,omitempty"`

	HistoryHours int        `json:"history_hours,omitempty"` // baseline
	HistoryDays  int        `json:"history_days,omitempty"`
	Stddev       float64    `json:"stddev,omitempty"`
	Band         [2]float64 `json:"band,omitzero"`
	MinHistory   int        `json:"min_history,omitempty"`
	Direction    string     `json:"direction,omitempty"` // baseline, spike

	Lookback time.Duration `json:"lookback,omitempty"` // absence

	Ratio float64 `json:"ratio,omitempty"` // spike

	// Builtin marks the rules the evaluator defines itself.
	Builtin bool `json:"builtin,omitempty"`
	// File, Line and Column locate the rule in its file.
	File   string `json:"-"`
	Line   int    `json:"-"`
	Column int    `json:"-"`

	templates map[string]*template.Template
}

// Error is one problem in a rule file.
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

func (e Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Errors is every problem found, in file and position order.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Key identifies a rule's definition: two rules with the same Key are the
// same rule (its evaluation state carries over a reload).
func (r *Rule) Key() string {
	b, _ := json.Marshal(r)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// Template returns the parsed template of annotation name (nil if none).
func (r *Rule) Template(name string) *template.Template { return r.templates[name] }

// Fields returns the document field names the rule uses, sorted.
func (r *Rule) Fields() []string {
	set := map[string]bool{r.TimestampField: true}
	if r.Field != "" {
		set[r.Field] = true
	}
	for _, g := range r.GroupBy {
		set[g] = true
	}
	filterFields(r.Filter, set)
	delete(set, "")
	delete(set, "*")
	return slices.Sorted(maps.Keys(set))
}

// filterFields collects the field names of a query DSL clause.
func filterFields(v any, set map[string]bool) {
	switch q := v.(type) {
	case map[string]any:
		for k, sub := range q {
			switch k {
			case "term", "terms", "match", "match_phrase", "match_phrase_prefix", "range", "prefix", "wildcard", "regexp", "fuzzy":
				if m, ok := sub.(map[string]any); ok {
					for f := range m {
						if f != "boost" {
							set[f] = true
						}
					}
				}
			case "exists":
				if m, ok := sub.(map[string]any); ok {
					if f, ok := m["field"].(string); ok {
						set[f] = true
					}
				}
			case "query_string", "simple_query_string", "multi_match":
				if m, ok := sub.(map[string]any); ok {
					if f, ok := m["default_field"].(string); ok {
						set[f] = true
					}
					if fs, ok := m["fields"].([]any); ok {
						for _, f := range fs {
							if s, ok := f.(string); ok {
								set[strings.SplitN(s, "^", 2)[0]] = true
							}
						}
					}
				}
			default:
				filterFields(sub, set)
			}
		}
	case []any:
		for _, e := range q {
			filterFields(e, set)
		}
	}
}

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_:.-]*$`)
	fieldRE = regexp.MustCompile(`^[A-Za-z0-9_@][A-Za-z0-9_@.-]*$`)
)

// keys of each type, beyond the common ones.
var (
	common  = []string{"name", "type", "index", "timestamp_field", "filter", "group_by", "window", "for", "keep_firing_for", "severity", "labels", "annotations"}
	typeKey = map[string][]string{
		Frequency: {"min_count", "max_count"},
		Threshold: {"aggregation", "field", "percentile", "above", "below", "clear"},
		Baseline:  {"aggregation", "field", "percentile", "history_hours", "history_days", "stddev", "band", "direction", "min_history"},
		Absence:   {"lookback"},
		Spike:     {"ratio", "direction", "min_count"},
	}
)

// LoadDir reads every *.yml and *.yaml file of dir (not recursing) and
// returns their rules, or every problem of every file.
func LoadDir(dir string) ([]*Rule, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		if n := e.Name(); !e.IsDir() && !strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".yml") || strings.HasSuffix(n, ".yaml")) {
			files = append(files, filepath.Join(dir, n))
		}
	}
	return LoadFiles(files)
}

// LoadFiles parses the files in order; rule names must be unique over all.
func LoadFiles(files []string) ([]*Rule, error) {
	var all []*Rule
	var errs Errors
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, Error{File: f, Msg: err.Error()})
			continue
		}
		rs, err := Parse(f, data)
		var es Errors
		if errors.As(err, &es) {
			errs = append(errs, es...)
		}
		all = append(all, rs...)
	}
	seen := map[string]*Rule{}
	for _, r := range all {
		if first, dup := seen[r.Name]; dup {
			errs = append(errs, Error{File: r.File, Line: r.Line, Column: r.Column,
				Msg: fmt.Sprintf("rule name %q also at %s:%d", r.Name, first.File, first.Line)})
		}
		seen[r.Name] = r
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return all, nil
}

// Parse parses one rule file; name is used in errors. On error it returns
// Errors (every problem) and the rules that were valid.
func Parse(name string, data []byte) ([]*Rule, error) {
	p := &parser{file: name}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, nil
		}
		p.errs = append(p.errs, Error{File: name, Line: yamlErrLine(err), Column: 1, Msg: "invalid YAML: " + err.Error()})
		return nil, p.errs
	}
	var rules []*Rule
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			p.fail(root, "a rule file is a mapping with the key rules")
		} else {
			for i := 0; i+1 < len(root.Content); i += 2 {
				k, v := root.Content[i], root.Content[i+1]
				if k.Value != "rules" {
					p.fail(k, fmt.Sprintf("unknown key %q (a rule file has only rules)", k.Value))
					continue
				}
				if v.Kind != yaml.SequenceNode {
					p.fail(v, "rules must be a list")
					continue
				}
				for _, rn := range v.Content {
					if r := p.rule(rn); r != nil {
						rules = append(rules, r)
					}
				}
			}
		}
	}
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool {
			a, b := p.errs[i], p.errs[j]
			return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
		})
		return rules, p.errs
	}
	return rules, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	var n int
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscan(m[1], &n)
	}
	return n
}

type parser struct {
	file string
	errs Errors
}

func (p *parser) fail(n *yaml.Node, msg string) {
	p.errs = append(p.errs, Error{File: p.file, Line: n.Line, Column: n.Column, Msg: msg})
}

// rule decodes and validates one rule; nil if it has problems.
func (p *parser) rule(n *yaml.Node) *Rule {
	before := len(p.errs)
	if n.Kind != yaml.MappingNode {
		p.fail(n, "a rule must be a mapping")
		return nil
	}
	r := &Rule{File: p.file, Line: n.Line, Column: n.Column, TimestampField: "@timestamp"}
	keys := map[string]*yaml.Node{} // key -> value
	at := map[string]*yaml.Node{}   // key -> key node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := keys[k.Value]; dup {
			p.fail(k, fmt.Sprintf("duplicate key %s (first at line %d)", k.Value, at[k.Value].Line))
			continue
		}
		keys[k.Value], at[k.Value] = v, k
	}
	str := func(key string, dst *string) {
		if v := keys[key]; v != nil {
			if v.Kind != yaml.ScalarNode {
				p.fail(v, key+" must be a string")
				return
			}
			*dst = v.Value
		}
	}
	str("name", &r.Name)
	str("type", &r.Type)
	label := "rule"
	if r.Name != "" {
		label = "rule " + r.Name
	}
	fail := func(key, format string, args ...any) {
		node := at[key]
		if node == nil {
			node = n
		}
		p.fail(node, label+": "+key+": "+fmt.Sprintf(format, args...))
	}
	switch {
	case keys["name"] == nil:
		fail("name", "required")
	case !nameRE.MatchString(r.Name):
		fail("name", "must be letters, digits, _ : . - (not starting with a digit), got %q", r.Name)
	}
	allowed := typeKey[r.Type]
	if keys["type"] == nil {
		fail("type", "required (one of frequency, threshold, baseline, absence, spike)")
	} else if allowed == nil {
		fail("type", "must be one of frequency, threshold, baseline, absence, spike, got %q", r.Type)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if slices.Contains(common, k) || slices.Contains(allowed, k) {
			continue
		}
		var types []string
		for t, ks := range typeKey {
			if slices.Contains(ks, k) {
				types = append(types, t)
			}
		}
		sort.Strings(types)
		if len(types) > 0 && allowed != nil {
			fail(k, "only for type %s", strings.Join(types, " or "))
		} else if len(types) == 0 {
			fail(k, "unknown key")
		}
	}
	decode := func(key string, dst any, what string) bool {
		v := keys[key]
		if v == nil {
			return false
		}
		if err := v.Decode(dst); err != nil {
			fail(key, "must be %s", what)
			return false
		}
		return true
	}
	dur := func(key string, dst *time.Duration) bool {
		v := keys[key]
		if v == nil {
			return false
		}
		var d config.Duration
		if v.Kind != yaml.ScalarNode || d.UnmarshalText([]byte(v.Value)) != nil {
			fail(key, "must be a duration (e.g. 30s, 5m, 1h, 7d), got %q", v.Value)
			return false
		}
		if d < 0 {
			fail(key, "must not be negative")
			return false
		}
		*dst = time.Duration(d)
		return true
	}
	str("index", &r.Index)
	if r.Index == "" {
		fail("index", "required (an index pattern such as logs-*)")
	} else if strings.ContainsAny(r.Index, " \"\\/<>|#") {
		fail("index", "not an index pattern: %q", r.Index)
	}
	str("timestamp_field", &r.TimestampField)
	if keys["filter"] != nil {
		var f map[string]any
		if !decode("filter", &f, "a query (a mapping such as { match: { message: ERROR } })") {
		} else if len(f) != 1 {
			fail("filter", "must hold exactly one query clause, got %d", len(f))
		} else {
			r.Filter = f
		}
	}
	decode("group_by", &r.GroupBy, "a list of field names")
	for _, g := range append(slices.Clone(r.GroupBy), r.TimestampField) {
		if !fieldRE.MatchString(g) {
			fail("group_by", "not a field name: %q", g)
		}
	}
	if !dur("window", &r.Window) {
		if keys["window"] == nil {
			fail("window", "required")
		}
	} else if r.Window < time.Second {
		fail("window", "must be at least 1s")
	}
	dur("for", &r.For)
	dur("keep_firing_for", &r.KeepFiringFor)
	str("severity", &r.Severity)
	decode("labels", &r.Labels, "a mapping of strings")
	decode("annotations", &r.Annotations, "a mapping of strings")
	for k := range r.Labels {
		if k == "alertname" {
			fail("labels", "alertname is the rule's name and cannot be set")
		}
	}
	r.templates = map[string]*template.Template{}
	for _, k := range slices.Sorted(maps.Keys(r.Annotations)) {
		t, err := template.New(k).Funcs(Funcs).Option("missingkey=zero").Parse(r.Annotations[k])
		if err != nil {
			fail("annotations", "%s: %v", k, err)
			continue
		}
		r.templates[k] = t
	}

	switch r.Type {
	case Frequency:
		decode("min_count", &r.MinCount, "an integer")
		decode("max_count", &r.MaxCount, "an integer")
		switch {
		case r.MinCount == nil && r.MaxCount == nil:
			fail("min_count", "min_count or max_count is required")
		case r.MinCount != nil && r.MaxCount != nil:
			fail("max_count", "cannot be used together with min_count")
		case r.MinCount != nil && *r.MinCount < 1:
			fail("min_count", "must be at least 1")
		case r.MaxCount != nil && *r.MaxCount < 0:
			fail("max_count", "must not be negative")
		}
	case Threshold, Baseline:
		p.aggregation(r, keys, decode, fail)
		if r.Type == Threshold {
			decode("above", &r.Above, "a number")
			decode("below", &r.Below, "a number")
			decode("clear", &r.Clear, "a number")
			switch {
			case r.Above == nil && r.Below == nil:
				fail("above", "above or below is required")
			case r.Above != nil && r.Below != nil && *r.Below >= *r.Above:
				fail("below", "must be less than above")
			case r.Clear != nil && r.Above != nil && r.Below != nil:
				fail("clear", "needs one bound (above or below), not both")
			case r.Clear != nil && r.Above != nil && *r.Clear > *r.Above:
				fail("clear", "must not be more than above (%g)", *r.Above)
			case r.Clear != nil && r.Below != nil && *r.Clear < *r.Below:
				fail("clear", "must not be less than below (%g)", *r.Below)
			}
			break
		}
		decode("history_hours", &r.HistoryHours, "an integer")
		decode("history_days", &r.HistoryDays, "an integer")
		switch {
		case r.HistoryHours == 0 && r.HistoryDays == 0:
			fail("history_hours", "history_hours or history_days is required")
		case r.HistoryHours != 0 && r.HistoryDays != 0:
			fail("history_days", "cannot be used together with history_hours")
		case r.HistoryHours < 0 || r.HistoryHours > 24*31:
			fail("history_hours", "must be between 1 and 744")
		case r.HistoryDays < 0 || r.HistoryDays > 90:
			fail("history_days", "must be between 1 and 90")
		case r.HistoryHours > 0 && time.Duration(r.HistoryHours)*time.Hour/max(r.Window, time.Second) > 1000:
			fail("history_hours", "gives more than 1000 history windows of %s", r.Window)
		case r.HistoryHours > 0 && time.Duration(r.HistoryHours)*time.Hour < 2*r.Window:
			fail("history_hours", "must hold at least two windows of %s", r.Window)
		}
		var band []float64
		decode("stddev", &r.Stddev, "a number")
		decode("band", &band, "a list of two percentiles, such as [5, 95]")
		switch {
		case r.Stddev == 0 && band == nil:
			fail("stddev", "stddev or band is required")
		case r.Stddev != 0 && band != nil:
			fail("band", "cannot be used together with stddev")
		case r.Stddev < 0:
			fail("stddev", "must be positive")
		case band != nil && (len(band) != 2 || band[0] < 0 || band[1] > 100 || band[0] >= band[1]):
			fail("band", "must be [low, high] percentiles with 0 <= low < high <= 100")
		case band != nil:
			r.Band = [2]float64{band[0], band[1]}
		}
		r.MinHistory = 5
		if decode("min_history", &r.MinHistory, "an integer") && r.MinHistory < 2 {
			fail("min_history", "must be at least 2")
		}
		p.direction(r, keys, "both", fail)
	case Absence:
		if !dur("lookback", &r.Lookback) {
			if keys["lookback"] == nil {
				fail("lookback", "required (how far back a group counts as known)")
			}
		} else if r.Lookback <= r.Window {
			fail("lookback", "must be longer than window (%s)", r.Window)
		}
	case Spike:
		decode("ratio", &r.Ratio, "a number")
		if keys["ratio"] == nil {
			fail("ratio", "required")
		} else if r.Ratio <= 1 || math.IsInf(r.Ratio, 0) {
			fail("ratio", "must be more than 1")
		}
		one := int64(1)
		r.MinCount = &one
		if decode("min_count", &r.MinCount, "an integer") && *r.MinCount < 1 {
			fail("min_count", "must be at least 1")
		}
		p.direction(r, keys, "up", fail)
	}
	if len(p.errs) > before {
		return nil
	}
	return r
}

func (p *parser) aggregation(r *Rule, keys map[string]*yaml.Node, decode func(string, any, string) bool, fail func(string, string, ...any)) {
	r.Aggregation = "avg"
	if r.Type == Baseline {
		r.Aggregation = "count"
	}
	decode("aggregation", &r.Aggregation, "a string")
	decode("field", &r.Field, "a field name")
	switch r.Aggregation {
	case "avg", "min", "max", "sum", "percentile":
		if r.Field == "" {
			fail("field", "required for aggregation %s", r.Aggregation)
		} else if !fieldRE.MatchString(r.Field) {
			fail("field", "not a field name: %q", r.Field)
		}
	case "count":
		if keys["field"] != nil {
			fail("field", "not used by aggregation count (which counts documents)")
		}
	default:
		fail("aggregation", "must be one of avg, min, max, sum, count, percentile, got %q", r.Aggregation)
	}
	if r.Aggregation == "percentile" {
		if !decode("percentile", &r.Percentile, "a number") {
			fail("percentile", "required for aggregation percentile")
		} else if r.Percentile <= 0 || r.Percentile >= 100 {
			fail("percentile", "must be between 0 and 100 (exclusive)")
		}
	} else if keys["percentile"] != nil {
		fail("percentile", "only for aggregation percentile")
	}
}

func (p *parser) direction(r *Rule, keys map[string]*yaml.Node, def string, fail func(string, string, ...any)) {
	r.Direction = def
	if v := keys["direction"]; v != nil {
		r.Direction = v.Value
	}
	if r.Direction != "up" && r.Direction != "down" && r.Direction != "both" {
		fail("direction", "must be up, down or both, got %q", r.Direction)
	}
}
