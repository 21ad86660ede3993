package transport

import (
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
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

// sampleOverhead is added to an event's own encoded size: its tag and
// length in the batch.
const sampleOverhead = 1 + 5

// addSample adds the events of smp from index from on, as many as fit,
// and returns the index of the first event not added. The events are the
// sampler's, not copied (they own their memory and nobody changes them).
// Once every event is in, the sample's Done is recorded to run when the
// batch is acknowledged, in order with the offsets of the files. An empty
// batch always takes at least one event.
func (b *builder) addSample(smp *event.Sample, from int) int {
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
	}
	if i == len(smp.Events) && smp.Done != nil {
		b.commits = append(b.commits, commit{done: smp.Done})
	}
	return i
}
