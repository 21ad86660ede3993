package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/test/harness"
)

// TestEnrichEnvironmentServiceLabels sends real batches WITH Batch.pods
// over gRPC to the real aggregator (Elasticsearch sink behind a disk
// buffer, so the pods go through the buffer) and checks every document in
// Elasticsearch: the data stream logs-kubernetes.container-<environment>
// with the environment from each of the four rules (namespace label,
// regex, fixed map, default), the service name from each source (three
// labels, four owner kinds, the pod name of a pod the agent sent no
// metadata for), labels and annotations with dots replaced, owners, node,
// image, orchestrator, a huge label value cut and flagged (not a mapping
// error; invalid UTF-8 cannot arrive: proto3 refuses it on the wire), and the mapping Ferry's template gives the new
// data streams (labels flattened, names keyword).
func TestEnrichEnvironmentServiceLabels(t *testing.T) {
	es := harness.NewESClient(t, harness.ESURL(t))
	root := t.TempDir()
	node := harness.UniqueNode(t, "e2e")
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	// Environments of this run only: fresh data streams, made from the
	// templates this aggregator installs.
	envLabel, envRegex, envMap, envDefault := "Blue-Green"+run, "rx"+run, "map"+run, "dflt"+run
	streamOf := func(env string) string {
		return "logs-kubernetes.container-" + strings.ReplaceAll(strings.ToLower(env), "-", "_")
	}
	t.Cleanup(func() {
		for _, env := range []string{envLabel, envRegex, envMap, envDefault} {
			_, _, _ = es.Call(http.MethodDelete, "/_data_stream/"+streamOf(env), nil)
		}
	})

	o := harness.ESAggregatorConfig{Listen: harness.FreePort(t), HTTP: harness.FreePort(t), URL: es.URL,
		BufferDir: filepath.Join(root, "buffer"), SinkBuffer: "disk"}
	path := filepath.Join(root, "aggregator.yaml")
	harness.WriteFile(t, path, o.YAML()+fmt.Sprintf(`
cluster_name: cluster-%s
enrich:
  environment:
    namespace_label: environment
    namespace_regex: '^(?:.+-)?(dev|staging|prod|rx[0-9a-z]+)$'
    namespaces: {payments-%s: %s}
    default: %s
`, run, run, envMap, envDefault))
	agg := harness.StartProc(t, root, "aggregator", "--config", path)
	harness.LogTailsOnFailure(t, agg)
	harness.WaitHealthy(t, "the aggregator", o.HTTP)

	nsLabelled, nsRegex, nsMap, nsDefault := "team-"+run, "shop-"+envRegex, "payments-"+run, "tools-"+run
	huge := strings.Repeat("h", 40_000) // beyond Lucene's 32766-byte term: must be cut
	pods := []*ferryv1.Pod{
		{Uid: "uid-web", Namespace: nsLabelled, Name: "web-7d9f8c6b5-x2x4z", NodeName: "api-node-1",
			Labels: map[string]string{"app.kubernetes.io/name": "checkout", "app": "web-app", "k8s-app": "web-k8s",
				"pod-template-hash": "7d9f8c6b5", "team": "shop", "huge": huge},
			Annotations:     map[string]string{"ferry.io/owner": "ops"},
			NamespaceLabels: map[string]string{"environment": envLabel, "kubernetes.io/metadata.name": nsLabelled},
			OwnerKind:       "Deployment", OwnerName: "web",
			ContainerImages: map[string]string{"app": "registry.example/web:1.2", "init": "busybox:1"}},
		{Uid: "uid-db", Namespace: nsRegex, Name: "db-0", Labels: map[string]string{"app": "postgres"}, OwnerKind: "StatefulSet", OwnerName: "db"},
		{Uid: "uid-dns", Namespace: nsRegex, Name: "dns-x2x4z", Labels: map[string]string{"k8s-app": "kube-dns"}, OwnerKind: "DaemonSet", OwnerName: "dns"},
		{Uid: "uid-api", Namespace: nsMap, Name: "api-5f4b8c9d7b-q2w4z", OwnerKind: "Deployment", OwnerName: "api"},
		{Uid: "uid-kafka", Namespace: nsMap, Name: "kafka-2", OwnerKind: "StatefulSet", OwnerName: "kafka"},
		{Uid: "uid-agent", Namespace: nsDefault, Name: "agent-q2w4z", OwnerKind: "DaemonSet", OwnerName: "agent"},
		{Uid: "uid-backup", Namespace: nsDefault, Name: "backup-28735940-x7k2p", OwnerKind: "CronJob", OwnerName: "backup",
			Labels: map[string]string{"batch.kubernetes.io/job-name": "backup-28735940"}},
	}
	type want struct {
		ns, pod, uid, env, service string
		fields                     map[string]any // more fields, by path
	}
	wants := []want{
		{nsLabelled, "web-7d9f8c6b5-x2x4z", "uid-web", envLabel, "checkout", map[string]any{
			"kubernetes/labels/app_kubernetes_io\x00name":                "checkout", // '\x00' stands for a '/' inside a key
			"kubernetes/labels/app":                                      "web-app",
			"kubernetes/labels/team":                                     "shop",
			"kubernetes/labels/pod-template-hash":                        "7d9f8c6b5",
			"kubernetes/annotations/ferry_io\x00owner":                   "ops",
			"kubernetes/namespace_labels/environment":                    envLabel,
			"kubernetes/namespace_labels/kubernetes_io\x00metadata_name": nsLabelled,
			"kubernetes/deployment/name":                                 "web",
			"kubernetes/replicaset/name":                                 "web-7d9f8c6b5",
			"kubernetes/node/name":                                       "api-node-1",
			"container/image/name":                                       "registry.example/web:1.2",
			"ferry/flags":                                                []any{"metadata_truncated"},
		}},
		{nsRegex, "db-0", "uid-db", envRegex, "postgres", map[string]any{"kubernetes/statefulset/name": "db", "kubernetes/node/name": node}},
		{nsRegex, "dns-x2x4z", "uid-dns", envRegex, "kube-dns", map[string]any{"kubernetes/daemonset/name": "dns"}},
		{nsMap, "api-5f4b8c9d7b-q2w4z", "uid-api", envMap, "api", map[string]any{"kubernetes/deployment/name": "api", "kubernetes/labels": nil}},
		{nsMap, "kafka-2", "uid-kafka", envMap, "kafka", map[string]any{"kubernetes/statefulset/name": "kafka"}},
		{nsDefault, "agent-q2w4z", "uid-agent", envDefault, "agent", map[string]any{"kubernetes/daemonset/name": "agent"}},
		{nsDefault, "backup-28735940-x7k2p", "uid-backup", envDefault, "backup", map[string]any{
			"kubernetes/cronjob/name": "backup", "kubernetes/job/name": "backup-28735940"}},
		// Pods the agent sent no metadata for: the rules that need only the
		// namespace name, and the pod name without its hash suffixes.
		{nsRegex, "cache-5f4b8c9d7b-x2x4z", "uid-cache", envRegex, "cache", map[string]any{"kubernetes/labels": nil, "kubernetes/deployment": nil}},
		{nsMap, "worker-3", "uid-worker", envMap, "worker", nil},
		{nsDefault, "cron-28735941-b2c4d", "", envDefault, "cron", map[string]any{"ferry/flags": nil}},
	}

	conn, err := grpc.NewClient(o.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := ferryv1.NewIngestClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const perPod = 3
	batch := &ferryv1.Batch{Seq: 1, Node: node, Pods: pods}
	for i, w := range wants {
		for j := range perPod {
			off := int64(i*1000 + j*100)
			batch.Events = append(batch.Events, &ferryv1.Event{
				Id:           event.ID(nil, node, "enrich-"+w.pod, off),
				TimeUnixNano: time.Now().UnixNano(),
				Message:      fmt.Appendf(nil, "line %d of %s", j, w.pod),
				Stream:       ferryv1.StreamName_STREAM_STDOUT,
				Source:       &ferryv1.Source{Path: "/var/log/pods/" + w.ns + "_" + w.pod + "/app/0.log", Offset: off, Input: "container-0", FileId: w.pod},
				Kubernetes:   &ferryv1.Kubernetes{Namespace: w.ns, Pod: w.pod, PodUid: w.uid, Container: "app", ContainerId: "containerd://" + w.pod},
				Kind:         ferryv1.Kind_KIND_LOG,
			})
		}
	}
	if err := stream.Send(batch); err != nil {
		t.Fatalf("send: %v", err)
	}
	ack, err := stream.Recv()
	if err != nil || ack.GetCode() != ferryv1.Ack_CODE_OK {
		t.Fatalf("ack %v, %v", ack, err)
	}
	_ = stream.CloseSend()

	// Every document lands in the data stream of its environment.
	total := len(wants) * perPod
	harness.WaitFor(t, time.Minute, "every event in logs-*", func() bool { return es.NodeCount("logs-*", node) == total })
	perStream := map[string]int{}
	for _, w := range wants {
		perStream[streamOf(w.env)] += perPod
	}
	// Counted per sink write (a retried batch counts again): at least the
	// 3 pods × 3 events without metadata and the 3 events of the pod with
	// the huge label.
	for name, least := range map[string]uint64{"ferry_aggregator_events_without_pod_metadata_total": 3 * perPod, "ferry_aggregator_events_metadata_truncated_total": perPod} {
		if n, err := harness.Stat(o.HTTP, name); err != nil || n < least {
			t.Errorf("%s = %d, %v; want at least %d", name, n, err, least)
		}
	}
	for s, n := range perStream {
		if got := es.NodeCount(s, node); got != n {
			t.Errorf("%s holds %d documents of node %s, want %d", s, got, node, n)
		}
	}

	for _, w := range wants {
		var res struct {
			Hits struct {
				Hits []struct {
					Index  string         `json:"_index"`
					Source map[string]any `json:"_source"`
				} `json:"hits"`
			} `json:"hits"`
		}
		es.Must(http.MethodPost, "/logs-*/_search", map[string]any{"size": 10, "query": map[string]any{"bool": map[string]any{"filter": []any{
			harness.TermQuery("host.name", node), harness.TermQuery("kubernetes.pod.name", w.pod)}}}}, &res)
		if len(res.Hits.Hits) != perPod {
			t.Errorf("pod %s: %d documents, want %d", w.pod, len(res.Hits.Hits), perPod)
			continue
		}
		h := res.Hits.Hits[0]
		if !strings.HasPrefix(h.Index, ".ds-"+streamOf(w.env)+"-") {
			t.Errorf("pod %s: in %s, want data stream %s", w.pod, h.Index, streamOf(w.env))
		}
		fields := map[string]any{
			"service/name":              w.service,
			"service/environment":       w.env,
			"data_stream/namespace":     streamOf(w.env)[len("logs-kubernetes.container-"):],
			"orchestrator/type":         "kubernetes",
			"orchestrator/cluster/name": "cluster-" + run,
			"kubernetes/namespace":      w.ns,
			"kubernetes/pod/name":       w.pod,
			"host/name":                 node,
			"container/id":              "containerd://" + w.pod,
		}
		for p, v := range w.fields {
			fields[p] = v
		}
		for p, v := range fields {
			if got := dig(h.Source, p); fmt.Sprint(got) != fmt.Sprint(v) {
				t.Errorf("pod %s: %s = %v, want %v", w.pod, strings.ReplaceAll(p, "\x00", "/"), got, v)
			}
		}
		if w.pod == pods[0].Name {
			labels, _ := h.Source["kubernetes"].(map[string]any)["labels"].(map[string]any)
			if v, _ := labels["huge"].(string); len(v) != 1024 || strings.Trim(v, "h") != "" {
				t.Errorf("pod %s: huge label of %d bytes, want it cut to 1024", w.pod, len(v))
			}
		}
	}

	// The new data streams are mapped by Ferry's template: labels and
	// annotations flattened (label churn cannot grow the mapping), names
	// keyword.
	var m map[string]struct {
		Mappings map[string]struct {
			Mapping map[string]struct {
				Type string `json:"type"`
			} `json:"mapping"`
		} `json:"mappings"`
	}
	fieldTypes := map[string]string{
		"kubernetes.labels": "flattened", "kubernetes.namespace_labels": "flattened", "kubernetes.annotations": "flattened",
		"service.name": "keyword", "service.environment": "keyword", "orchestrator.cluster.name": "keyword",
		"container.image.name": "keyword", "kubernetes.deployment.name": "keyword", "kubernetes.replicaset.name": "keyword",
	}
	var names []string
	for f := range fieldTypes {
		names = append(names, f)
	}
	es.Must(http.MethodGet, "/"+streamOf(envLabel)+"/_mapping/field/"+strings.Join(names, ","), nil, &m)
	if len(m) == 0 {
		t.Fatalf("no backing index of %s", streamOf(envLabel))
	}
	for index, im := range m {
		for f, typ := range fieldTypes {
			leaf := f[strings.LastIndex(f, ".")+1:]
			if got := im.Mappings[f].Mapping[leaf].Type; got != typ {
				t.Errorf("%s: %s mapped as %q, want %s", index, f, got, typ)
			}
		}
	}
	harness.StopAll(t, 30*time.Second, agg)
}

// dig returns the value at path in a document's source: object keys joined
// by '/', '\x00' standing for a '/' inside a key.
func dig(src map[string]any, path string) any {
	var cur any = src
	for _, k := range strings.Split(path, "/") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[strings.ReplaceAll(k, "\x00", "/")]
	}
	return cur
}
