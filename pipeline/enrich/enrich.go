// Package enrich is the aggregator's enrichment stage: between receiving a
// batch and writing it to a sink, it derives from the Kubernetes metadata the
// agent sent (Batch.Pods) and the aggregator's rules what each event's
// document says about its pod: service.name, service.environment (which is
// also the data stream namespace), labels, annotations, owners, node and
// image (see event.Meta for the fields).
//
// The work is done once per pod per batch, not per event: each stage fills
// one event.Meta per pod, Meta.Seal encodes it once, and the events of the
// pod share it, so enriching and writing an event allocates nothing.
// Event stages (GeoIP) work per event, from the event's own typed fields
// (source.ip): their results are prepared JSON (event.Addition) cached by
// value and shared by the events with the same one, so a cache hit
// allocates nothing per event either.
//
// Where it runs: behind each sink's disk buffer, in front of the sink
// (cmd/aggregator wraps every sink with NewSink before its buffer). The disk
// buffer therefore stores batches as received, pods included, and a batch
// replayed from it is enriched again. Enrichment is a pure function of the
// batch and the configuration, so a replay in the same process is enriched
// identically; after a restart with other rules, replayed batches follow
// the new rules, as later batches do. This is chosen over storing enriched
// batches because the buffer then keeps the wire format (one record format,
// readable across versions, no second encoding of labels per event: the
// pods ride once per batch, as on the wire), and because an enriched batch
// has no wire form: its enrichment is encoded for the document, not for
// the buffer.
package enrich

