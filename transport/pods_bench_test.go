package transport

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// BenchmarkPodMetadata measures what Kubernetes metadata costs the agent:
// events of 100 pods (chunks of 16 lines of 160 bytes, the pods in turn,
// as a busy node's files are read) built into batches of 2048 and
// marshalled as gRPC does, with the metadata of each pod (8 labels, 2
// annotations, 3 namespace labels, owner, image) once per batch ("on")
// and without ("off"). One op is one event; wire-B/event is the encoded
// batch size per event. The paths give the pod uid, as the kubelet's
// /var/log/pods/<namespace>_<pod>_<uid>/ does.
func BenchmarkPodMetadata(b *testing.B) {
	const (
		nPods    = 100
		perChunk = 16
		msgLen   = 160
	)
	files := make([]*tail.File, nPods)
	pods := &fakePods{pods: map[string]*ferryv1.Pod{}}
	for i := range files {
		name := fmt.Sprintf("checkout-api-7d9f8b6c5d-%05d", i)
		uid := fmt.Sprintf("3f2b6a1c-9d4e-4f5a-8b7c-%012d", i)
		files[i] = &tail.File{ID: fmt.Sprintf("801-%x-0123456789abcdef", 1000+i), Path: "/var/log/containers/" + name + "_shop-prod_app-" + strings.Repeat("c", 64) + ".log",
			Input: "containers", Kube: &ferryv1.Kubernetes{Namespace: "shop-prod", Pod: name, PodUid: uid, Container: "app", ContainerId: strings.Repeat("c", 64)}}
		pods.pods[uid] = &ferryv1.Pod{
			Uid: uid, Namespace: "shop-prod", Name: name, NodeName: "node-1",
			Labels: map[string]string{"app.kubernetes.io/name": "checkout-api", "app.kubernetes.io/instance": "checkout-api-prod",
				"app.kubernetes.io/version": "1.42.0", "app.kubernetes.io/component": "api", "app.kubernetes.io/part-of": "shop",
				"app.kubernetes.io/managed-by": "Helm", "pod-template-hash": "7d9f8b6c5d", "team": "payments"},
			Annotations:     map[string]string{"team": "payments", "ferry.io/owner": "payments-oncall"},
			NamespaceLabels: map[string]string{"environment": "prod", "kubernetes.io/metadata.name": "shop-prod", "team": "payments"},
			OwnerKind:       "Deployment", OwnerName: "checkout-api",
			ContainerImages: map[string]string{"app": "registry.example.com/shop/checkout-api:1.42.0"},
		}
	}
	arena := make([]byte, 0, perChunk*msgLen)
	recs := make([]tail.Rec, perChunk)
	for i := range recs {
		start := len(arena)
		line := fmt.Sprintf("2025-01-02T03:04:05.%06dZ INFO request handled method=GET path=/api/v1/items/%d status=200 duration_ms=12 ", i, i)
		line += strings.Repeat("x", msgLen-len(line))
		arena = append(arena, line...)
		recs[i] = tail.Rec{Off: int64(i * (msgLen + 1)), MsgStart: uint32(start), MsgEnd: uint32(len(arena)), Time: int64(i), Stream: 1}
	}
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			cfg := ClientConfig{Node: "node-1", MaxInflight: 1 << 30, BatchMaxEvents: 2048, BatchMaxBytes: 1 << 20}
			if on {
				cfg.Pods = pods
			}
			s := &session{c: &Client{cfg: cfg}, ctx: context.Background()}
			s.cur = s.newBuilder()
			s.nextSeq = 1
			var wire, events int
			var buf []byte
			flush := func() {
				for _, p := range s.queue {
					var err error
					if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf[:0], p.msg); err != nil {
						b.Fatal(err)
					}
					wire += len(buf)
					events += p.events
					p.b.reset()
					s.free = append(s.free, p.b)
				}
				clear(s.queue)
				s.queue = s.queue[:0]
			}
			b.ReportAllocs()
			b.ResetTimer()
			for n, i := 0, 0; n < b.N; i++ {
				c := tail.NewChunk(files[i%nPods], func() {})
				k := min(perChunk, b.N-n)
				c.Arena, c.Recs, c.End = arena, recs[:k], int64(i+1)*perChunk*(msgLen+1)
				n += k
				s.pend, s.pendAt = c, 0
				s.fill(false)
				flush()
			}
			s.fill(true)
			flush()
			b.StopTimer()
			b.ReportMetric(float64(wire)/float64(events), "wire-B/event")
		})
	}
}
