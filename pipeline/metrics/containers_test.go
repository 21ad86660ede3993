package metrics

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

const (
	ctrA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"
	ctrB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2"
	ctrC = "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc3"
	pod1 = "1a2b3c4d-0000-4000-8000-000000000001"
	pod2 = "1a2b3c4d-0000-4000-8000-000000000002"
)

// kube returns the fields of the event of pod uid and container id ("" for
// the pod's own event).
func kube(evs []*ferryv1.Event, uid, id string) map[string]*ferryv1.Value {
	for _, e := range evs {
		k := e.GetKubernetes()
		if k.GetPodUid() == uid && k.GetContainerId() == id {
			return e.GetFields()
		}
	}
	return nil
}

// TestContainerFixtures samples the same pods through the cgroup layouts
// the kubelet makes (cgroup v2 and v1, systemd and cgroupfs drivers), four
// samples 10 s apart: first sample (no rate), rates, a container whose
// counter went down (restarted in place) and one that disappeared and
// came back.
func TestContainerFixtures(t *testing.T) {
	for _, layout := range []string{"v2-systemd", "v2-cgroupfs", "v1", "v1-systemd"} {
		t.Run(layout, func(t *testing.T) {
			root := func(i int) string { return filepath.Join("testdata", "cgroup", layout, "t"+string(rune('0'+i))) }
			s, err := New(Config{Node: "node-1", Sets: []string{"containers"}, CgroupRoot: root(0)}, quiet())
			if err != nil {
				t.Fatal(err)
			}
			s.cores = 2
			cs := s.sets[0].(*containerSet)
			sample := func(i int) []*ferryv1.Event {
				cs.root = root(i)
				return s.Collect(context.Background(), at(i))
			}

			e0 := sample(0)
			if len(e0) != 5 {
				t.Fatalf("t0: %d events, want 5 (2 pods, 3 containers; CRI-O's conmon is none)", len(e0))
			}
			for _, e := range e0 {
				ds := e.GetFields()["data_stream.dataset"].GetStr()
				if k := e.GetKubernetes(); (ds == "kubernetes.container") != (k.GetContainerId() != "") || k.GetPodUid() == "" {
					t.Errorf("event of %s with kubernetes %v", ds, k)
				}
				if _, ok := e.GetFields()["data_stream.namespace"]; ok {
					t.Error("a container metric has a namespace: it must come from its pod's environment")
				}
			}
			check(t, "t0 A", kube(e0, pod1, ctrA), want{
				"kubernetes.container.cpu.usage.core.ns":           500_000_000,
				"kubernetes.container.cpu.usage.nanocores":         absent,
				"kubernetes.container.memory.usage.bytes":          200e6,
				"kubernetes.container.memory.workingset.bytes":     150e6,
				"kubernetes.container.memory.limit.bytes":          268435456,
				"kubernetes.container.memory.usage.limit.pct":      200e6 / 268435456,
				"kubernetes.container.memory.workingset.limit.pct": 150e6 / 268435456,
			})
			check(t, "t0 B", kube(e0, pod1, ctrB), want{
				"kubernetes.container.memory.workingset.bytes": 80e6,
				"kubernetes.container.memory.limit.bytes":      absent,
			})
			check(t, "t0 pod1", kube(e0, pod1, ""), want{
				"kubernetes.pod.memory.usage.bytes": 300e6, "kubernetes.pod.memory.working_set.bytes": 200e6,
				"kubernetes.pod.memory.usage.limit.pct": absent,
			})

			e1 := sample(1)
			check(t, "t1 A", kube(e1, pod1, ctrA), want{
				"kubernetes.container.cpu.usage.nanocores": 25e6,
				"kubernetes.container.cpu.usage.limit.pct": 0.05,
				"kubernetes.container.cpu.usage.node.pct":  0.0125,
			})
			check(t, "t1 B", kube(e1, pod1, ctrB), want{
				"kubernetes.container.cpu.usage.nanocores": 100e6,
				"kubernetes.container.cpu.usage.limit.pct": absent,
			})
			check(t, "t1 C", kube(e1, pod2, ctrC), want{
				"kubernetes.container.cpu.usage.nanocores": 500e6, "kubernetes.container.cpu.usage.limit.pct": 0.5,
				"kubernetes.container.memory.usage.limit.pct": 60e6 / 134217728.0,
			})
			check(t, "t1 pod1", kube(e1, pod1, ""), want{"kubernetes.pod.cpu.usage.nanocores": 125e6})
			check(t, "t1 pod2", kube(e1, pod2, ""), want{"kubernetes.pod.cpu.usage.nanocores": 500e6, "kubernetes.pod.cpu.usage.limit.pct": 0.5})

			e2 := sample(2)
			check(t, "t2 A (counter reset)", kube(e2, pod1, ctrA), want{
				"kubernetes.container.cpu.usage.core.ns": 1e6, "kubernetes.container.cpu.usage.nanocores": absent,
				"kubernetes.container.cpu.usage.limit.pct": absent,
			})
			if kube(e2, pod1, ctrB) != nil {
				t.Error("t2: container B is gone but has an event")
			}
			check(t, "t2 pod1", kube(e2, pod1, ""), want{"kubernetes.pod.cpu.usage.nanocores": 5e6})

			e3 := sample(3)
			check(t, "t3 A", kube(e3, pod1, ctrA), want{"kubernetes.container.cpu.usage.nanocores": 10e6})
			check(t, "t3 B (back)", kube(e3, pod1, ctrB), want{"kubernetes.container.cpu.usage.nanocores": absent})
		})
	}
}

