package event

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Sample is the events of one metric sampling cycle, built whole by the
// sampler: they own their memory and have no file offsets to commit. A
// sample not acknowledged before the agent stops is lost; one sent again
// keeps its events' ids (see MetricID), so it is not stored twice.
type Sample struct {
	Events []*ferryv1.Event
	// Done, if not nil, is called once, after every event of the sample is
	// acknowledged (or refused for good).
	Done func()
}

// MetricID returns the deterministic id of a metric sample: a hash of node,
// dataset (the metric set), series (what tells the series apart within its
// dataset on the node: a mount point, a container; "" for node-wide sets)
// and the sample's time. It never collides with the id of a line (ID),
// whose input differs by a leading marker. The result is appended to dst.
func MetricID(dst []byte, node, dataset, series string, unixNano int64) []byte {
	h := sha256.New()
	h.Write([]byte("\x00metric\x00"))
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(dataset))
	h.Write([]byte{0})
	h.Write([]byte(series))
	h.Write([]byte{0})
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(unixNano))
	h.Write(buf[:])
	var sum [sha256.Size]byte
	return append(dst, h.Sum(sum[:0])[:IDLen]...)
}

// MetricModule returns the event.module and metricset.name of a metric
// event's dataset: "system.cpu" is module system, metric set cpu;
// "kubernetes.container" is kubernetes, container. A dataset without a
// dot is its own module and metric set.
func MetricModule(dataset string) (module, metricset string) {
	if m, s, ok := strings.Cut(dataset, "."); ok {
		return m, s
	}
	return dataset, dataset
}

// appendMetricKind appends the end of the "event" object of a metric
// event of dataset ds, with event.module, and its metricset.name:
// `,"kind":"metric","module":"system"},"metricset":{"name":"cpu"}`.
func appendMetricKind(dst []byte, ds string) []byte {
	module, set := MetricModule(ds)
	dst = append(dst, `,"kind":"metric","module":`...)
	dst = appendString(dst, module)
	dst = append(dst, `},"metricset":{"name":`...)
	dst = appendString(dst, set)
	return append(dst, '}')
}

// appendKubeRef ends the "kubernetes" object of an event that names no pod
// (a node metric, or a container metric known by its pod's uid only): the
// pod uid, if any, then container.id, if any.
func appendKubeRef(dst []byte, k *ferryv1.Kubernetes) []byte {
	if uid := k.GetPodUid(); uid != "" {
		dst = append(dst, `,"pod":{"uid":`...)
		dst = appendString(dst, uid)
		dst = append(dst, '}')
	}
	dst = append(dst, '}')
	if id := k.GetContainerId(); id != "" {
		dst = append(dst, `,"container":{"id":`...)
		dst = appendString(dst, id)
		dst = append(dst, '}')
	}
	return dst
}
