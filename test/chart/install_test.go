package chart

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// resourcePath is the API path of a rendered object.
func resourcePath(t *testing.T, o obj, ns string) string {
	t.Helper()
	plural := map[string]string{
		"ConfigMap": "configmaps", "Service": "services", "ServiceAccount": "serviceaccounts", "Secret": "secrets",
		"DaemonSet": "daemonsets", "Deployment": "deployments", "StatefulSet": "statefulsets",
		"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "Role": "roles", "RoleBinding": "rolebindings",
		"PodDisruptionBudget": "poddisruptionbudgets", "HorizontalPodAutoscaler": "horizontalpodautoscalers",
		"PodMonitor": "podmonitors", "PrometheusRule": "prometheusrules",
	}[o.kind()]
	if plural == "" {
		t.Fatalf("no API path known for kind %s", o.kind())
	}
	gv := str(o, "apiVersion")
	base := "/apis/" + gv
	if gv == "v1" {
		base = "/api/v1"
	}
	if o.kind() == "ClusterRole" || o.kind() == "ClusterRoleBinding" {
		return base + "/" + plural + "/" + o.name()
	}
	return base + "/namespaces/" + ns + "/" + plural + "/" + o.name()
}

// subset reports where want (rendered) is not contained in got (read back
// from the API server): a field the server dropped or changed.
func subset(want, got any, path string) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %v read back as %v", path, want, got)}
		}
		var diffs []string
		for k, v := range w {
			diffs = append(diffs, subset(v, g[k], path+"."+k)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: %v read back as %v", path, want, got)}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, subset(w[i], g[i], fmt.Sprintf("%s[%d]", path, i))...)
		}
		return diffs
	default:
		// The server omits zero values (omitempty): false, 0 and "" read back absent.
		if got == nil && (want == false || want == 0.0 || want == "") {
			return nil
		}
		if !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s: %v read back as %v", path, want, got)}
		}
		return nil
	}
}

// readBack GETs every object of manifest and checks that the API server
// kept every field the chart set; it returns the live objects by kind/name.
func readBack(t *testing.T, api *harness.KubeAPI, manifest, ns string) map[string]obj {
	t.Helper()
	live := map[string]obj{}
	for _, o := range parse(t, manifest) {
		var got obj
		if _, err := api.Do(http.MethodGet, resourcePath(t, o, ns), "", nil, &got); err != nil {
			t.Errorf("read back %s %s: %v", o.kind(), o.name(), err)
			continue
		}
		for _, d := range subset(map[string]any(o), map[string]any(got), o.kind()+"/"+o.name()) {
			t.Errorf("API server changed or dropped %s", d)
		}
		live[o.kind()+"/"+o.name()] = got
	}
	return live
}

// gone checks that no object of manifest is left.
func gone(t *testing.T, api *harness.KubeAPI, manifest, ns string) {
	t.Helper()
	for _, o := range parse(t, manifest) {
		if code, _ := api.Do(http.MethodGet, resourcePath(t, o, ns), "", nil, nil); code != http.StatusNotFound {
			t.Errorf("after uninstall %s %s: HTTP %d, want 404", o.kind(), o.name(), code)
		}
	}
}

