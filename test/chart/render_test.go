package chart

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/alerting/rules"
	"github.com/ferrylogs/ferry/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// TestGolden re-renders every ci/*-values.yaml scenario (with the
// monitoring.coreos.com/v1 API present) and diffs it against
// charts/ferry/ci/golden/<scenario>.yaml. FERRY_UPDATE_GOLDEN=1 rewrites them.
func TestGolden(t *testing.T) {
	for name, values := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			out, err := render(t, "-f", values, "--api-versions", "monitoring.coreos.com/v1")
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(chartDir(t), "ci", "golden", name+".yaml")
			if os.Getenv("FERRY_UPDATE_GOLDEN") == "1" {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (FERRY_UPDATE_GOLDEN=1 go test ./test/chart/ -run TestGolden writes it)", err)
			}
			if out != string(want) {
				t.Errorf("rendering of %s differs from %s (FERRY_UPDATE_GOLDEN=1 to accept):\n%s", values, golden, lineDiff(string(want), out))
			}
		})
	}
}

// lineDiff lists the first lines that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := 0
	for i := 0; i < max(len(w), len(g)) && n < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			n++
			b.WriteString("line " + itoa(i+1) + ":\n  golden:   " + wl + "\n  rendered: " + gl + "\n")
		}
	}
	return b.String()
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

func quickstart(t *testing.T) []obj {
	return mustRender(t, "-f", scenarios(t)["quickstart"])
}

