// Package chart tests the Helm chart charts/ferry: golden renderings of the
// ci/*-values.yaml scenarios, invariants of the rendered objects (read-only
// log mounts, non-root, RBAC verbs, no credentials in a ConfigMap), the
// rendered configurations accepted by the binaries, and helm install,
// upgrade and uninstall against a real kube-apiserver.
package chart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// helmVersion is the Helm the tests use, built from the Go module proxy and
// cached under /var/cache/ferry/helm-<version>/ (as test/chart.sh does).
const helmVersion = "v3.22.0"

// kubeVersion is what `helm template` assumes (the API server of the tests).
const kubeVersion = "1.37.2"

var helmOnce struct {
	sync.Once
	path string
	err  error
}

// helm returns the helm binary: $FERRY_HELM, else the cached build, built
// when missing.
func helm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		if p := os.Getenv("FERRY_HELM"); p != "" {
			helmOnce.path = p
			return
		}
		dir := "/var/cache/ferry/helm-" + helmVersion
		helmOnce.path = filepath.Join(dir, "helm")
		if _, err := os.Stat(helmOnce.path); err == nil {
			return
		}
		cmd := exec.Command("go", "install", "helm.sh/helm/v3/cmd/helm@"+helmVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			helmOnce.err = fmt.Errorf("go install helm %s: %v\n%s", helmVersion, err, out)
		}
	})
	if helmOnce.err != nil {
		t.Fatal(helmOnce.err)
	}
	return helmOnce.path
}

// root is the repository.
func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func chartDir(t *testing.T) string { return filepath.Join(root(t), "charts/ferry") }

// runHelm runs helm with args; it returns stdout, or an error with stderr.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(helm(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// render is `helm template ferry charts/ferry -n logging` with args.
func render(t *testing.T, args ...string) (string, error) {
	t.Helper()
	base := []string{"template", "ferry", chartDir(t), "--namespace", "logging", "--kube-version", kubeVersion}
	return runHelm(t, append(base, args...)...)
}

func mustRender(t *testing.T, args ...string) []obj {
	t.Helper()
	out, err := render(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, out)
}

// obj is one Kubernetes object, as JSON decodes it.
type obj map[string]any

func (o obj) kind() string { return str(o, "kind") }
func (o obj) name() string { return str(o, "metadata", "name") }

// parse splits a multi-document manifest into objects (JSON types: numbers
// are float64, as the API server's answers).
func parse(t *testing.T, manifest string) []obj {
	t.Helper()
	var objs []obj
	dec := yaml.NewDecoder(strings.NewReader(manifest))
	for {
		var v map[string]any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("rendered manifest: %v", err)
		}
		if v == nil {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var o obj
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
}

// find returns the object of kind and name, failing the test without it.
func find(t *testing.T, objs []obj, kind, name string) obj {
	t.Helper()
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

func has(objs []obj, kind string) bool {
	for _, o := range objs {
		if o.kind() == kind {
			return true
		}
	}
	return false
}

// at walks maps by string keys and slices by int indices.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				if o, ok2 := v.(obj); ok2 {
					m = o
				} else {
					return nil
				}
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := at(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	s, _ := at(v, path...).([]any)
	return s
}

// strs returns the strings of a list.
func strs(v any, path ...any) []string {
	var out []string
	for _, e := range list(v, path...) {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// podSpec is the pod template's spec of a workload.
func podSpec(o obj) map[string]any {
	m, _ := at(o, "spec", "template", "spec").(map[string]any)
	return m
}

// container returns the container name of a pod spec.
func container(t *testing.T, spec map[string]any, name string) map[string]any {
	t.Helper()
	for _, c := range list(spec, "containers") {
		if str(c, "name") == name {
			return c.(map[string]any)
		}
	}
	t.Fatalf("no container %s", name)
	return nil
}

// configOf returns the key of the chart's ConfigMap.
func configOf(t *testing.T, objs []obj, key string) string {
	t.Helper()
	for _, o := range objs {
		if o.kind() == "ConfigMap" {
			if s := str(o, "data", key); s != "" {
				return s
			}
		}
	}
	t.Fatalf("no ConfigMap holds %s", key)
	return ""
}

// scenarios are the ci/*-values.yaml files, by name without the suffix.
func scenarios(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci/*-values.yaml: %v", err)
	}
	m := map[string]string{}
	for _, f := range files {
		m[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = f
	}
	return m
}
