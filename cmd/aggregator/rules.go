package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferrylogs/ferry/alerting/alert"
	"github.com/ferrylogs/ferry/alerting/esq"
	"github.com/ferrylogs/ferry/alerting/eval"
	"github.com/ferrylogs/ferry/alerting/rules"
	"github.com/ferrylogs/ferry/config"
)

func rulesUsage(w io.Writer) {
	fmt.Fprint(w, `usage: aggregator rules check DIR [--config FILE]   validate rule files (every error, file:line:col);
                                                   with --config, warn about fields unknown to the
                                                   configured Elasticsearch's index templates
       aggregator rules test FILE [--config FILE] [--es URL]
                                                   run a rule test file against a real Elasticsearch
                                                   (a temporary index; default $FERRY_ES_URL, else the
                                                   configured alerting connection)
`)
}

// rulesCmd is `aggregator rules check|test`.
func rulesCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" && args[0] != "test" {
		rulesUsage(stderr)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("rules "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { rulesUsage(stderr) }
	cfgPath := fs.String("config", "", "aggregator configuration (YAML)")
	esURL := fs.String("es", "", "Elasticsearch URL (rules test)")
	// The path may come before or after the flags.
	var pos []string
	rest := args[1:]
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 1 {
		rulesUsage(stderr)
		return 2
	}
	var cfg *config.Aggregator
	if *cfgPath != "" {
		var err error
		if cfg, err = config.LoadAggregator(*cfgPath); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if sub == "check" {
		return rulesCheck(ctx, pos[0], cfg, stdout, stderr)
	}
	conn := esConnection(cfg)
	if *esURL != "" {
		conn = config.AlertingElasticsearch{URLs: []string{*esURL}}
	}
	return rulesTest(ctx, pos[0], conn, stdout, stderr)
}

// esConnection is the connection alerting uses with cfg: its alerting
// block's, else the first elasticsearch sink's, else $FERRY_ES_URL or
// http://127.0.0.1:9200.
func esConnection(cfg *config.Aggregator) config.AlertingElasticsearch {
	if u := os.Getenv("FERRY_ES_URL"); cfg == nil && u != "" {
		return config.AlertingElasticsearch{URLs: []string{u}}
	}
	if cfg != nil {
		if cfg.Alerting != nil {
			return cfg.Alerting.Elasticsearch
		}
		for _, s := range cfg.Sinks {
			if s.Type == "elasticsearch" {
				return config.AlertingElasticsearch{URLs: s.URLs, Username: s.Username, Password: s.Password, APIKey: s.APIKey, CAFile: s.CAFile, TLSSkipVerify: s.TLSSkipVerify}
			}
		}
	}
	return config.AlertingElasticsearch{URLs: []string{"http://127.0.0.1:9200"}}
}

// rulesCheck validates dir offline; with cfg it also checks each rule's
// field names against the mappings of the index templates (and existing
// indices) its index pattern covers, warning about unknown ones.
func rulesCheck(ctx context.Context, dir string, cfg *config.Aggregator, stdout, stderr io.Writer) int {
	var rs []*rules.Rule
	var err error
	if fi, serr := os.Stat(dir); serr == nil && !fi.IsDir() {
		rs, err = rules.LoadFiles([]string{dir})
	} else {
		rs, err = rules.LoadDir(dir)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if cfg != nil {
		c, err := esq.New(esConnection(cfg))
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		warnings, err := unknownFields(ctx, c, rs)
		if err != nil {
			fmt.Fprintln(stderr, "cannot check field names:", err)
			return 1
		}
		for _, w := range warnings {
			fmt.Fprintln(stderr, w)
		}
	}
	fmt.Fprintf(stdout, "%s: %d rules ok\n", dir, len(rs))
	return 0
}

// unknownFields returns a warning per field a rule uses that neither an
// index template covering its index nor an existing index maps.
func unknownFields(ctx context.Context, c *esq.Client, rs []*rules.Rule) ([]string, error) {
	var tpl struct {
		IndexTemplates []struct {
			Name          string `json:"name"`
			IndexTemplate struct {
				IndexPatterns []string `json:"index_patterns"`
			} `json:"index_template"`
		} `json:"index_templates"`
	}
	if err := c.Do(ctx, http.MethodGet, "/_index_template", nil, &tpl); err != nil && !esq.IsNotFound(err) {
		return nil, err
	}
	simulated := map[string]map[string]bool{} // template -> fields
	var warnings []string
	for _, r := range rs {
		known := map[string]bool{}
		for _, t := range tpl.IndexTemplates {
			if !patternsOverlap(r.Index, t.IndexTemplate.IndexPatterns) {
				continue
			}
			if simulated[t.Name] == nil {
				var sim struct {
					Template struct {
						Mappings map[string]any `json:"mappings"`
					} `json:"template"`
				}
				if err := c.Do(ctx, http.MethodPost, "/_index_template/_simulate/"+t.Name, nil, &sim); err != nil {
					return nil, err
				}
				simulated[t.Name] = map[string]bool{}
				mappingFields(sim.Template.Mappings, "", simulated[t.Name])
			}
			maps.Copy(known, simulated[t.Name])
		}
		var caps struct {
			Fields map[string]any `json:"fields"`
		}
		if err := c.Do(ctx, http.MethodGet, "/"+r.Index+"/_field_caps?fields=*&ignore_unavailable=true&allow_no_indices=true", nil, &caps); err == nil {
			for f := range caps.Fields {
				known[f] = true
			}
		}
		for _, f := range r.Fields() {
			if !known[f] {
				warnings = append(warnings, fmt.Sprintf("%s:%d:%d: warning: rule %s: field %s is not in the mappings of %s", r.File, r.Line, r.Column, r.Name, f, r.Index))
			}
		}
	}
	return warnings, nil
}

// patternsOverlap reports whether a rule's index patterns (comma
// separated) and a template's may name the same index: one's literal
// prefix (up to its first *) is a prefix of the other's.
func patternsOverlap(index string, tpl []string) bool {
	for _, p := range strings.Split(index, ",") {
		pp, _, _ := strings.Cut(strings.TrimSpace(p), "*")
		for _, t := range tpl {
			tp, _, _ := strings.Cut(t, "*")
			if strings.HasPrefix(pp, tp) || strings.HasPrefix(tp, pp) {
				return true
			}
		}
	}
	return false
}

// mappingFields adds the dotted paths of a mapping's properties (and
// multi-fields) to out.
func mappingFields(m map[string]any, prefix string, out map[string]bool) {
	props, _ := m["properties"].(map[string]any)
	for name, v := range props {
		sub, _ := v.(map[string]any)
		path := prefix + name
		if _, obj := sub["properties"]; !obj || sub["type"] != nil {
			out[path] = true
		}
		mappingFields(sub, path+".", out)
		if fs, ok := sub["fields"].(map[string]any); ok {
			for f := range fs {
				out[path+"."+f] = true
			}
		}
	}
}

// ruleTestFile is a rule test file, in the spirit of promtool test rules.
type ruleTestFile struct {
	// RuleFiles are relative to the test file.
	RuleFiles []string `yaml:"rule_files"`
	// Delay as alerting.delay (default 0s in tests).
	Delay string     `yaml:"delay"`
	Tests []ruleTest `yaml:"tests"`
}

type ruleTest struct {
	Name string `yaml:"name"`
	// Documents are indexed into a temporary index every rule queries.
	Documents []fixtureDoc `yaml:"documents"`
	// Evaluations run in order, state carried from one to the next.
	Evaluations []evaluation `yaml:"evaluations"`
}

type fixtureDoc struct {
	// At is the time relative to the test's start, e.g. -5m or 30s.
	At string `yaml:"at"`
	// Repeat indexes the document this many times, Every apart (default 1s).
	Repeat int            `yaml:"repeat"`
	Every  string         `yaml:"every"`
	Doc    map[string]any `yaml:"doc"`
}

type evaluation struct {
	At     string          `yaml:"at"`
	Alerts []expectedAlert `yaml:"alerts"` // every alert pending or firing
}

type expectedAlert struct {
	State       string            `yaml:"state"` // default firing
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// rulesTest runs the tests of file against Elasticsearch; 0 when all pass.
func rulesTest(ctx context.Context, file string, conn config.AlertingElasticsearch, stdout, stderr io.Writer) int {
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var tf ruleTestFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return 1
	}
	var files []string
	for _, f := range tf.RuleFiles {
		if !filepath.IsAbs(f) {
			f = filepath.Join(filepath.Dir(file), f)
		}
		files = append(files, f)
	}
	if _, err := rules.LoadFiles(files); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	delay := time.Duration(0)
	if tf.Delay != "" {
		var d config.Duration
		if err := d.UnmarshalText([]byte(tf.Delay)); err != nil {
			fmt.Fprintf(stderr, "%s: delay: %v\n", file, err)
			return 1
		}
		delay = time.Duration(d)
	}
	c, err := esq.New(conn)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	failed := 0
	for _, t := range tf.Tests {
		if err := runRuleTest(ctx, c, files, delay, t); err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL %s\n  %s\n", t.Name, strings.ReplaceAll(err.Error(), "\n", "\n  "))
			continue
		}
		fmt.Fprintf(stdout, "ok   %s\n", t.Name)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d of %d tests failed\n", failed, len(tf.Tests))
		return 1
	}
	return 0
}

// testIndexMapping maps strings as keyword (message as text), numbers as
// double and @timestamp as date_nanos, as Ferry's data streams do.
var testIndexMapping = map[string]any{"mappings": map[string]any{
	"dynamic_templates": []any{
		map[string]any{"numbers": map[string]any{"match_mapping_type": "long", "mapping": map[string]any{"type": "double"}}},
		map[string]any{"strings": map[string]any{"match_mapping_type": "string", "mapping": map[string]any{"type": "keyword", "ignore_above": 1024}}},
	},
	"properties": map[string]any{"@timestamp": map[string]any{"type": "date_nanos"}, "message": map[string]any{"type": "text"}},
}}

func runRuleTest(ctx context.Context, c *esq.Client, files []string, delay time.Duration, t ruleTest) error {
	var b [6]byte
	rand.Read(b[:])
	index := "ferry-rules-test-" + hex.EncodeToString(b[:])
	if err := c.Do(ctx, http.MethodPut, "/"+index, testIndexMapping, nil); err != nil {
		return fmt.Errorf("create the test index: %w", err)
	}
	defer c.Do(context.WithoutCancel(ctx), http.MethodDelete, "/"+index, nil, nil)
	start := time.Now().Truncate(time.Minute)
	rel := func(s string) (time.Time, error) {
		neg := strings.HasPrefix(s, "-")
		var d config.Duration
		if err := d.UnmarshalText([]byte(strings.TrimPrefix(s, "-"))); err != nil {
			return time.Time{}, err
		}
		if neg {
			d = -d
		}
		return start.Add(time.Duration(d)), nil
	}
	var bulk bytes.Buffer
	for i, d := range t.Documents {
		at, err := rel(d.At)
		if err != nil {
			return fmt.Errorf("documents[%d].at: %w", i, err)
		}
		every := time.Second
		if d.Every != "" {
			var e config.Duration
			if err := e.UnmarshalText([]byte(d.Every)); err != nil {
				return fmt.Errorf("documents[%d].every: %w", i, err)
			}
			every = time.Duration(e)
		}
		for n := range max(d.Repeat, 1) {
			doc := maps.Clone(d.Doc)
			if doc == nil {
				doc = map[string]any{}
			}
			doc["@timestamp"] = at.Add(time.Duration(n) * every).UTC().Format(time.RFC3339Nano)
			j, err := json.Marshal(doc)
			if err != nil {
				return fmt.Errorf("documents[%d]: %w", i, err)
			}
			bulk.WriteString(`{"create":{}}` + "\n")
			bulk.Write(j)
			bulk.WriteByte('\n')
		}
	}
	if bulk.Len() > 0 {
		var res struct {
			Errors bool `json:"errors"`
			Items  []map[string]struct {
				Error json.RawMessage `json:"error"`
			} `json:"items"`
		}
		if err := c.Do(ctx, http.MethodPost, "/"+index+"/_bulk?refresh=true", bulk.Bytes(), &res); err != nil {
			return fmt.Errorf("index the documents: %w", err)
		}
		if res.Errors {
			for _, it := range res.Items {
				for _, r := range it {
					if r.Error != nil {
						return fmt.Errorf("index the documents: %s", r.Error)
					}
				}
			}
		}
	}
	rs, err := rules.LoadFiles(files)
	if err != nil {
		return err
	}
	for _, r := range rs {
		r.Index = index
	}
	ev := eval.New(eval.Options{Client: c, Interval: time.Minute, Delay: delay, MaxCatchUp: -1})
	ev.SetRules(rs)
	var problems []string
	for i, e := range t.Evaluations {
		at, err := rel(e.At)
		if err != nil {
			return fmt.Errorf("evaluations[%d].at: %w", i, err)
		}
		if err := ev.Step(ctx, at); err != nil {
			return fmt.Errorf("evaluation at %s: %w", e.At, err)
		}
		if diff := compareAlerts(ev.Active(), e.Alerts); diff != "" {
			problems = append(problems, fmt.Sprintf("at %s: %s", e.At, diff))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// compareAlerts returns "" when got holds exactly the expected alerts
// (labels equal; annotations equal for those given), else what differs.
func compareAlerts(got []alert.Alert, want []expectedAlert) string {
	key := func(state string, labels map[string]string) string {
		ks := slices.Sorted(maps.Keys(labels))
		parts := make([]string, len(ks))
		for i, k := range ks {
			parts[i] = fmt.Sprintf("%s=%q", k, labels[k])
		}
		return state + "{" + strings.Join(parts, ", ") + "}"
	}
	have := map[string]alert.Alert{}
	for _, a := range got {
		have[key(string(a.State), a.Labels)] = a
	}
	var diffs []string
	for _, w := range want {
		st := w.State
		if st == "" {
			st = string(alert.Firing)
		}
		k := key(st, w.Labels)
		a, ok := have[k]
		if !ok {
			diffs = append(diffs, "missing "+k)
			continue
		}
		delete(have, k)
		for name, v := range w.Annotations {
			if a.Annotations[name] != v {
				diffs = append(diffs, fmt.Sprintf("%s: annotation %s is %q, want %q", k, name, a.Annotations[name], v))
			}
		}
	}
	extra := slices.Sorted(maps.Keys(have))
	for _, k := range extra {
		diffs = append(diffs, "unexpected "+k)
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}