// TestAgentDaemonSet: log mounts read-only, positions on their own writable
// hostPath, non-root with DAC_READ_SEARCH only, control-plane tolerated, own
// logs excluded, downward API, no host network.
func TestAgentDaemonSet(t *testing.T) {
	objs := quickstart(t)
	ds := find(t, objs, "DaemonSet", "ferry-agent")
	spec := podSpec(ds)
	if v, _ := spec["hostNetwork"].(bool); v {
		t.Error("hostNetwork is true")
	}
	hostPaths := map[string]map[string]any{}
	for _, v := range list(spec, "volumes") {
		if hp, ok := at(v, "hostPath").(map[string]any); ok {
			hostPaths[str(v, "name")] = hp
		}
	}
	c := container(t, spec, "agent")
	mounted := map[string]bool{}
	for _, m := range list(c, "volumeMounts") {
		hp, ok := hostPaths[str(m, "name")]
		if !ok {
			continue
		}
		path := str(hp, "path")
		mounted[path] = true
		ro, _ := at(m, "readOnly").(bool)
		if path == "/var/lib/ferry" {
			if ro || str(hp, "type") != "DirectoryOrCreate" {
				t.Errorf("positions hostPath %v mounted readOnly=%v: want writable, DirectoryOrCreate", hp, ro)
			}
			continue
		}
		if !ro {
			t.Errorf("hostPath %s mounted writable at %s", path, str(m, "mountPath"))
		}
	}
	for _, p := range []string{"/var/log/containers", "/var/log/pods", "/var/lib/docker/containers", "/var/lib/ferry"} {
		if !mounted[p] {
			t.Errorf("hostPath %s not mounted (have %v)", p, mounted)
		}
	}
	if mounted["/"] {
		t.Error("host / mounted with metrics off")
	}
	if at(spec, "securityContext", "runAsNonRoot") != true || at(spec, "securityContext", "runAsUser") != 65532.0 {
		t.Errorf("pod securityContext %v: want runAsNonRoot, UID 65532", at(spec, "securityContext"))
	}
	sc := at(c, "securityContext")
	if !reflect.DeepEqual(strs(sc, "capabilities", "drop"), []string{"ALL"}) || !reflect.DeepEqual(strs(sc, "capabilities", "add"), []string{"DAC_READ_SEARCH"}) {
		t.Errorf("capabilities %v: want drop ALL, add DAC_READ_SEARCH only", at(sc, "capabilities"))
	}
	if at(sc, "readOnlyRootFilesystem") != true || at(sc, "allowPrivilegeEscalation") != false {
		t.Errorf("container securityContext %v", sc)
	}
	// The init container that hands the positions directory to 65532 may
	// only chown.
	for _, ic := range list(spec, "initContainers") {
		if add := strs(ic, "securityContext", "capabilities", "add"); !reflect.DeepEqual(add, []string{"CHOWN"}) || !slices.Contains(strs(ic, "securityContext", "capabilities", "drop"), "ALL") {
			t.Errorf("init container %s capabilities %v: want drop ALL, add CHOWN", str(ic, "name"), at(ic, "securityContext", "capabilities"))
		}
	}
	var cp bool
	for _, tol := range list(spec, "tolerations") {
		if str(tol, "key") == "node-role.kubernetes.io/control-plane" && str(tol, "operator") == "Exists" {
			cp = true
		}
	}
	if !cp {
		t.Errorf("no control-plane toleration: %v", list(spec, "tolerations"))
	}
	env := map[string]string{}
	for _, e := range list(c, "env") {
		env[str(e, "name")] = str(e, "valueFrom", "fieldRef", "fieldPath")
	}
	if env["NODE_NAME"] != "spec.nodeName" || env["POD_NAMESPACE"] != "metadata.namespace" {
		t.Errorf("downward API env %v", env)
	}
	if ann := str(ds, "spec", "template", "metadata", "annotations", "checksum/config"); len(ann) != 64 {
		t.Errorf("checksum/config annotation %q", ann)
	}
	if cfg := configOf(t, objs, "agent.yaml"); !strings.Contains(cfg, "/var/log/containers/ferry-agent-*_logging_agent-*.log") {
		t.Errorf("agent.yaml does not exclude the agent's own logs:\n%s", cfg)
	}

	// The documented switch for nodes that need root, and metrics mounts.
	root := find(t, mustRender(t, "-f", scenarios(t)["persistence"]), "DaemonSet", "ferry-agent")
	rspec := podSpec(root)
	if at(rspec, "securityContext", "runAsUser") != 0.0 || len(list(rspec, "initContainers")) != 0 {
		t.Errorf("agent.runAsRoot: securityContext %v, init containers %v", at(rspec, "securityContext"), list(rspec, "initContainers"))
	}
	var hostRoot bool
	for _, m := range list(container(t, rspec, "agent"), "volumeMounts") {
		if str(m, "mountPath") == "/host" {
			hostRoot = at(m, "readOnly") == true
		}
	}
	if !hostRoot {
		t.Error("agent.metrics.enabled: host / not mounted read-only at /host")
	}
}

