package transport

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// fakePods serves pod metadata by uid, else by namespace/name, and counts
// lookups.
type fakePods struct {
	mu    sync.Mutex
	pods  map[string]*ferryv1.Pod
	calls int
}

func (f *fakePods) Pod(_ context.Context, k *ferryv1.Kubernetes) *ferryv1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if k.PodUid != "" {
		return f.pods[k.PodUid]
	}
	return f.pods[k.Namespace+"/"+k.Pod]
}

func podFile(id, ns, pod, uid string) *tail.File {
	return &tail.File{ID: id, Path: "/var/log/containers/" + id + ".log", Input: "containers",
		Kube: &ferryv1.Kubernetes{Namespace: ns, Pod: pod, PodUid: uid, Container: "app", ContainerId: "c0ffee0123456789"}}
}

// TestBatchCarriesEachPodOnce: every batch carries the metadata of each
// pod of its events exactly once, whatever the number of its files and
// chunks; an event whose path gave no pod uid gets the pod's (the file's
// shared coordinates untouched); a pod without metadata leaves its events
// as they were; metadata is looked up once per chunk, not per event.
func TestBatchCarriesEachPodOnce(t *testing.T) {
	podA := &ferryv1.Pod{Uid: "uid-a", Namespace: "shop", Name: "web-1", Labels: map[string]string{"app": "web"}}
	podB := &ferryv1.Pod{Uid: "uid-b", Namespace: "shop", Name: "db-0", Labels: map[string]string{"app": "db"}}
	pods := &fakePods{pods: map[string]*ferryv1.Pod{"uid-a": podA, "shop/web-1": podA, "uid-b": podB}}
	a1 := podFile("a1", "shop", "web-1", "uid-a")
	a2 := podFile("a2", "shop", "web-1", "") // a path that gave no uid
	b := podFile("b", "shop", "db-0", "uid-b")
	c := podFile("c", "shop", "gone-1", "uid-gone")
	s := &session{c: &Client{cfg: ClientConfig{Node: testNode, Pods: pods, MaxInflight: 8, BatchMaxEvents: 4, BatchMaxBytes: 1 << 20}}, ctx: context.Background()}
	s.cur = s.newBuilder()
	s.nextSeq = 1
	for _, ch := range []*tail.Chunk{chunkOf(a1, "1", "2", "3"), chunkOf(a2, "4", "5", "6"), chunkOf(b, "7", "8"), chunkOf(c, "9", "10")} {
		s.pend, s.pendAt = ch, 0
		s.fill(false)
	}
	s.fill(true)

	type want struct {
		pods []string // uids, in order
		uids []string // of the events
	}
	wants := []want{
		{[]string{"uid-a"}, []string{"uid-a", "uid-a", "uid-a", "uid-a"}},
		{[]string{"uid-a", "uid-b"}, []string{"uid-a", "uid-a", "uid-b", "uid-b"}},
		{nil, []string{"uid-gone", "uid-gone"}},
	}
	if len(s.queue) != len(wants) {
		t.Fatalf("%d batches, want %d", len(s.queue), len(wants))
	}
	for i, p := range s.queue {
		raw, err := proto.Marshal(p.msg)
		if err != nil {
			t.Fatal(err)
		}
		var onWire ferryv1.Batch // what the aggregator decodes
		if err := proto.Unmarshal(raw, &onWire); err != nil {
			t.Fatal(err)
		}
		var got want
		for _, pod := range onWire.Pods {
			got.pods = append(got.pods, pod.Uid)
			if wp := pods.pods[pod.Uid]; !proto.Equal(pod, wp) {
				t.Errorf("batch %d: pod decoded as %v, sent %v", i+1, pod, wp)
			}
		}
		for _, ev := range onWire.Events {
			got.uids = append(got.uids, ev.Kubernetes.GetPodUid())
		}
		if fmt.Sprint(got) != fmt.Sprint(wants[i]) {
			t.Errorf("batch %d: pods %v, event uids %v; want %v", i+1, got.pods, got.uids, wants[i])
		}
		if est, n := p.b.bytes, proto.Size(p.msg); est < n {
			t.Errorf("batch %d: estimated %d bytes, encoded %d: the pods' size is not counted", i+1, est, n)
		}
	}
	if a2.Kube.PodUid != "" {
		t.Errorf("the file's shared coordinates were modified: %v", a2.Kube)
	}
	if ev := s.queue[2].msg.Events[0]; ev.Kubernetes != c.Kube || ev.Kubernetes.PodUid != "uid-gone" {
		t.Errorf("an event of a pod without metadata: %v", ev.Kubernetes)
	}
	if pods.calls != 4 {
		t.Errorf("%d lookups for 4 chunks of 10 events, want one per chunk", pods.calls)
	}
	// A reused builder carries no pod of the batch before.
	s.queue[0].b.reset()
	if len(s.queue[0].b.pods) != 0 || len(s.queue[0].b.podUIDs) != 0 {
		t.Error("reset kept the pods")
	}
}

// TestNoPodsWithoutMetadata: without ClientConfig.Pods, batches are as
// before: no pods, the file's coordinates on every event.
func TestNoPodsWithoutMetadata(t *testing.T) {
	a := podFile("a", "shop", "web-1", "")
	s := &session{c: &Client{cfg: ClientConfig{Node: testNode, MaxInflight: 8, BatchMaxEvents: 4, BatchMaxBytes: 1 << 20}}, ctx: context.Background()}
	s.cur = s.newBuilder()
	s.nextSeq = 1
	s.pend = chunkOf(a, "1", "2")
	s.fill(true)
	if len(s.queue) != 1 || len(s.queue[0].msg.Pods) != 0 || s.queue[0].msg.Events[0].Kubernetes != a.Kube {
		t.Fatalf("batch %v", s.queue[0].msg)
	}
}

// TestPodOfReusedChunk: chunks are pooled, so the next chunk may be the
// same *Chunk as the one before, of another file: its metadata is looked
// up again, not taken over from the other pod.
func TestPodOfReusedChunk(t *testing.T) {
	podA := &ferryv1.Pod{Uid: "uid-a", Namespace: "shop", Name: "web-1"}
	podB := &ferryv1.Pod{Uid: "uid-b", Namespace: "shop", Name: "db-0"}
	pods := &fakePods{pods: map[string]*ferryv1.Pod{"uid-a": podA, "uid-b": podB}}
	a, b := podFile("a", "shop", "web-1", "uid-a"), podFile("b", "shop", "db-0", "uid-b")
	s := &session{c: &Client{cfg: ClientConfig{Node: testNode, Pods: pods, MaxInflight: 8, BatchMaxEvents: 100, BatchMaxBytes: 1 << 20}}, ctx: context.Background()}
	s.cur = s.newBuilder()
	s.nextSeq = 1
	c := chunkOf(a, "1", "2")
	s.pend, s.pendAt = c, 0
	s.fill(false)
	// The same Chunk, handed out again for file b (as the pool does).
	next := chunkOf(b, "3")
	c.File, c.Arena, c.Recs, c.End = b, next.Arena, next.Recs, next.End
	s.pend, s.pendAt = c, 0
	s.fill(true)
	evs := s.queue[0].msg.Events
	if len(evs) != 3 || evs[2].Kubernetes.GetPod() != "db-0" || len(s.queue[0].msg.Pods) != 2 {
		t.Fatalf("the reused chunk's event: %v, %d pods in the batch", evs[len(evs)-1].Kubernetes, len(s.queue[0].msg.Pods))
	}
}
