package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrylogs/ferry/alerting/esq"
	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/test/harness"
)

// The committed example rules pass their committed rule tests against the
// real Elasticsearch.
func TestRulesTestExample(t *testing.T) {
	url := harness.ESURL(t)
	var out, errOut bytes.Buffer
	code := rulesCmd([]string{"test", "../../deploy/rules/tests/example.test.yml", "--es", url}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if n := strings.Count(out.String(), "ok   "); n != 5 {
		t.Errorf("%d tests passed, want 5:\n%s", n, out.String())
	}
}

// A wrong expectation fails, naming what differs.
func TestRulesTestReportsDifferences(t *testing.T) {
	url := harness.ESURL(t)
	dir := t.TempDir()
	abs, _ := filepath.Abs("../../deploy/rules/example.yaml")
	os.WriteFile(filepath.Join(dir, "t.yml"), []byte(`rule_files: [`+abs+`]
tests:
  - name: wrong
    documents:
      - { at: -1m, repeat: 60, every: 1s, doc: { message: "ERROR x", service.name: pay, service.environment: prod } }
    evaluations:
      - at: 0s
        alerts:
          - labels: { alertname: ErrorBurst, severity: warning, service.name: pay, service.environment: prod }
            annotations: { summary: "59 errors" }
          - labels: { alertname: ErrorBurst, service.name: web }
`), 0o644)
	var out, errOut bytes.Buffer
	if code := rulesCmd([]string{"test", filepath.Join(dir, "t.yml"), "--es", url}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		"FAIL wrong",
		`annotation summary is "60 errors in 5m from pay", want "59 errors"`,
		`missing firing{alertname="ErrorBurst", service.name="web"}`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRulesCheck(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := rulesCmd([]string{"check", "../../deploy/rules"}, &out, &errOut); code != 0 {
		t.Fatalf("example rules: exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "5 rules ok") {
		t.Errorf("output %q", out.String())
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("rules:\n  - name: A\n    type: threshold\n    index: m-*\n    window: 1m\n    above: 1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte("rules:\n  - {name: B, type: spike, index: logs-*, window: 1m, ratio: 0.5}\n"), 0o644)
	out.Reset()
	errOut.Reset()
	if code := rulesCmd([]string{"check", dir}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		filepath.Join(dir, "a.yaml") + ":2:5: rule A: field: required for aggregation avg",
		filepath.Join(dir, "b.yml") + ":2:55: rule B: ratio: must be more than 1",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("errors lack %q:\n%s", want, errOut.String())
		}
	}
}

// With --config, field names are checked against the index templates of
// the configured Elasticsearch: unknown ones are warnings.
func TestRulesCheckFieldNames(t *testing.T) {
	url := harness.ESURL(t)
	c, err := esq.New(config.AlertingElasticsearch{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	rand.Read(b[:])
	name := "ferry-rulecheck-" + hex.EncodeToString(b[:])
	ctx := context.Background()
	tpl := map[string]any{"index_patterns": []string{name + "-*"}, "priority": 500, "template": map[string]any{"mappings": map[string]any{"properties": map[string]any{
		"@timestamp": map[string]any{"type": "date"},
		"host":       map[string]any{"properties": map[string]any{"name": map[string]any{"type": "keyword"}}},
		"cpu":        map[string]any{"type": "float"},
	}}}}
	if err := c.Do(ctx, http.MethodPut, "/_index_template/"+name, tpl, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Do(ctx, http.MethodDelete, "/_index_template/"+name, nil, nil) })
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("rules:\n  - name: C\n    type: threshold\n    index: "+name+"-*\n    field: cpu\n    group_by: [host.name, host.nmae]\n    window: 1m\n    above: 1\n"), 0o644)
	cfgFile := filepath.Join(dir, "aggregator.yaml")
	os.WriteFile(cfgFile, []byte("sinks:\n  - type: elasticsearch\n    urls: ["+url+"]\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := rulesCmd([]string{"check", filepath.Join(dir, "r.yaml"), "--config", cfgFile}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	want := filepath.Join(dir, "r.yaml") + ":2:5: warning: rule C: field host.nmae is not in the mappings of " + name + "-*"
	if !strings.Contains(errOut.String(), want) || strings.Count(errOut.String(), "warning") != 1 {
		t.Errorf("warnings:\n%s\nwant only %s", errOut.String(), want)
	}
}
