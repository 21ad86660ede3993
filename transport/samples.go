package transport

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Metric samples travel in the same batches as the lines of the files, but
// they have no offsets: nothing is read again after a crash. What holds:
//   - a sample acknowledged by the aggregator is in its sinks (as a line);
//   - a sample not acknowledged when the agent stops is lost;
//   - a sample sent again (a retry, a new stream) keeps its events' ids
//     (event.MetricID: node, metric set, series, sample time), so a sink
//     that dedupes by id stores it once;
//   - while the aggregator is unreachable the window fills and the client
//     stops taking samples: the sampler's own bounded queue drops the
//     oldest (see pipeline/metrics).

// samplePodWait bounds the wait for the metadata of a metric event's pod
// (the sampler has asked for it already: a pod still unknown is sent
// without).
const samplePodWait = 100 * time.Millisecond

// samplePod returns the metadata of the pod of a metric event (k.PodUid),
// to be carried by its batch, or nil.
func (s *session) samplePod(k *ferryv1.Kubernetes) *wirePod {
	if s.c.cfg.Pods == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, samplePodWait)
	defer cancel()
	pod := s.c.cfg.Pods.Pod(ctx, k)
	if pod == nil || pod.Uid != k.GetPodUid() {
		return nil
	}
	return s.wire(pod)
}

// wire returns the encoding of pod for the batches that carry it, made
// once per version of the pod; nil if it cannot be encoded (logged).
func (s *session) wire(pod *ferryv1.Pod) *wirePod {
	if w := s.wirePods[pod]; w != nil {
		return w
	}
	w, err := newWirePod(pod)
	if err != nil {
		s.c.log.Error("cannot encode the metadata of a pod; its events go without it", "namespace", pod.Namespace, "pod", pod.Name, "err", err)
		return nil
	}
	if s.wirePods == nil || len(s.wirePods) >= 1<<12 {
		s.wirePods = make(map[*ferryv1.Pod]*wirePod) // older versions of pods, forgotten
	}
	s.wirePods[pod] = w
	return w
}

// sampleOverhead is added to an event's own encoded size: its tag and
// length in the batch.
const sampleOverhead = 1 + 5

// addSample adds the events of smp from index from on, as many as fit,
// and returns the index of the first event not added. The events are the
// sampler's, not copied (they own their memory and nobody changes them).
// Once every event is in, the sample's Done is recorded to run when the
// batch is acknowledged, in order with the offsets of the files. An empty
// batch always takes at least one event.
func (b *builder) addSample(smp *event.Sample, from int, podOf func(*ferryv1.Kubernetes) *wirePod) int {
	if b.empty() {
		b.opened = time.Now()
	}
	i := from
	for ; i < len(smp.Events) && !b.ready(); i++ {
		ev := smp.Events[i]
		size := proto.Size(ev) + sampleOverhead
		if b.n > 0 && b.bytes+size > b.maxBytes {
			b.full = true
			break
		}
		b.n++
		b.bytes += size
		b.ptrs = append(b.ptrs, ev)
		if k := ev.GetKubernetes(); k.GetPodUid() != "" {
			if pod := podOf(k); pod != nil {
				b.carry(pod)
			}
		}
	}
	if i == len(smp.Events) && smp.Done != nil {
		b.commits = append(b.commits, commit{done: smp.Done})
	}
	return i
}