func TestCgroupNames(t *testing.T) {
	for _, c := range []struct{ name, uid, id string }{
		{"kubepods-burstable-pod1a2b_0000_4000.slice", "1a2b-0000-4000", ""},
		{"kubepods-pod1a2b_0000.slice", "1a2b-0000", ""},
		{"pod1a2b-0000-4000", "1a2b-0000-4000", ""},
		{"kubepods-burstable.slice", "", ""},
		{"burstable", "", ""},
		{"cri-containerd-" + ctrA + ".scope", "", ctrA},
		{"docker-" + ctrA + ".scope", "", ctrA},
		{"crio-" + ctrA + ".scope", "", ctrA},
		{"crio-conmon-" + ctrA + ".scope", "", ""},
		{ctrA, "", ctrA},
		{"init.scope", "", ""},
	} {
		if got := podUID(c.name); got != c.uid {
			t.Errorf("podUID(%q) = %q, want %q", c.name, got, c.uid)
		}
		if got := containerID(c.name); got != c.id {
			t.Errorf("containerID(%q) = %q, want %q", c.name, got, c.id)
		}
	}
}

type fakePods map[string]*ferryv1.Pod

func (f fakePods) Pod(_ context.Context, k *ferryv1.Kubernetes) *ferryv1.Pod { return f[k.GetPodUid()] }

