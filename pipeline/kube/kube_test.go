package kube

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// syncBuf is a bytes.Buffer safe for the informers' goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func pod(ns, name, uid, node string, labels map[string]string, owner ...metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, UID: types.UID(uid), Labels: labels, OwnerReferences: owner,
			Annotations: map[string]string{"team": "payments", "kubectl.kubernetes.io/last-applied-configuration": "{…}",
				"ferry.io/multiline": "java", "ferry.io/multiline.app": "python", "ferry.io/multilinex": "no"},
		},
		Spec: corev1.PodSpec{
			NodeName:       node,
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox:1.36"}},
			Containers:     []corev1.Container{{Name: "app", Image: "registry.example/web:1.2.3"}},
		},
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func ctrl(kind, name string) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{Kind: kind, Name: name, Controller: &t, APIVersion: "apps/v1", UID: "owner"}
}

// start returns a started Meta over cs, with its log, and waits until it
// synced when wantSync.
func start(t *testing.T, cs *fake.Clientset, cfg Config, wantSync bool) (*Meta, *syncBuf) {
	t.Helper()
	buf := &syncBuf{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Node == "" {
		cfg.Node = "node-1"
	}
	m := New(cs, cfg, log)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m.Start(ctx)
	if wantSync {
		waitFor(t, "cache synced", m.Synced)
	}
	return m, buf
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func byName(ns, name string) *ferryv1.Kubernetes {
	return &ferryv1.Kubernetes{Namespace: ns, Pod: name}
}

func TestPodMetadata(t *testing.T) {
	cs := fake.NewClientset(
		namespace("shop-prod", map[string]string{"environment": "prod"}),
		pod("shop-prod", "web-7d9f8b6c5d-x2x4z", "uid-web", "node-1",
			map[string]string{"app.kubernetes.io/name": "web", "pod-template-hash": "7d9f8b6c5d"}, ctrl("ReplicaSet", "web-7d9f8b6c5d")),
	)
	var fieldSelector string
	var mu sync.Mutex
	cs.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		fieldSelector = a.(k8stesting.ListAction).GetListRestrictions().Fields.String()
		mu.Unlock()
		return false, nil, nil
	})
	m, _ := start(t, cs, Config{Annotations: []string{"team"}}, true)

	mu.Lock()
	if fieldSelector != "spec.nodeName=node-1" {
		t.Errorf("pods listed with field selector %q, want spec.nodeName=node-1 (a node-scoped watch)", fieldSelector)
	}
	mu.Unlock()
	for _, k := range []*ferryv1.Kubernetes{byName("shop-prod", "web-7d9f8b6c5d-x2x4z"), {PodUid: "uid-web"}} {
		p := m.Pod(context.Background(), k)
		if p == nil {
			t.Fatalf("no metadata for %v", k)
		}
		want := &ferryv1.Pod{
			Uid: "uid-web", Namespace: "shop-prod", Name: "web-7d9f8b6c5d-x2x4z", NodeName: "node-1",
			Labels: map[string]string{"app.kubernetes.io/name": "web", "pod-template-hash": "7d9f8b6c5d"},
			// only the allowed key and Ferry's control annotations
			Annotations:     map[string]string{"team": "payments", "ferry.io/multiline": "java", "ferry.io/multiline.app": "python"},
			NamespaceLabels: map[string]string{"environment": "prod"},
			OwnerKind:       "Deployment", OwnerName: "web",
			ContainerImages: map[string]string{"init": "busybox:1.36", "app": "registry.example/web:1.2.3"},
		}
		if p.String() != want.String() {
			t.Errorf("lookup %v:\n got %v\nwant %v", k, p, want)
		}
	}
	// The same pod, unchanged: the same message, not a new one per lookup.
	if a, b := m.Pod(context.Background(), byName("shop-prod", "web-7d9f8b6c5d-x2x4z")), m.Pod(context.Background(), byName("shop-prod", "web-7d9f8b6c5d-x2x4z")); a != b {
		t.Error("an unchanged pod was built again")
	}
	// A uid that is not the pod's (a pod of the same name before) is not it.
	m.cfg.Wait = time.Millisecond
	if p := m.Pod(context.Background(), &ferryv1.Kubernetes{Namespace: "shop-prod", Pod: "web-7d9f8b6c5d-x2x4z", PodUid: "uid-older"}); p != nil {
		t.Errorf("a file of another pod uid got %v", p)
	}
}