// TestRBAC: the agent reads pods and namespaces and nothing else; the
// aggregator may only handle its Lease, in its namespace.
func TestRBAC(t *testing.T) {
	objs := quickstart(t)
	var roles []string
	for _, o := range objs {
		if o.kind() == "ClusterRole" || o.kind() == "Role" {
			roles = append(roles, o.kind()+"/"+o.name())
		}
	}
	if !reflect.DeepEqual(roles, []string{"ClusterRole/ferry-agent", "Role/ferry-aggregator"}) {
		t.Errorf("roles %v", roles)
	}
	type rule struct{ groups, resources, names, verbs string }
	rulesOf := func(o obj) []rule {
		var rs []rule
		for _, r := range list(o, "rules") {
			rs = append(rs, rule{strings.Join(strs(r, "apiGroups"), ","), strings.Join(strs(r, "resources"), ","), strings.Join(strs(r, "resourceNames"), ","), strings.Join(strs(r, "verbs"), ",")})
		}
		return rs
	}
	if got := rulesOf(find(t, objs, "ClusterRole", "ferry-agent")); !reflect.DeepEqual(got, []rule{{"", "pods,namespaces", "", "get,list,watch"}}) {
		t.Errorf("agent ClusterRole rules %+v", got)
	}
	if got := rulesOf(find(t, objs, "Role", "ferry-aggregator")); !reflect.DeepEqual(got, []rule{
		{"coordination.k8s.io", "leases", "", "create"},
		{"coordination.k8s.io", "leases", "ferry-alerting", "get,update"},
	}) {
		t.Errorf("aggregator Role rules %+v", got)
	}
	// The Role follows the Lease the alerting configuration names.
	full := mustRender(t, "-f", scenarios(t)["full-control"])
	// Rule files reach rules_dir, their Go templates untouched by Helm.
	agg := configOf(t, full, "aggregator.yaml")
	ruleFile := configOf(t, full, "alerting-rule.errors.yaml")
	if !strings.Contains(agg, "rules_dir: /etc/ferry/alerting-rules") || !strings.Contains(ruleFile, "{{ .Labels.service_name }}: {{ .Value }} errors in 5m") {
		t.Errorf("alerting rules: aggregator.yaml\n%s\nrule file\n%s", agg, ruleFile)
	}
	if rs, err := rules.Parse("errors.yaml", []byte(ruleFile)); err != nil || len(rs) != 1 {
		t.Errorf("rendered rule file: %d rules, %v", len(rs), err)
	}
	var mounted bool
	for _, v := range list(podSpec(find(t, full, "Deployment", "ferry-aggregator")), "volumes") {
		if str(v, "name") == "alerting-rules" && str(v, "configMap", "items", 0, "key") == "alerting-rule.errors.yaml" && str(v, "configMap", "items", 0, "path") == "errors.yaml" {
			mounted = true
		}
	}
	if !mounted {
		t.Error("the rule file is not mounted as errors.yaml")
	}
	if got := strs(find(t, full, "Role", "ferry-aggregator"), "rules", 1, "resourceNames"); !reflect.DeepEqual(got, []string{"ferry-prod-alerting"}) {
		t.Errorf("Role resourceNames %v with alerting.leader_election.lease ferry-prod-alerting", got)
	}
	crb := find(t, objs, "ClusterRoleBinding", "ferry-agent")
	if str(crb, "subjects", 0, "name") != "ferry-agent" || str(crb, "subjects", 0, "namespace") != "logging" || str(crb, "roleRef", "name") != "ferry-agent" {
		t.Errorf("agent binding %v", crb)
	}
	for _, kind := range []string{"DaemonSet", "Deployment"} {
		for _, o := range objs {
			if o.kind() == kind && str(podSpec(o), "serviceAccountName") != o.name() {
				t.Errorf("%s %s runs as service account %q", kind, o.name(), str(podSpec(o), "serviceAccountName"))
			}
		}
	}
}

var secretKey = regexp.MustCompile(`(?m)^\s*-?\s*(password|api_key|webhook_url|bearer_token)\s*:`)

