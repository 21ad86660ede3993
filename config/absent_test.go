package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// Files a configuration names may exist only on the host it is meant for:
// validate warns about missing ones and passes; any other problem (and the
// process's own load) still fails.
func TestValidateResultAbsentFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	cases := []struct {
		name, yaml string
		agent      bool
		ok         bool
		want       []string
	}{
		{"metrics roots missing", "metrics: {enabled: true, host_root: " + missing + ", cgroup_root: " + missing + "}\n", true, true,
			[]string{"warning: a.yaml:1:26: metrics.host_root: stat " + missing, "metrics.cgroup_root", "a.yaml: ok"}},
		{"kubeconfig missing", "kubernetes: {kubeconfig: " + missing + "}\n", true, true,
			[]string{"warning: a.yaml:1:14: kubernetes.kubeconfig", "a.yaml: ok"}},
		{"missing file and a real error", "metrics: {enabled: true, host_root: " + missing + "}\ninputs: [{type: container, poll_interval: 1ns}]\n", true, false,
			[]string{"inputs[0].poll_interval: must be at least 10ms", "metrics.host_root"}},
		{"geoip database missing", "enrich: {geoip: {city_db: " + missing + "}}\n", false, true,
			[]string{"warning: a.yaml:1:18: enrich.geoip.city_db", "a.yaml: ok"}},
		{"password file missing", "sinks: [{type: elasticsearch, urls: ['http://es:9200'], username: u, password_file: " + missing + "}]\n", false, true,
			[]string{"sinks[0].password_file: cannot read", "a.yaml: ok"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.agent {
				_, err = ParseAgent("a.yaml", []byte(c.yaml))
			} else {
				_, err = ParseAggregator("a.yaml", []byte(c.yaml))
			}
			if err == nil {
				t.Fatal("loading succeeded: a missing file must stop the process")
			}
			out, ok := ValidateResult("a.yaml", err)
			if ok != c.ok {
				t.Errorf("ok %v, want %v:\n%s", ok, c.ok, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if out, ok := ValidateResult("a.yaml", nil); !ok || out != "a.yaml: ok\n" {
		t.Errorf("no error: %q %v", out, ok)
	}
}