func TestPodUpdatedAndNamespaceRelabelled(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(namespace("dev", nil), pod("dev", "api-0", "uid-api", "node-1", map[string]string{"app": "api", "track": "a"}, ctrl("StatefulSet", "api")))
	m, _ := start(t, cs, Config{}, true)
	if p := m.Pod(ctx, byName("dev", "api-0")); p.GetLabels()["track"] != "a" || p.GetOwnerKind() != "StatefulSet" || p.GetOwnerName() != "api" {
		t.Fatalf("before the update: %v", p)
	}
	p := pod("dev", "api-0", "uid-api", "node-1", map[string]string{"app": "api", "track": "b"}, ctrl("StatefulSet", "api"))
	p.ResourceVersion = "2"
	if _, err := cs.CoreV1().Pods("dev").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the label change", func() bool { return m.Pod(ctx, byName("dev", "api-0")).GetLabels()["track"] == "b" })
	ns := namespace("dev", map[string]string{"environment": "dev"})
	ns.ResourceVersion = "2"
	if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the namespace label", func() bool { return m.Pod(ctx, byName("dev", "api-0")).GetNamespaceLabels()["environment"] == "dev" })
}

func TestDeletedPodKeptForGrace(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		grace time.Duration
	}{{"grace", 300 * time.Millisecond}, {"no grace", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(namespace("dev", nil), pod("dev", "job-abc", "uid-job", "node-1", nil, ctrl("Job", "backup-28735940")))
			m, _ := start(t, cs, Config{DeleteGrace: tc.grace, Wait: time.Millisecond}, true)
			if p := m.Pod(ctx, byName("dev", "job-abc")); p.GetOwnerKind() != "CronJob" || p.GetOwnerName() != "backup" {
				t.Fatalf("owner: %v", p)
			}
			if err := cs.CoreV1().Pods("dev").Delete(ctx, "job-abc", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the delete", func() bool { _, ok, _ := m.podInf.GetStore().GetByKey("dev/job-abc"); return !ok })
			deleted := time.Now()
			got := m.Pod(ctx, byName("dev", "job-abc"))
			if tc.grace == 0 {
				if got != nil {
					t.Fatalf("delete_grace 0: a deleted pod still has metadata %v", got)
				}
				return
			}
			if got.GetOwnerName() != "backup" || m.Pod(ctx, &ferryv1.Kubernetes{PodUid: "uid-job"}) == nil {
				t.Fatalf("within delete_grace: %v", got)
			}
			waitFor(t, "the end of the grace", func() bool { return m.Pod(ctx, byName("dev", "job-abc")) == nil })
			if since := time.Since(deleted); since < tc.grace/2 {
				t.Errorf("forgotten %s after the delete, grace %s", since, tc.grace)
			}
		})
	}
}

func TestWaitForNewPod(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(namespace("dev", nil))
	m, _ := start(t, cs, Config{Wait: 2 * time.Second, NoWaitAfterMiss: time.Hour}, true)
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = cs.CoreV1().Pods("dev").Create(ctx, pod("dev", "new", "uid-new", "node-1", map[string]string{"app": "new"}), metav1.CreateOptions{})
	}()
	start := time.Now()
	if p := m.Pod(ctx, byName("dev", "new")); p.GetLabels()["app"] != "new" {
		t.Fatalf("a pod created while its lines waited: %v", p)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("waited %s for a pod created after 50ms", d)
	}
}

