package e2e

// End-to-end tests of node and container metrics (issue 14): the real agent
// samples this machine at a 1 s interval (and the containers of a fixture
// cgroup tree) and ships the samples, alone or with log lines, through the
// real aggregator into the real Elasticsearch.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// metricsEnv is the environment (data stream namespace) of the node
// metrics of these tests; documents are told apart by host.name.
const metricsEnv = "e2e"

// fixtureCgroups is a cgroup v2 tree (systemd driver) of two pods.
func fixtureCgroups(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../pipeline/metrics/testdata/cgroup/v2-systemd/t0")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startMetricsAgent starts an agent sampling every second into metricsEnv;
// with logs it also tails root/containers/*.log, else it has no input.
func startMetricsAgent(t *testing.T, root, node, listen string, logs bool) (agent *harness.Proc, httpAddr string) {
	t.Helper()
	httpAddr = harness.FreePort(t)
	inputs := "inputs: []\n"
	if logs {
		inputs = fmt.Sprintf("inputs:\n  - type: container\n    paths: [\"%s/containers/*.log\"]\n    poll_interval: 50ms\n    glob_interval: 200ms\n", root)
	}
	cfg := fmt.Sprintf(`node: %s
state_dir: %s
http: %s
aggregator:
  address: %s
  batch_timeout: 100ms
  backoff_initial: 50ms
  backoff_max: 1s
%smetrics:
  enabled: true
  interval: 1s
  sets: [cpu, load, memory, swap, filesystem, diskio, network, uptime, containers]
  cgroup_root: %s
  environment: %s
`, node, filepath.Join(root, "state"), httpAddr, listen, inputs, fixtureCgroups(t), metricsEnv)
	path := filepath.Join(root, "agent.yaml")
	harness.WriteFile(t, path, cfg)
	if out, err := exec.Command(filepath.Join(harness.BinDir(t), "agent"), "validate", "--config", path).CombinedOutput(); err != nil {
		t.Fatalf("agent validate: %v: %s", err, out)
	}
	agent = harness.StartProc(t, root, "agent", "--config", path)
	return agent, httpAddr
}

// waitMetricDocs polls until index holds at least want documents of node.
func waitMetricDocs(t *testing.T, es *harness.ESClient, index, node string, want int, timeout time.Duration) {
	t.Helper()
	n := 0
	if !harness.Poll(timeout, 250*time.Millisecond, func() bool {
		var err error
		n, err = es.TryCount(index, harness.TermQuery("host.name", node))
		return err == nil && n >= want
	}) {
		t.Fatalf("after %s %s holds %d documents of node %s, want at least %d", timeout, index, n, node, want)
	}
}

// TestMetricsWithLogs: an agent tailing container logs and sampling
// metrics every second ships both on one stream. Over ~15 s, a date
// histogram of system.cpu.total.norm.pct per host.name has one sample per
// second, each within [0, 1]; the fixture's containers have their
// working set in metrics-kubernetes.container-default; every metric set
// lands in its data stream with the field types of Ferry's template.
func TestMetricsWithLogs(t *testing.T) {
	const files, perFile = 2, 50
	es, root, node := sharedESNode(t, files, perFile)
	agg, listen, _ := startAggregator(t, root, harness.ESAggregatorConfig{URL: es.URL})
	agent, _ := startMetricsAgent(t, root, node, listen, true)
	harness.LogTailsOnFailure(t, agent, agg)
	cpuStream := "metrics-system.cpu-" + metricsEnv

	es.WaitNodeCount(node, files*perFile, time.Minute) // the lines, exactly once
	const samples = 14                                 // CPU has no value on the first sample: 15 s
	waitMetricDocs(t, es, cpuStream, node, samples, 90*time.Second)
	harness.StopAll(t, 30*time.Second, agent, agg)

	var h struct {
		Aggregations struct {
			Hosts struct {
				Buckets []struct {
					Key  string `json:"key"`
					Time struct {
						Buckets []struct {
							Time  string `json:"key_as_string"`
							Count int    `json:"doc_count"`
							Min   struct {
								Value *float64 `json:"value"`
							} `json:"min"`
							Max struct {
								Value *float64 `json:"value"`
							} `json:"max"`
						} `json:"buckets"`
					} `json:"t"`
				} `json:"buckets"`
			} `json:"hosts"`
		} `json:"aggregations"`
	}
	pct := map[string]any{"field": "system.cpu.total.norm.pct"}
	es.Must(http.MethodPost, "/"+cpuStream+"/_search", map[string]any{
		"size":  0,
		"query": harness.TermQuery("host.name", node),
		"aggs": map[string]any{"hosts": map[string]any{
			"terms": map[string]any{"field": "host.name"},
			"aggs": map[string]any{"t": map[string]any{
				"date_histogram": map[string]any{"field": "@timestamp", "fixed_interval": "1s", "min_doc_count": 1},
				"aggs":           map[string]any{"min": map[string]any{"min": pct}, "max": map[string]any{"max": pct}},
			}},
		}},
	}, &h)
	if len(h.Aggregations.Hosts.Buckets) != 1 || h.Aggregations.Hosts.Buckets[0].Key != node {
		t.Fatalf("host.name buckets %+v, want only %s", h.Aggregations.Hosts.Buckets, node)
	}
	buckets := h.Aggregations.Hosts.Buckets[0].Time.Buckets
	if len(buckets) < samples {
		t.Errorf("%d one-second buckets, want at least %d", len(buckets), samples)
	}
	for _, b := range buckets {
		// One sample per interval: aligned, none caught up, none twice.
		if b.Count != 1 {
			t.Errorf("bucket %s holds %d samples, want 1", b.Time, b.Count)
		}
		if b.Min.Value == nil || b.Max.Value == nil || *b.Min.Value < 0 || *b.Max.Value > 1 {
			t.Errorf("bucket %s: system.cpu.total.norm.pct between %v and %v, want within [0, 1]", b.Time, b.Min.Value, b.Max.Value)
		}
	}

	// The fixture's containers: container A of pod 1 has 200 MB in use,
	// 50 MB of it inactive file cache.
	const podUID = "1a2b3c4d-0000-4000-8000-000000000001"
	const ctrA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"
	var docs struct {
		Hits struct {
			Hits []struct {
				Index  string         `json:"_index"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	es.Must(http.MethodPost, "/metrics-kubernetes.container-*/_search", map[string]any{
		"size": 1,
		"query": map[string]any{"bool": map[string]any{"filter": []any{
			harness.TermQuery("host.name", node), harness.TermQuery("container.id", ctrA),
		}}},
	}, &docs)
	if len(docs.Hits.Hits) != 1 {
		t.Fatalf("no document of container %s of node %s", ctrA, node)
	}
	d := docs.Hits.Hits[0]
	if d.Index == "" || !strings.Contains(d.Index, "metrics-kubernetes.container-default") {
		t.Errorf("container metrics in %s, want metrics-kubernetes.container-default", d.Index)
	}
	for path, want := range map[string]any{
		"kubernetes.container.memory.workingset.bytes": 150e6,
		"kubernetes.pod.uid":                           podUID,
		"event.module":                                 "kubernetes",
		"metricset.name":                               "container",
	} {
		if got := sourceField(d.Source, path); got != want {
			t.Errorf("container document: %s = %v, want %v", path, got, want)
		}
	}

	// Every set in its data stream, with the types of Ferry's template.
	for set, field := range map[string]string{
		"cpu": "system.cpu.user.pct", "load": "system.load.1", "memory": "system.memory.actual.used.pct",
		"swap": "system.memory.swap.total", "uptime": "system.uptime.duration.ms",
	} {
		if n := es.NodeCount("metrics-system."+set+"-"+metricsEnv, node); n == 0 {
			t.Errorf("metrics-system.%s-%s holds no document of %s (%s)", set, metricsEnv, node, field)
		}
	}
	checkMappings(t, es, map[string]string{
		"metrics-system.cpu-" + metricsEnv + "/system.cpu.total.norm.pct":                   "float",
		"metrics-system.memory-" + metricsEnv + "/system.memory.used.bytes":                 "long",
		"metrics-system.memory-" + metricsEnv + "/system.memory.actual.used.pct":            "float",
		"metrics-system.load-" + metricsEnv + "/system.load.1":                              "float",
		"metrics-system.uptime-" + metricsEnv + "/system.uptime.duration.ms":                "long",
		"metrics-system.cpu-" + metricsEnv + "/@timestamp":                                  "date_nanos",
		"metrics-kubernetes.container-default/kubernetes.container.memory.workingset.bytes": "long",
		"metrics-kubernetes.container-default/kubernetes.container.cpu.usage.nanocores":     "long",
		"metrics-kubernetes.pod-default/kubernetes.pod.memory.working_set.bytes":            "long",
	})
	// Sets whose series depend on the machine (a CI container may have no
	// sampled filesystem, disk or interface): typed right where present.
	for stream, field := range map[string]string{
		"metrics-system.network-" + metricsEnv:    "system.network.in.bytes_per_sec:float,system.network.in.bytes:long",
		"metrics-system.diskio-" + metricsEnv:     "system.diskio.read.bytes:long",
		"metrics-system.filesystem-" + metricsEnv: "system.filesystem.used.pct:float",
	} {
		if es.NodeCount(stream, node) == 0 {
			t.Logf("%s: no document of this machine", stream)
			continue
		}
		want := map[string]string{}
		for _, f := range strings.Split(field, ",") {
			name, typ, _ := strings.Cut(f, ":")
			want[stream+"/"+name] = typ
		}
		checkMappings(t, es, want)
	}
}

// checkMappings checks the mapping type of fields ("<index>/<field>") in
// every backing index.
func checkMappings(t *testing.T, es *harness.ESClient, want map[string]string) {
	t.Helper()
	for key, typ := range want {
		index, field, _ := strings.Cut(key, "/")
		var m map[string]struct {
			Mappings map[string]struct {
				Mapping map[string]struct {
					Type string `json:"type"`
				} `json:"mapping"`
			} `json:"mappings"`
		}
		es.Must(http.MethodGet, "/"+index+"/_mapping/field/"+field, nil, &m)
		if len(m) == 0 {
			t.Errorf("%s: no backing index", index)
		}
		for backing, im := range m {
			leaf := field[strings.LastIndex(field, ".")+1:]
			if got := im.Mappings[field].Mapping[leaf].Type; got != typ {
				t.Errorf("%s: %s mapped as %q, want %s", backing, field, got, typ)
			}
		}
	}
}

// sourceField follows a dotted path through _source, whose objects may
// hold dotted names.
func sourceField(src map[string]any, path string) any {
	if v, ok := src[path]; ok {
		return v
	}
	for i := range path {
		if path[i] != '.' {
			continue
		}
		if sub, ok := src[path[:i]].(map[string]any); ok {
			if v := sourceField(sub, path[i+1:]); v != nil {
				return v
			}
		}
	}
	return nil
}

// TestMetricsOnlyAgent: an agent with no input (inputs: [], valid because
// metrics are on) ships its samples.
func TestMetricsOnlyAgent(t *testing.T) {
	es := harness.NewESClient(t, harness.ESURL(t))
	root := harness.NodeRoot(t)
	node := harness.UniqueNode(t, "e2e")
	agg, listen, _ := startAggregator(t, root, harness.ESAggregatorConfig{URL: es.URL})
	agent, httpAddr := startMetricsAgent(t, root, node, listen, false)
	harness.LogTailsOnFailure(t, agent, agg)
	waitMetricDocs(t, es, "metrics-system.memory-"+metricsEnv, node, 3, time.Minute)
	waitMetricDocs(t, es, "metrics-kubernetes.pod-default", node, 2, time.Minute)
	if n, err := harness.Stat(httpAddr, "ferry_agent_metric_cycles_total"); err != nil || n < 3 {
		t.Errorf("ferry_agent_metric_cycles_total = %d (%v), want at least 3", n, err)
	}
	harness.StopAll(t, 30*time.Second, agent, agg)
	if n := es.NodeCount("logs-*", node); n != 0 {
		t.Errorf("a metrics-only agent wrote %d log documents", n)
	}
}

// writeCgroupTree writes a cgroup v2 tree (systemd driver) with one
// burstable pod of uid holding container id, and returns its root.
func writeCgroupTree(t *testing.T, uid, id string) string {
	t.Helper()
	root := t.TempDir()
	pod := filepath.Join(root, "kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
	ctr := filepath.Join(pod, "cri-containerd-"+id+".scope")
	if err := os.MkdirAll(ctr, 0o755); err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, filepath.Join(root, "cgroup.controllers"), "cpu memory\n")
	for _, d := range []string{pod, ctr} {
		harness.WriteFile(t, filepath.Join(d, "cpu.stat"), "usage_usec 1000000\n")
		harness.WriteFile(t, filepath.Join(d, "cpu.max"), "50000 100000\n")
		harness.WriteFile(t, filepath.Join(d, "memory.current"), "200000000\n")
		harness.WriteFile(t, filepath.Join(d, "memory.stat"), "inactive_file 50000000\n")
		harness.WriteFile(t, filepath.Join(d, "memory.max"), "268435456\n")
	}
	return root
}

// TestMetricsKubernetesMetadata: an agent with Kubernetes metadata (a real
// kube-apiserver) names the pod of a container's cgroup and sends its
// metadata with the metric; the aggregator enriches it as it enriches the
// pod's lines: the metric lands in metrics-kubernetes.container-<the pod's
// environment> with namespace, pod name, owner and service.
func TestMetricsKubernetesMetadata(t *testing.T) {
	api := harness.SharedKube(t)
	es := harness.NewESClient(t, harness.ESURL(t))
	root := harness.NodeRoot(t)
	node := harness.UniqueNode(t, "kube")
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	api.Grant(t, "ferry-test-agent", "agent", "pods", "namespaces")
	ns := "shop-" + run + "-prod"
	api.CreateNamespace(t, ns, nil)
	pod := harness.KubePod{NS: ns, Name: "web-7d9f8b6c5d-x2x4z", Node: node, OwnerKind: "ReplicaSet", OwnerName: "web-7d9f8b6c5d",
		Labels: map[string]string{"app.kubernetes.io/name": "checkout"}}
	uid := api.CreatePod(t, pod)
	const ctr = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cg := writeCgroupTree(t, uid, ctr)

	o := harness.ESAggregatorConfig{Listen: harness.FreePort(t), HTTP: harness.FreePort(t), URL: es.URL, BufferDir: filepath.Join(root, "buffer")}
	aggPath := filepath.Join(root, "aggregator.yaml")
	harness.WriteFile(t, aggPath, o.YAML()+kubeEnrich)
	agg := harness.StartProc(t, root, "aggregator", "--config", aggPath)
	harness.WaitHealthy(t, "the aggregator", o.HTTP)
	agentPath := filepath.Join(root, "agent.yaml")
	harness.WriteFile(t, agentPath, fmt.Sprintf(`node: %s
state_dir: %s
http: %s
aggregator: {address: %s, batch_timeout: 100ms, backoff_initial: 50ms, backoff_max: 1s}
inputs: []
kubernetes:
  kubeconfig: %s
metrics:
  enabled: true
  interval: 1s
  sets: [containers]
  cgroup_root: %s
`, node, filepath.Join(root, "state"), harness.FreePort(t), o.Listen, api.KubeconfigOf("agent"), cg))
	agent := harness.StartProc(t, root, "agent", "--config", agentPath)
	harness.LogTailsOnFailure(t, agent, agg)

	stream := "metrics-kubernetes.container-prod"
	query := map[string]any{"bool": map[string]any{"filter": []any{
		harness.TermQuery("host.name", node), harness.TermQuery("container.id", ctr), harness.TermQuery("kubernetes.pod.name", pod.Name),
	}}}
	harness.WaitFor(t, time.Minute, "an enriched metric of the container in "+stream, func() bool {
		n, err := es.TryCount(stream, query)
		return err == nil && n > 0
	})
	harness.StopAll(t, 30*time.Second, agent, agg)
	var res struct {
		Hits struct {
			Hits []struct {
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	es.Must(http.MethodPost, "/"+stream+"/_search", map[string]any{"size": 1, "query": query}, &res)
	if len(res.Hits.Hits) == 0 {
		t.Fatal("the document went away")
	}
	d := res.Hits.Hits[0].Source
	for p, want := range map[string]any{
		"kubernetes/namespace":       ns,
		"kubernetes/pod/uid":         uid,
		"kubernetes/deployment/name": "web",
		"service/name":               "checkout",
		"service/environment":        "prod",
		"data_stream/namespace":      "prod",
		"metricset/name":             "container",
	} {
		if got := dig(d, p); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", p, got, want)
		}
	}
	if got := sourceField(d, "kubernetes.container.memory.workingset.bytes"); got != 150e6 {
		t.Errorf("working set %v, want 150e6", got)
	}
}