// TestSecretsNeverInConfigMap: a literal credential in the values is
// refused by the schema; the quick start's credentials reach the
// aggregator as files of the Secret (and the user name from it), and no
// ConfigMap of any scenario holds a credential key.
func TestSecretsNeverInConfigMap(t *testing.T) {
	const sentinel = "s3cr3t-sentinel"
	for _, set := range []string{
		"aggregator.sinks[0].type=elasticsearch,aggregator.sinks[0].password=" + sentinel,
		"aggregator.sinks[0].type=elasticsearch,aggregator.sinks[0].api_key=" + sentinel,
		"aggregator.alerting.elasticsearch.password=" + sentinel,
		"aggregator.alerting.receivers[0].name=r,aggregator.alerting.receivers[0].slack.webhook_url=" + sentinel,
		"aggregator.alerting.receivers[0].name=r,aggregator.alerting.receivers[0].email.password=" + sentinel,
	} {
		out, err := render(t, "-f", scenarios(t)["quickstart"], "--set", set)
		if err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("--set %s: rendered (err %v)", set, err)
		}
		if strings.Contains(out, sentinel) {
			t.Errorf("--set %s: the secret is in the output", set)
		}
	}
	for name, values := range scenarios(t) {
		for _, o := range mustRender(t, "-f", values, "--api-versions", "monitoring.coreos.com/v1") {
			if o.kind() != "ConfigMap" {
				continue
			}
			for k, v := range at(o, "data").(map[string]any) {
				if m := secretKey.FindString(v.(string)); m != "" {
					t.Errorf("%s: ConfigMap %s key %s holds a credential key %q", name, o.name(), k, m)
				}
			}
		}
	}
	objs := quickstart(t)
	agg := find(t, objs, "Deployment", "ferry-aggregator")
	var secretVol bool
	for _, v := range list(podSpec(agg), "volumes") {
		if str(v, "secret", "secretName") == "es-credentials" {
			secretVol = true
		}
	}
	var userFromSecret bool
	for _, e := range list(container(t, podSpec(agg), "aggregator"), "env") {
		if str(e, "name") == "FERRY_ES_USERNAME" && str(e, "valueFrom", "secretKeyRef", "name") == "es-credentials" && str(e, "valueFrom", "secretKeyRef", "key") == "username" {
			userFromSecret = true
		}
	}
	cfg := configOf(t, objs, "aggregator.yaml")
	if !secretVol || !userFromSecret || !strings.Contains(cfg, "password_file: /etc/ferry/secrets/elasticsearch/password") {
		t.Errorf("quick start: secret volume %v, user from secret %v, aggregator.yaml:\n%s", secretVol, userFromSecret, cfg)
	}
}

// TestValuesSchemaRejects: unknown keys (typos) and bad values fail the
// install instead of being ignored.
func TestValuesSchemaRejects(t *testing.T) {
	for _, set := range []string{
		"agent.tolerateControlPlan=true",
		"aggregator.persistance.enabled=true",
		"elasticsearch.auth=token",
		"image.pullPolicy=Sometimes",
		"unknownTopLevel=1",
	} {
		if _, err := render(t, "-f", scenarios(t)["quickstart"], "--set", set); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("--set %s: want a schema error, got %v", set, err)
		}
	}
	if _, err := render(t, "-f", scenarios(t)["quickstart"], "--set", "agent.stateHostPath=/var/log/ferry"); err == nil {
		t.Error("agent.stateHostPath under /var/log accepted")
	}
	if _, err := render(t); err == nil || !strings.Contains(err.Error(), "no sink") {
		t.Errorf("no elasticsearch.url and no sinks: %v", err)
	}
}