// TestContainerPodNames: with the agent's Kubernetes metadata, pod and
// container events carry their pod's namespace and name; a pod it does not
// know keeps its uid only.
func TestContainerPodNames(t *testing.T) {
	pods := fakePods{pod1: {Uid: pod1, Namespace: "shop-prod", Name: "web-7d9f8-abcde"}}
	s, err := New(Config{Node: "n", Sets: []string{"containers"}, CgroupRoot: filepath.Join("testdata", "cgroup", "v2-cgroupfs", "t0"), Pods: pods}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s.Collect(context.Background(), at(0)) {
		k := e.GetKubernetes()
		switch k.GetPodUid() {
		case pod1:
			if k.GetNamespace() != "shop-prod" || k.GetPod() != "web-7d9f8-abcde" {
				t.Errorf("event of pod 1 (container %q): namespace %q pod %q", k.GetContainerId(), k.GetNamespace(), k.GetPod())
			}
		case pod2:
			if k.GetNamespace() != "" || k.GetPod() != "" {
				t.Errorf("event of unknown pod 2 named %s/%s", k.GetNamespace(), k.GetPod())
			}
		default:
			t.Errorf("event of pod %q", k.GetPodUid())
		}
	}
}

// TestContainerNamesFromLogLinks: container names (and, without
// Kubernetes metadata, namespace and pod) come from the kubelet's log links
// under <host_root>/var/log/containers; a container whose link appears
// later is named from the next cycle on; the metadata's pod names win.
func TestContainerNamesFromLogLinks(t *testing.T) {
	host := t.TempDir()
	logs := filepath.Join(host, "var", "log", "containers")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	touch := func(name string) {
		if err := os.WriteFile(filepath.Join(logs, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	touch("web-1_shop-prod_web-" + ctrA + ".log")
	touch("web-1_shop-prod_log-shipper-" + ctrB + ".log")
	touch("not-a-container.log")
	cg := filepath.Join("testdata", "cgroup", "v2-cgroupfs", "t0")
	for _, tc := range []struct {
		name     string
		pods     PodNamer
		ns, pod1 string
	}{
		{"log links only", nil, "shop-prod", "web-1"},
		{"metadata first", fakePods{pod1: {Uid: pod1, Namespace: "shop", Name: "web-7d9f8-abcde"}}, "shop", "web-7d9f8-abcde"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Node: "n", Sets: []string{"containers"}, HostRoot: host, CgroupRoot: cg, Pods: tc.pods}, quiet())
			if err != nil {
				t.Fatal(err)
			}
			evs := s.Collect(context.Background(), at(0))
			for _, c := range []struct{ id, container string }{{"", ""}, {ctrA, "web"}, {ctrB, "log-shipper"}} {
				k := kubeOf(evs, pod1, c.id)
				if k.GetNamespace() != tc.ns || k.GetPod() != tc.pod1 || k.GetContainer() != c.container {
					t.Errorf("pod 1 container %q: %v, want %s/%s container %q", c.id, k, tc.ns, tc.pod1, c.container)
				}
			}
			if k := kubeOf(evs, pod2, ctrC); k.GetNamespace() != "" || k.GetContainer() != "" {
				t.Errorf("container C, without log link: %v", k)
			}
		})
	}
	s, err := New(Config{Node: "n", Sets: []string{"containers"}, HostRoot: host, CgroupRoot: cg}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	s.Collect(context.Background(), at(0))
	touch("db-0_shop-prod_postgres-" + ctrC + ".log")
	k := kubeOf(s.Collect(context.Background(), at(1)), pod2, ctrC)
	if k.GetPod() != "db-0" || k.GetContainer() != "postgres" {
		t.Errorf("container C after its log link appeared: %v", k)
	}
}

func kubeOf(evs []*ferryv1.Event, uid, id string) *ferryv1.Kubernetes {
	for _, e := range evs {
		if k := e.GetKubernetes(); k.GetPodUid() == uid && k.GetContainerId() == id {
			return k
		}
	}
	return nil
}

func TestParseLogName(t *testing.T) {
	for _, c := range []struct {
		name, id string
		want     containerName
		ok       bool
	}{
		{"web-1_shop_app-" + ctrA + ".log", ctrA, containerName{"shop", "web-1", "app"}, true},
		{"web-1_shop_log-shipper-" + ctrA + ".log", ctrA, containerName{"shop", "web-1", "log-shipper"}, true},
		{"web-1_shop_app.log", "", containerName{}, false},
		{"web-1_shop_app-xyz.log", "", containerName{}, false},
		{"web-1_shop_app-" + ctrA, "", containerName{}, false},
	} {
		id, n, ok := parseLogName(c.name)
		if id != c.id || n != c.want || ok != c.ok {
			t.Errorf("parseLogName(%q) = %q %+v %v", c.name, id, n, ok)
		}
	}
}
