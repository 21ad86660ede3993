package enrich

import (
	"context"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/sinks"
)

// Sink enriches every batch before handing it to the sink it wraps.
type Sink struct {
	inner sinks.Sink
	e     *Enricher
}

// NewSink returns inner behind e.
func NewSink(inner sinks.Sink, e *Enricher) *Sink { return &Sink{inner: inner, e: e} }

// Write enriches b (a copy: b is not changed) and writes it to the inner sink.
func (s *Sink) Write(ctx context.Context, b *event.Batch) (sinks.Result, error) {
	return s.inner.Write(ctx, s.e.Enrich(ctx, b))
}

// Close closes the inner sink.
func (s *Sink) Close(ctx context.Context) error { return s.inner.Close(ctx) }
