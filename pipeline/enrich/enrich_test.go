package enrich

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

func rules(t testing.TB) *Environment {
	t.Helper()
	env, err := NewEnvironment("environment", `^(?:.+-)?(dev|staging|prod)$`, map[string]string{"payments": "prod", "edge": "prod"}, "default")
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestEnvironment(t *testing.T) {
	env := rules(t)
	cases := []struct {
		name string
		pod  *ferryv1.Pod
		want string
	}{
		{"namespace label", &ferryv1.Pod{Namespace: "shop-dev", NamespaceLabels: map[string]string{"environment": "qa"}}, "qa"},
		{"label empty: regex", &ferryv1.Pod{Namespace: "shop-dev", NamespaceLabels: map[string]string{"environment": ""}}, "dev"},
		{"regex with prefix", &ferryv1.Pod{Namespace: "shop-staging"}, "staging"},
		{"regex whole name", &ferryv1.Pod{Namespace: "prod"}, "prod"},
		{"regex before map", &ferryv1.Pod{Namespace: "payments-dev"}, "dev"},
		{"fixed map", &ferryv1.Pod{Namespace: "payments"}, "prod"},
		{"default", &ferryv1.Pod{Namespace: "kube-system"}, "default"},
		{"other label ignored", &ferryv1.Pod{Namespace: "tools", NamespaceLabels: map[string]string{"env": "prod"}}, "default"},
		{"no regex match inside", &ferryv1.Pod{Namespace: "production"}, "default"},
	}
	for _, c := range cases {
		if got := env.Of(c.pod); got != c.want {
			t.Errorf("%s: environment of %s = %q, want %q", c.name, c.pod.Namespace, got, c.want)
		}
	}
	off := &Environment{Default: "x"}
	if got := off.Of(&ferryv1.Pod{Namespace: "a-prod", NamespaceLabels: map[string]string{"environment": "y"}}); got != "x" {
		t.Errorf("rules off: %q, want the default", got)
	}
	// An optional group that did not take part: the next rule decides.
	opt, err := NewEnvironment("", `^(?:x-(prod))?.*$`, map[string]string{"web": "m"}, "d")
	if err != nil {
		t.Fatal(err)
	}
	if got := opt.Of(&ferryv1.Pod{Namespace: "web"}); got != "m" {
		t.Errorf("unmatched group: %q, want the map's m", got)
	}
}

func TestCompileNamespaceRegex(t *testing.T) {
	for _, c := range []struct {
		expr string
		ok   bool
	}{{`^(?:.+-)?(dev|staging|prod)$`, true}, {`^(.*)$`, true}, {`^prod$`, false}, {`^(?:prod)$`, false}, {`(`, false}} {
		if _, err := CompileNamespaceRegex(c.expr); (err == nil) != c.ok {
			t.Errorf("%q: err %v, want ok %v", c.expr, err, c.ok)
		}
	}
}

func TestServiceName(t *testing.T) {
	cases := []struct {
		name string
		pod  *ferryv1.Pod
		want string
	}{
		{"app.kubernetes.io/name", &ferryv1.Pod{Name: "web-7d9f8c6b5-x2x4z", Labels: map[string]string{"app.kubernetes.io/name": "shop", "app": "a", "k8s-app": "k"}, OwnerKind: "Deployment", OwnerName: "web"}, "shop"},
		{"app", &ferryv1.Pod{Name: "web-7d9f8c6b5-x2x4z", Labels: map[string]string{"app": "a", "k8s-app": "k"}, OwnerKind: "Deployment", OwnerName: "web"}, "a"},
		{"k8s-app", &ferryv1.Pod{Name: "coredns-5d78c9869d-x7k2p", Labels: map[string]string{"k8s-app": "kube-dns"}, OwnerKind: "Deployment", OwnerName: "coredns"}, "kube-dns"},
		{"deployment", &ferryv1.Pod{Name: "web-7d9f8c6b5-x2x4z", OwnerKind: "Deployment", OwnerName: "web"}, "web"},
		{"statefulset", &ferryv1.Pod{Name: "db-0", OwnerKind: "StatefulSet", OwnerName: "db"}, "db"},
		{"daemonset", &ferryv1.Pod{Name: "fluent-bit-x2x4z", OwnerKind: "DaemonSet", OwnerName: "fluent-bit"}, "fluent-bit"},
		{"cronjob", &ferryv1.Pod{Name: "backup-28735940-x7k2p", OwnerKind: "CronJob", OwnerName: "backup"}, "backup"},
		{"job: pod name", &ferryv1.Pod{Name: "migrate-v2-x2x4z", OwnerKind: "Job", OwnerName: "migrate-v2"}, "migrate-v2"},
		{"replicaset: pod name", &ferryv1.Pod{Name: "web-7d9f8c6b5-x2x4z", OwnerKind: "ReplicaSet", OwnerName: "web-7d9f8c6b5"}, "web"},
		{"empty label skipped", &ferryv1.Pod{Name: "db-1", Labels: map[string]string{"app": ""}}, "db"},
		{"no metadata", &ferryv1.Pod{Name: "web-7d9f8c6b5-x2x4z"}, "web"},
	}
	for _, c := range cases {
		if got := ServiceName(c.pod); got != c.want {
			t.Errorf("%s: ServiceName = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestStripPodName(t *testing.T) {
	cases := []struct{ name, hash, node, want string }{
		{"web-7d9f8c6b5-x2x4z", "", "", "web"},                     // Deployment, hash guessed
		{"web-7d9f8-x2x4z", "", "", "web"},                         // short hash
		{"web-api-7d9f8c6b5-x2x4z", "7d9f8c6b5", "", "web-api"},    // hash known
		{"web-api-zzzzzz-x2x4z", "zzzzzz", "", "web-api"},          // hash known, not guessable
		{"fluent-bit-x2x4z", "", "", "fluent-bit"},                 // DaemonSet
		{"backup-28735940-x7k2p", "", "", "backup"},                // CronJob's Job
		{"db-0", "", "", "db"},                                     // StatefulSet
		{"kafka-broker-12", "", "", "kafka-broker"},                // StatefulSet
		{"etcd-node-1", "", "node-1", "etcd"},                      // static pod
		{"nginx", "", "", "nginx"},                                 // bare pod
		{"x2x4z", "", "", "x2x4z"},                                 // first segment stays
		{"web-admin", "", "", "web-admin"},                         // a word is no suffix
		{"api-bcdfg-x2x4z", "", "", "api-bcdfg"},                   // a hash always has a digit
		{"backup-28735940-abcde", "", "", "backup-28735940-abcde"}, // vowels: not a generated suffix
		{"my-app-nginx", "", "", "my-app-nginx"},
		{"-x2x4z", "", "", "-x2x4z"},
		{"", "", "", ""},
	}
	for _, c := range cases {
		if got := StripPodName(c.name, c.hash, c.node); got != c.want {
			t.Errorf("StripPodName(%q, %q, %q) = %q, want %q", c.name, c.hash, c.node, got, c.want)
		}
	}
}

func TestKubernetesStage(t *testing.T) {
	cases := []struct {
		name string
		pod  *ferryv1.Pod
		rs   string
		job  string
	}{
		{"deployment", &ferryv1.Pod{OwnerKind: "Deployment", OwnerName: "web", Labels: map[string]string{"pod-template-hash": "7d9f8"}}, "web-7d9f8", ""},
		{"cronjob", &ferryv1.Pod{OwnerKind: "CronJob", OwnerName: "backup", Labels: map[string]string{"job-name": "backup-28735940"}}, "", "backup-28735940"},
		{"cronjob new label", &ferryv1.Pod{OwnerKind: "CronJob", OwnerName: "backup", Labels: map[string]string{"batch.kubernetes.io/job-name": "backup-1", "job-name": "old"}}, "", "backup-1"},
		{"statefulset", &ferryv1.Pod{OwnerKind: "StatefulSet", OwnerName: "db", Labels: map[string]string{"pod-template-hash": "x"}}, "", ""},
	}
	for _, c := range cases {
		var m event.Meta
		c.pod.NodeName = "node-a"
		Kubernetes{Cluster: "eu"}.Enrich(context.Background(), c.pod, &m)
		if m.ReplicaSet != c.rs || m.Job != c.job || m.OwnerKind != c.pod.OwnerKind || m.OwnerName != c.pod.OwnerName || m.Cluster != "eu" || m.NodeName != "node-a" {
			t.Errorf("%s: %+v", c.name, m)
		}
	}
}

// TestEnricher: one Meta per pod shared by its events; an event whose pod
// the agent sent no metadata for is enriched from its file name's
// coordinates; a pod recreated under the same name is another pod; events
// without a pod are not enriched; the batch given is not changed.
func TestEnricher(t *testing.T) {
	web := &ferryv1.Pod{Uid: "u-web", Namespace: "shop-prod", Name: "web-7d9f8c6b5-x2x4z", NodeName: "node-a",
		Labels: map[string]string{"app.kubernetes.io/name": "shop-web"}, NamespaceLabels: map[string]string{"environment": "staging"},
		OwnerKind: "Deployment", OwnerName: "web", ContainerImages: map[string]string{"app": "web:1"}}
	db0 := &ferryv1.Pod{Uid: "u-db-old", Namespace: "payments", Name: "db-0", OwnerKind: "StatefulSet", OwnerName: "db"}
	ev := func(ns, pod, uid string) *ferryv1.Event {
		return &ferryv1.Event{Id: event.ID(nil, "n", pod, 1), Kubernetes: &ferryv1.Kubernetes{Namespace: ns, Pod: pod, PodUid: uid, Container: "app"}}
	}
	b := &event.Batch{Node: "node-a", Seq: 1, Pods: []*ferryv1.Pod{web, db0}, Events: []*ferryv1.Event{
		ev("shop-prod", web.Name, web.Uid),
		ev("payments", "db-0", "u-db-old"),
		ev("shop-prod", web.Name, web.Uid),
		ev("payments", "db-0", "u-db-new"), // recreated, no metadata yet
		ev("edge-dev", "cache-5f4b8c9d7b-q2w4z", "u-unknown"),
		{Id: event.ID(nil, "n", "file", 1)}, // a plain file
	}}
	e := New(Kubernetes{Cluster: "c1"}, Service{}, rules(t))
	out := e.Enrich(context.Background(), b)
	if b.Meta != nil {
		t.Fatal("Enrich changed the batch given")
	}
	m := out.Meta
	if m[0] != m[2] || m[0] == m[1] || m[1] == m[3] || m[5] != nil {
		t.Fatalf("sharing wrong: %p %p %p %p %p %p", m[0], m[1], m[2], m[3], m[4], m[5])
	}
	want := []struct{ svc, env, stream string }{
		{"shop-web", "staging", "logs-kubernetes.container-staging"},
		{"db", "prod", "logs-kubernetes.container-prod"},
		{"shop-web", "staging", "logs-kubernetes.container-staging"},
		{"db", "prod", "logs-kubernetes.container-prod"},
		{"cache", "dev", "logs-kubernetes.container-dev"},
	}
	for i, w := range want {
		if m[i].ServiceName != w.svc || m[i].Environment != w.env || out.DataStream(i) != w.stream {
			t.Errorf("event %d: service %q environment %q stream %q, want %+v", i, m[i].ServiceName, m[i].Environment, out.DataStream(i), w)
		}
	}
	if n, c := e.WithoutMetadata.Load(), e.Truncated.Load(); n != 2 || c != 0 {
		t.Errorf("counted %d events without metadata, %d truncated; want 2, 0", n, c)
	}
	web.Annotations = map[string]string{"huge": strings.Repeat("x", event.MaxMetaValueBytes+1)}
	e.Enrich(context.Background(), b)
	if n, c := e.WithoutMetadata.Load(), e.Truncated.Load(); n != 4 || c != 2 {
		t.Errorf("counted %d events without metadata, %d truncated; want 4, 2", n, c)
	}
	if out.DataStream(5) != "logs-file-default" {
		t.Errorf("plain file: %q", out.DataStream(5))
	}
	var doc map[string]any
	if err := json.Unmarshal(out.AppendDocument(nil, 0, time.Unix(0, 0)), &doc); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(doc["container"], doc["orchestrator"]); got != "map[image:map[name:web:1]] map[cluster:map[name:c1] type:kubernetes]" {
		t.Errorf("container, orchestrator: %s", got)
	}
	// Many pods: looked up by uid through a map.
	many := &event.Batch{Node: "n", Seq: 2}
	for i := range 10 {
		p := &ferryv1.Pod{Uid: fmt.Sprint("u", i), Namespace: "ns", Name: fmt.Sprint("p-", i), Labels: map[string]string{"app": fmt.Sprint("s", i)}}
		many.Pods = append(many.Pods, p)
		many.Events = append(many.Events, ev("ns", p.Name, p.Uid))
	}
	for i, mm := range e.Enrich(context.Background(), many).Meta {
		if mm.ServiceName != fmt.Sprint("s", i) {
			t.Errorf("pod %d: service %q", i, mm.ServiceName)
		}
	}
}

// TestEnrichConcurrently: sinks of a fanout enrich the same batch at once;
// each gets its own Meta and the batch is only read (run with -race).
func TestEnrichConcurrently(t *testing.T) {
	b, e := benchBatch(), New(Kubernetes{}, Service{}, rules(t))
	docs := make([][]byte, 4)
	done := make(chan int)
	for g := range docs {
		go func() {
			out := e.Enrich(context.Background(), b)
			for i := range out.Events {
				docs[g] = out.AppendDocument(docs[g], i, time.Unix(0, 0))
			}
			done <- g
		}()
	}
	for range docs {
		<-done
	}
	for g := 1; g < len(docs); g++ {
		if string(docs[g]) != string(docs[0]) {
			t.Fatalf("sink %d wrote other documents", g)
		}
	}
	if b.Meta != nil {
		t.Fatal("the shared batch was changed")
	}
}