// TestAggregatorWorkload: Deployment with an emptyDir buffer, or a
// StatefulSet with a claim per replica; grace period longer than the drain;
// PDB, Services, HPA with behavior; agents dial the headless Service.
func TestAggregatorWorkload(t *testing.T) {
	objs := quickstart(t)
	dep := find(t, objs, "Deployment", "ferry-aggregator")
	spec := podSpec(dep)
	grace, _ := spec["terminationGracePeriodSeconds"].(float64)
	m := regexp.MustCompile(`(?m)^shutdown_timeout: (\d+)s$`).FindStringSubmatch(configOf(t, objs, "aggregator.yaml"))
	if m == nil {
		t.Fatal("aggregator.yaml has no shutdown_timeout")
	}
	if drain, _ := new(big.Int).SetString(m[1], 10); grace <= float64(drain.Int64()) {
		t.Errorf("terminationGracePeriodSeconds %v <= shutdown_timeout %ss", grace, m[1])
	}
	if len(list(spec, "topologySpreadConstraints")) == 0 {
		t.Error("no topologySpreadConstraints")
	}
	if at(container(t, spec, "aggregator"), "securityContext", "readOnlyRootFilesystem") != true || at(spec, "securityContext", "runAsNonRoot") != true {
		t.Errorf("aggregator security context %v / %v", at(spec, "securityContext"), at(container(t, spec, "aggregator"), "securityContext"))
	}
	if pdb := find(t, objs, "PodDisruptionBudget", "ferry-aggregator"); at(pdb, "spec", "minAvailable") != 1.0 {
		t.Errorf("PDB %v", at(pdb, "spec"))
	}
	if hl := find(t, objs, "Service", "ferry-aggregator-headless"); str(hl, "spec", "clusterIP") != "None" {
		t.Errorf("headless service clusterIP %q", str(hl, "spec", "clusterIP"))
	}
	find(t, objs, "Service", "ferry-aggregator")
	if cfg := configOf(t, objs, "aggregator.yaml"); !strings.Contains(cfg, "\nmax_connection_age: 5m\n") {
		t.Errorf("aggregator.yaml does not age agents' connections out (they would never rebalance):\n%s", cfg)
	}
	if cfg := configOf(t, objs, "agent.yaml"); !strings.Contains(cfg, "address: dns:///ferry-aggregator-headless.logging.svc:7070") {
		t.Errorf("agent.yaml does not dial the headless service:\n%s", cfg)
	}
	if has(objs, "StatefulSet") || has(objs, "HorizontalPodAutoscaler") {
		t.Error("StatefulSet or HPA rendered by default")
	}

	p := mustRender(t, "-f", scenarios(t)["persistence"])
	if has(p, "Deployment") {
		t.Error("persistence.enabled: a Deployment is rendered too")
	}
	sts := find(t, p, "StatefulSet", "ferry-aggregator")
	if str(sts, "spec", "serviceName") != "ferry-aggregator-headless" || str(sts, "spec", "volumeClaimTemplates", 0, "metadata", "name") != "buffer" ||
		str(sts, "spec", "volumeClaimTemplates", 0, "spec", "resources", "requests", "storage") != "20Gi" {
		t.Errorf("StatefulSet spec %v", at(sts, "spec"))
	}
	for _, v := range list(podSpec(sts), "volumes") {
		if str(v, "name") == "buffer" {
			t.Errorf("StatefulSet has a buffer volume %v besides its claim", v)
		}
	}
	if _, ok := at(sts, "spec", "replicas").(float64); ok {
		t.Error("replicas set although the HPA owns them")
	}
	hpa := find(t, p, "HorizontalPodAutoscaler", "ferry-aggregator")
	if str(hpa, "apiVersion") != "autoscaling/v2" || str(hpa, "spec", "scaleTargetRef", "kind") != "StatefulSet" || at(hpa, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds") != 300.0 {
		t.Errorf("HPA %v", hpa)
	}
}

// TestMonitoringOnlyWithAPI: PodMonitors and the PrometheusRule exist only
// where the cluster serves monitoring.coreos.com/v1.
func TestMonitoringOnlyWithAPI(t *testing.T) {
	values := scenarios(t)["full-control"]
	without := mustRender(t, "-f", values)
	if has(without, "PodMonitor") || has(without, "PrometheusRule") {
		t.Error("monitoring objects rendered without the monitoring.coreos.com/v1 API")
	}
	with := mustRender(t, "-f", values, "--api-versions", "monitoring.coreos.com/v1")
	find(t, with, "PodMonitor", "ferry-agent")
	find(t, with, "PodMonitor", "ferry-aggregator")
	rule := find(t, with, "PrometheusRule", "ferry")
	var alerts []string
	exprs := map[string]string{}
	for _, r := range list(rule, "spec", "groups", 0, "rules") {
		alerts = append(alerts, str(r, "alert"))
		exprs[str(r, "alert")] = str(r, "expr")
	}
	if !reflect.DeepEqual(alerts, []string{"FerryNoAcks", "FerryEventsDropped", "FerryBufferFull", "FerryBufferAbove80Percent", "FerryAgentLagGrowing"}) {
		t.Errorf("alerts %v", alerts)
	}
	// The metrics the binaries serve (test/e2e's TestMetricsScrape).
	for alert, metrics := range map[string][]string{
		"FerryBufferAbove80Percent": {"ferry_aggregator_buffer_bytes{", "ferry_aggregator_buffer_capacity_bytes{", "> 0.8"},
		"FerryAgentLagGrowing":      {"deriv(ferry_agent_file_lag_bytes{"},
		// Unintentional drops of both binaries, by reason.
		"FerryEventsDropped": {`{__name__=~"ferry_(agent|aggregator)_events_dropped_total", intentional="false"`, "by (namespace, pod, reason)", "> 0"},
		// No acks for 10 minutes while there is something to ship.
		"FerryNoAcks": {"increase(ferry_agent_events_acked_total{", "[10m])) == 0", "and on (namespace, pod)", "ferry_agent_file_lag_bytes{"},
	} {
		for _, m := range metrics {
			if !strings.Contains(exprs[alert], m) {
				t.Errorf("alert %s: expr %q lacks %q", alert, exprs[alert], m)
			}
		}
	}
}