func TestWaitBounded(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	m, buf := start(t, cs, Config{Wait: 200 * time.Millisecond, NoWaitAfterMiss: time.Hour}, true)
	start := time.Now()
	if p := m.Pod(ctx, byName("dev", "gone-1")); p != nil {
		t.Fatal(p)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("first unknown pod: waited %s, want about 200ms", d)
	}
	// After a wait that ran out: no more waiting, for this pod or others.
	start = time.Now()
	for i := range 50 {
		_ = m.Pod(ctx, byName("dev", "gone-"+string(rune('a'+i%26))))
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("50 more unknown pods took %s: waits must not add up", d)
	}
	if c := m.Counters(); c["ferry_agent_kube_waits_total"] != 1 || c["ferry_agent_kube_lookups_missed_total"] != 51 {
		t.Errorf("counters %v", c)
	}
	if !strings.Contains(buf.String(), "no Kubernetes metadata for a pod") {
		t.Errorf("log: %s", buf)
	}
	// A cancelled context ends a wait at once.
	m2, _ := start2(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	start = time.Now()
	_ = m2.Pod(cctx, byName("dev", "x"))
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancelled lookup took %s", d)
	}
}

func start2(t *testing.T) (*Meta, *syncBuf) {
	return start(t, fake.NewClientset(), Config{Wait: time.Hour}, true)
}

func TestForbiddenNamespaces(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(namespace("dev", map[string]string{"environment": "dev"}), pod("dev", "web-1", "uid-1", "node-1", map[string]string{"app": "web"}))
	msg := `User "system:serviceaccount:logging:ferry" cannot list resource "namespaces" in API group "" at the cluster scope`
	forbidden := func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "", &forbiddenErr{msg})
	}
	cs.PrependReactor("list", "namespaces", forbidden)
	cs.PrependWatchReactor("namespaces", func(a k8stesting.Action) (bool, watchIface, error) {
		_, _, err := forbidden(a)
		return true, nil, err
	})
	m, buf := start(t, cs, Config{Wait: 50 * time.Millisecond}, false)
	waitFor(t, "the pod cache", m.podInf.HasSynced)
	waitFor(t, "the 403 logged", func() bool { return strings.Contains(buf.String(), "level=ERROR") })
	want := "list namespaces is forbidden for system:serviceaccount:logging:ferry: grant get/list/watch on namespaces"
	if !strings.Contains(buf.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, buf)
	}
	// Pods still come with their metadata, without namespace labels.
	if p := m.Pod(ctx, byName("dev", "web-1")); p.GetLabels()["app"] != "web" || len(p.GetNamespaceLabels()) != 0 {
		t.Errorf("pod metadata with namespaces forbidden: %v", p)
	}
	waitFor(t, "a retry of the list", func() bool { return m.Counters()["ferry_agent_kube_watch_errors_total"] >= 2 })
	if n := strings.Count(buf.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d errors logged for one missing permission, want 1:\n%s", n, buf)
	}
}

type forbiddenErr struct{ s string }

func (e *forbiddenErr) Error() string { return e.s }