func suffix(t *testing.T) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestInstallUpgradeUninstall installs the quick start into a real
// kube-apiserver, reads every object back, upgrades to a StatefulSet with a
// changed configuration (the Deployment goes, checksum/config changes),
// and uninstalls, leaving nothing of either revision.
func TestInstallUpgradeUninstall(t *testing.T) {
	api := harness.SharedKube(t)
	rel := "ferry-" + suffix(t)
	ns := "chart-" + rel
	kc := []string{"--kubeconfig", api.Kubeconfig, "--namespace", ns}
	chart := chartDir(t)
	values := scenarios(t)["quickstart"]

	if _, err := runHelm(t, append([]string{"install", rel, chart, "--create-namespace", "-f", values}, kc...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		runHelm(t, append([]string{"uninstall", rel}, kc...)...) // after a failure; a no-op when uninstalled
		api.Do(http.MethodDelete, "/api/v1/namespaces/"+ns, "", nil, nil)
	})
	m1, err := runHelm(t, append([]string{"get", "manifest", rel}, kc...)...)
	if err != nil {
		t.Fatal(err)
	}
	live := readBack(t, api, m1, ns)
	for _, want := range []string{"DaemonSet/" + rel + "-agent", "Deployment/" + rel + "-aggregator", "ClusterRole/" + rel + "-agent",
		"Role/" + rel + "-aggregator", "PodDisruptionBudget/" + rel + "-aggregator", "Service/" + rel + "-aggregator-headless", "ConfigMap/" + rel} {
		if live[want] == nil {
			t.Errorf("%s not installed", want)
		}
	}
	for k, v := range live[("ConfigMap/" + rel)]["data"].(map[string]any) {
		if m := secretKey.FindString(v.(string)); m != "" {
			t.Errorf("installed ConfigMap key %s holds %q", k, m)
		}
	}
	sum1 := str(live["DaemonSet/"+rel+"-agent"], "spec", "template", "metadata", "annotations", "checksum/config")

	if _, err := runHelm(t, append([]string{"upgrade", rel, chart, "-f", values,
		"--set", "aggregator.persistence.enabled=true", "--set", "agent.logLevel=debug"}, kc...)...); err != nil {
		t.Fatal(err)
	}
	m2, err := runHelm(t, append([]string{"get", "manifest", rel}, kc...)...)
	if err != nil {
		t.Fatal(err)
	}
	live = readBack(t, api, m2, ns)
	if live["StatefulSet/"+rel+"-aggregator"] == nil {
		t.Error("upgrade: no StatefulSet")
	}
	if code, _ := api.Do(http.MethodGet, "/apis/apps/v1/namespaces/"+ns+"/deployments/"+rel+"-aggregator", "", nil, nil); code != http.StatusNotFound {
		t.Errorf("upgrade to persistence: the Deployment is still there (HTTP %d)", code)
	}
	if sum2 := str(live["DaemonSet/"+rel+"-agent"], "spec", "template", "metadata", "annotations", "checksum/config"); sum2 == sum1 || sum2 == "" {
		t.Errorf("checksum/config %q after a configuration change, was %q", sum2, sum1)
	}
	var status struct {
		Version int `json:"version"`
		Info    struct {
			Status string `json:"status"`
		} `json:"info"`
	}
	out, err := runHelm(t, append([]string{"status", rel, "-o", "json"}, kc...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil || status.Version != 2 || status.Info.Status != "deployed" {
		t.Errorf("helm status after upgrade: %+v %v", status, err)
	}

	if _, err := runHelm(t, append([]string{"uninstall", rel, "--wait", "--timeout", "60s"}, kc...)...); err != nil {
		t.Fatal(err)
	}
	gone(t, api, m1, ns)
	gone(t, api, m2, ns)
	var secrets struct {
		Items []obj `json:"items"`
	}
	api.Must(t, http.MethodGet, "/api/v1/namespaces/"+ns+"/secrets?labelSelector=owner%3Dhelm", nil, &secrets, false)
	if len(secrets.Items) != 0 {
		t.Errorf("helm release secrets left after uninstall: %d", len(secrets.Items))
	}
}

// TestInstallMonitoringWithCRDs: with the monitoring.coreos.com/v1 CRDs
// served, Helm's capabilities see the API and the chart creates its
// PodMonitors and PrometheusRule; uninstall removes them.
func TestInstallMonitoringWithCRDs(t *testing.T) {
	api := harness.SharedKube(t)
	for _, kind := range []string{"PodMonitor", "PrometheusRule"} {
		plural := strings.ToLower(kind) + "s"
		crd := map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": plural + ".monitoring.coreos.com"},
			"spec": map[string]any{
				"group": "monitoring.coreos.com", "scope": "Namespaced",
				"names": map[string]any{"kind": kind, "plural": plural, "singular": strings.ToLower(kind), "listKind": kind + "List"},
				"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
					"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
			},
		}
		api.Must(t, http.MethodPost, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, nil, true)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rl struct {
			Resources []struct {
				Name string `json:"name"`
			} `json:"resources"`
		}
		if _, err := api.Do(http.MethodGet, "/apis/monitoring.coreos.com/v1", "", nil, &rl); err == nil && len(rl.Resources) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("monitoring.coreos.com/v1 not served 30 s after creating its CRDs")
		}
		time.Sleep(100 * time.Millisecond)
	}

	rel := "ferry-" + suffix(t)
	ns := "chart-" + rel
	kc := []string{"--kubeconfig", api.Kubeconfig, "--namespace", ns}
	if _, err := runHelm(t, append([]string{"install", rel, chartDir(t), "--create-namespace", "-f", scenarios(t)["full-control"]}, kc...)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		runHelm(t, append([]string{"uninstall", rel}, kc...)...)
		api.Do(http.MethodDelete, "/api/v1/namespaces/"+ns, "", nil, nil)
	})
	m, err := runHelm(t, append([]string{"get", "manifest", rel}, kc...)...)
	if err != nil {
		t.Fatal(err)
	}
	live := readBack(t, api, m, ns)
	for _, want := range []string{"PodMonitor/" + rel + "-agent", "PodMonitor/" + rel + "-aggregator", "PrometheusRule/" + rel} {
		if live[want] == nil {
			t.Errorf("%s not installed although the API is served", want)
		}
	}
	if _, err := runHelm(t, append([]string{"uninstall", rel, "--wait", "--timeout", "60s"}, kc...)...); err != nil {
		t.Fatal(err)
	}
	gone(t, api, m, ns)
}
