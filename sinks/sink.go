// Package sinks defines the one small interface every output of the
// aggregator implements, and the per-item result a sink reports.
package sinks

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferrylogs/ferry/pipeline/event"
)

// Sink writes batches of events somewhere durable.
//
// Write blocks until every event of b is either delivered or dead-lettered,
// until it gives up on some events (reported per item in Result.Failed), or
// until ctx is done. It returns an error only when the batch as a whole could
// not be written (the destination is down, ctx ended): the caller must then
// treat every event as not delivered. The sink does not keep b or its events
// after Write returns. Write may be called concurrently.
//
// Close flushes whatever the sink holds and releases it; it is safe to call
// twice.
type Sink interface {
	Write(ctx context.Context, b *event.Batch) (Result, error)
	Close(ctx context.Context) error
}

// Result reports per item what a sink did with a batch.
type Result struct {
	// Delivered counts events written (including those the destination
	// already had: a re-send of a known id counts as delivered).
	Delivered int
	// DeadLettered counts events the destination rejected for good, which
	// the sink stored in its dead-letter target with the reason.
	DeadLettered int
	// Failed lists the events that are neither delivered nor dead-lettered.
	Failed []ItemError
}

// OK reports whether every event of the batch is delivered or dead-lettered,
// so the batch may be acknowledged.
func (r Result) OK() bool { return len(r.Failed) == 0 }

// Retryable reports whether some failed event may be written by a later
// attempt. A result that is not OK and not Retryable holds only events
// refused for good (a document too large for the destination, a dead-letter
// write refused): sending the batch again cannot help, so the caller drops
// them, saying so, rather than hold up everything behind them.
func (r Result) Retryable() bool {
	for _, it := range r.Failed {
		if it.Retryable {
			return true
		}
	}
	return false
}

// ItemError is the failure of one event of a batch.
type ItemError struct {
	// Index of the event in the batch.
	Index int
	// Retryable is true when a later attempt may succeed (429, 5xx).
	Retryable bool
	Err       error
}

func (e ItemError) Error() string { return fmt.Sprintf("event %d: %v", e.Index, e.Err) }

// PermanentError marks an error that retrying cannot fix: a malformed batch,
// a configuration the destination refuses.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