func TestForbiddenMessage(t *testing.T) {
	err := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", &forbiddenErr{`User "alice" cannot watch resource "pods" in API group "" at the cluster scope`})
	got := forbiddenMessage("pods", "", err)
	if !strings.HasPrefix(got, "watch pods is forbidden for alice: grant get/list/watch on pods") {
		t.Errorf("got %q", got)
	}
	got = forbiddenMessage("pods", "", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", &forbiddenErr{"denied"}))
	if !strings.HasPrefix(got, "list pods is forbidden for the agent's credentials: grant get/list/watch on pods") {
		t.Errorf("got %q", got)
	}
}

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		name             string
		labels           map[string]string
		refs             []metav1.OwnerReference
		wantKind, wantNm string
	}{
		{"none", nil, nil, "", ""},
		{"deployment by hash label", map[string]string{"pod-template-hash": "7d9f8"}, []metav1.OwnerReference{ctrl("ReplicaSet", "web-7d9f8")}, "Deployment", "web"},
		{"deployment with dashes", map[string]string{"pod-template-hash": "5c6b7d8f9"}, []metav1.OwnerReference{ctrl("ReplicaSet", "my-web-app-5c6b7d8f9")}, "Deployment", "my-web-app"},
		{"hash label not the suffix", map[string]string{"pod-template-hash": "abcde"}, []metav1.OwnerReference{ctrl("ReplicaSet", "web-7d9f8")}, "ReplicaSet", "web-7d9f8"},
		{"deployment by name pattern", nil, []metav1.OwnerReference{ctrl("ReplicaSet", "web-7d9f8")}, "Deployment", "web"},
		{"replicaset by hand", nil, []metav1.OwnerReference{ctrl("ReplicaSet", "frontend")}, "ReplicaSet", "frontend"},
		{"replicaset, suffix with a vowel", nil, []metav1.OwnerReference{ctrl("ReplicaSet", "web-canary")}, "ReplicaSet", "web-canary"},
		{"cronjob", nil, []metav1.OwnerReference{ctrl("Job", "backup-28735940")}, "CronJob", "backup"},
		{"job by hand", nil, []metav1.OwnerReference{ctrl("Job", "migrate-v2")}, "Job", "migrate-v2"},
		{"job, short number", nil, []metav1.OwnerReference{ctrl("Job", "migrate-42")}, "Job", "migrate-42"},
		{"statefulset", nil, []metav1.OwnerReference{ctrl("StatefulSet", "db")}, "StatefulSet", "db"},
		{"daemonset", nil, []metav1.OwnerReference{ctrl("DaemonSet", "ferry-agent")}, "DaemonSet", "ferry-agent"},
		{"controller among several", nil, []metav1.OwnerReference{{Kind: "ConfigMap", Name: "x"}, ctrl("StatefulSet", "db")}, "StatefulSet", "db"},
		{"no controller flag", nil, []metav1.OwnerReference{{Kind: "Node", Name: "node-1"}}, "Node", "node-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: tc.labels, OwnerReferences: tc.refs}}
			if k, n := Owner(p); k != tc.wantKind || n != tc.wantNm {
				t.Errorf("Owner = %s %s, want %s %s", k, n, tc.wantKind, tc.wantNm)
			}
		})
	}
}

func TestRESTConfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	for _, tc := range []struct {
		cfg     Config
		off     bool
		errText string
	}{
		{cfg: Config{Enabled: "false", Kubeconfig: "/x"}, off: true},
		{cfg: Config{Enabled: "auto"}, off: true},
		{cfg: Config{Enabled: ""}, off: true},
		{cfg: Config{Enabled: "true"}, errText: "in-cluster"},
		{cfg: Config{Enabled: "auto", Kubeconfig: "/nonexistent/kubeconfig"}, errText: "kubernetes.kubeconfig /nonexistent/kubeconfig"},
	} {
		_, err := RESTConfig(tc.cfg)
		switch {
		case tc.off && !isOff(err):
			t.Errorf("%+v: %v, want off", tc.cfg, err)
		case !tc.off && (err == nil || isOff(err) || !strings.Contains(err.Error(), tc.errText)):
			t.Errorf("%+v: %v, want an error with %q", tc.cfg, err, tc.errText)
		}
	}
	// Open with neither: one INFO line, no Meta, no error.
	buf := &syncBuf{}
	m, err := Open(context.Background(), Config{Enabled: "auto"}, slog.New(slog.NewTextHandler(buf, nil)))
	if m != nil || err != nil {
		t.Fatalf("Open = %v, %v", m, err)
	}
	if s := buf.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "level=INFO msg=\"running without Kubernetes metadata") {
		t.Errorf("log: %q", s)
	}
}

type watchIface = watch.Interface

func isOff(err error) bool { return errors.Is(err, ErrOff) }

// TestInClusterWithoutToken: in a pod (KUBERNETES_SERVICE_HOST set) whose
// service account token is not mounted, auto warns once and goes on
// without metadata; true is an error naming the in-cluster configuration.
func TestInClusterWithoutToken(t *testing.T) {
	if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token"); err == nil {
		t.Fatal("this machine has a service account token mounted: the case cannot be made here")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	buf := &syncBuf{}
	m, err := Open(context.Background(), Config{Enabled: "auto"}, slog.New(slog.NewTextHandler(buf, nil)))
	if m != nil || err != nil || !strings.Contains(buf.String(), "level=WARN msg=\"running without Kubernetes metadata\"") {
		t.Errorf("auto: %v, %v, log %q", m, err, buf)
	}
	if _, err := Open(context.Background(), Config{Enabled: "true"}, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "in-cluster") {
		t.Errorf("true: %v", err)
	}
}