import (
	"context"
	"sync/atomic"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Stage derives part of the enrichment of one pod's events. p is the pod as
// the agent sent it or, when the agent sent no metadata for it, a pod with
// only the namespace, name (and uid) of the event's file name; p and its
// maps must not be modified. Enrich sets fields of m; it is called once per
// pod per batch, and may be called concurrently for different batches.
type Stage interface {
	Enrich(ctx context.Context, p *ferryv1.Pod, m *event.Meta)
}

// EventStage derives part of the enrichment of single events from their
// own fields rather than from their pod (GeoIP of a client address): work
// per event, where Stage's is per pod. AddTo is called once per Enrich
// call with all the batch's events, and may be called concurrently for
// different batches. It sets out[i] (len(out) == len(events)) for the
// events it enriches, joining what an earlier event stage set
// (out[i].Join(a)); it must not modify the events. It is not called for a
// batch none of whose events has typed fields.
type EventStage interface {
	AddTo(ctx context.Context, events []*ferryv1.Event, out []*event.Addition)
}

// Enricher runs its stages, in order, for every pod of a batch, then its
// event stages for the batch's events.
//
// Its counters count events per Enrich call: an event written to two
// sinks, or replayed from a disk buffer, counts each time.
type Enricher struct {
	stages []Stage
	events []EventStage

	// WithoutMetadata counts container events whose batch had no metadata
	// of their pod (the agent runs without Kubernetes metadata, or did not
	// know the pod yet): enriched from their file name's coordinates only.
	WithoutMetadata atomic.Uint64
	// Truncated counts events whose pod's metadata was cut (see
	// event.Meta): their documents are flagged metadata_truncated.
	Truncated atomic.Uint64
}

// New returns an Enricher running stages in order: a later stage sees (and
// may change) what an earlier one set.
func New(stages ...Stage) *Enricher {
	return &Enricher{stages: stages}
}

// PerEvent adds event stages, run in order after the pod stages, and
// returns e. It must be called before e is used.
func (e *Enricher) PerEvent(stages ...EventStage) *Enricher {
	e.events = append(e.events, stages...)
	return e
}

// podKey identifies the events of one pod: a pod recreated under the same
// name (a StatefulSet's) has another uid.
type podKey struct{ namespace, pod, uid string }

// group is the enrichment of one pod in a batch.
type group struct {
	m     *event.Meta
	known bool // the batch had the pod's metadata
}

// Enrich returns a shallow copy of b with Meta set: one event.Meta per pod
// of the batch, shared by its events; nil for events without a pod (plain
// files, metrics); and, with event stages, Added. b itself is not changed,
// so several sinks may enrich the same batch at once.
func (e *Enricher) Enrich(ctx context.Context, b *event.Batch) *event.Batch {
	out := *b
	if len(e.events) > 0 && len(b.Events) > 0 {
		out.Added = e.added(ctx, b.Events)
	}
	if len(e.stages) == 0 || len(b.Events) == 0 {
		return &out
	}
	out.Meta = make([]*event.Meta, len(b.Events))
	var (
		byUID   map[string]*ferryv1.Pod // when the batch has many pods
		groups  map[podKey]group        // by namespace, name and uid
		last    group
		lastKey podKey
		unknown uint64 // events without their pod's metadata
		cut     uint64 // events with their pod's metadata cut
	)
	if len(b.Pods) > 4 {
		byUID = make(map[string]*ferryv1.Pod, len(b.Pods))
		for _, p := range b.Pods {
			byUID[p.GetUid()] = p
		}
	}
	var lastK *ferryv1.Kubernetes // of the event before, whose group is last
	for i, ev := range b.Events {
		k := ev.GetKubernetes()
		if k == lastK && k != nil && last.m != nil {
			// The same struct as the event before's: the wire decoder
			// shares one between a run of one pod's lines.
			out.Meta[i] = last.m
			if !last.known {
				unknown++
			}
			if last.m.Truncated() {
				cut++
			}
			continue
		}
		if k.GetPod() == "" {
			continue
		}
		lastK = k
		key := podKey{k.GetNamespace(), k.GetPod(), k.GetPodUid()}
		g := last
		if g.m == nil || key != lastKey { // else a run of one pod's lines: the common case
			var ok bool
			if g, ok = groups[key]; !ok {
				p, known := pod(b.Pods, byUID, k)
				g = group{m: e.meta(ctx, p), known: known}
				if groups == nil {
					groups = make(map[podKey]group, max(len(b.Pods), 1))
				}
				groups[key] = g
			}
			last, lastKey = g, key
		}
		out.Meta[i] = g.m
		if !g.known {
			unknown++
		}
		if g.m.Truncated() {
			cut++
		}
	}
	if unknown > 0 {
		e.WithoutMetadata.Add(unknown)
	}
	if cut > 0 {
		e.Truncated.Add(cut)
	}
	return &out
}

// added runs the event stages for events: nil when none added anything.
// Event stages work from typed fields: a batch without any (container
// lines before parsing) costs nothing.
func (e *Enricher) added(ctx context.Context, events []*ferryv1.Event) []*event.Addition {
	typed := false
	for _, ev := range events {
		if event.HasFields(ev) {
			typed = true
			break
		}
	}
	if !typed {
		return nil
	}
	out := make([]*event.Addition, len(events))
	for _, s := range e.events {
		s.AddTo(ctx, events, out)
	}
	for _, a := range out {
		if a != nil {
			return out
		}
	}
	return nil
}

// meta runs the stages for p.
func (e *Enricher) meta(ctx context.Context, p *ferryv1.Pod) *event.Meta {
	m := new(event.Meta)
	for _, s := range e.stages {
		s.Enrich(ctx, p, m)
	}
	m.Seal()
	return m
}

// pod returns the metadata of the pod of k: the batch's pod with its uid
// (known), else a pod with only the coordinates of the file name.
func pod(pods []*ferryv1.Pod, byUID map[string]*ferryv1.Pod, k *ferryv1.Kubernetes) (p *ferryv1.Pod, known bool) {
	if uid := k.GetPodUid(); uid != "" {
		if byUID != nil {
			if p := byUID[uid]; p != nil {
				return p, true
			}
		} else {
			for _, p := range pods {
				if p.GetUid() == uid {
					return p, true
				}
			}
		}
	}
	return &ferryv1.Pod{Uid: k.GetPodUid(), Namespace: k.GetNamespace(), Name: k.GetPod()}, false
}