// TestRenderedConfigsValidate: the configurations every scenario renders
// pass the binaries' own `validate` (secret files and host paths replaced
// by stand-ins of the same kind).
func TestRenderedConfigsValidate(t *testing.T) {
	bin := harness.BinDir(t)
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	for f, content := range map[string]string{
		"elasticsearch/password": "pw", "elasticsearch/api_key": "key", "es/password": "pw", "slack/url": "https://hooks.slack.invalid/T0/B0/x",
		"elasticsearch-ca/ca.crt": selfSignedPEM(t),
	} {
		p := filepath.Join(secrets, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hostRoot := filepath.Join(dir, "host")
	if err := os.MkdirAll(filepath.Join(hostRoot, "sys/fs/cgroup"), 0o755); err != nil {
		t.Fatal(err)
	}
	replacer := strings.NewReplacer("/etc/ferry/secrets/", secrets+"/", "host_root: /host", "host_root: "+hostRoot,
		"/var/lib/ferry", filepath.Join(dir, "var-lib-ferry"))
	for name, values := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			objs := mustRender(t, "-f", values)
			for _, prog := range []string{"agent", "aggregator"} {
				f := filepath.Join(dir, name+"-"+prog+".yaml")
				if err := os.WriteFile(f, []byte(replacer.Replace(configOf(t, objs, prog+".yaml"))), 0o644); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(filepath.Join(bin, prog), "validate", "--config", f)
				cmd.Env = append(os.Environ(), "NODE_NAME=chart-test", "FERRY_ES_USERNAME=elastic", "POD_NAMESPACE=logging")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s validate: %v\n%s", prog, err, out)
				}
			}
		})
	}
}

func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestDefaultImageIsMakeImage: both workloads run the image `make image`
// writes (ghcr.io/ferrylogs/ferry tagged with the chart's appVersion; see
// test/image), each its own binary of it.
func TestDefaultImageIsMakeImage(t *testing.T) {
	chart, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^appVersion:\s*"?([^"\s]+)"?\s*$`).FindSubmatch(chart)
	if m == nil {
		t.Fatal("Chart.yaml has no appVersion")
	}
	want := "ghcr.io/ferrylogs/ferry:" + string(m[1])
	objs := quickstart(t)
	for _, w := range []struct{ kind, name, container, command string }{
		{"DaemonSet", "ferry-agent", "agent", "/agent"},
		{"Deployment", "ferry-aggregator", "aggregator", "/aggregator"},
	} {
		c := container(t, podSpec(find(t, objs, w.kind, w.name)), w.container)
		if got := str(c, "image"); got != want {
			t.Errorf("%s image %q, want %q", w.name, got, want)
		}
		if got := strs(c, "command"); len(got) == 0 || got[0] != w.command {
			t.Errorf("%s command %v, want %s first", w.name, got, w.command)
		}
	}
}
