package sinks

import (
	"context"
	"errors"
	"sync"

	"github.com/ferrylogs/ferry/pipeline/event"
)

// Fanout writes every batch to all its sinks at once. A batch is OK only
// when every sink took all of it; an item failed in any sink is failed.
type Fanout []Sink

// Write implements Sink.
func (f Fanout) Write(ctx context.Context, b *event.Batch) (Result, error) {
	if len(f) == 1 {
		return f[0].Write(ctx, b)
	}
	results := make([]Result, len(f))
	errs := make([]error, len(f))
	var wg sync.WaitGroup
	for i, s := range f {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Write(ctx, b)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	out := Result{Delivered: len(b.Events)}
	failed := map[int]ItemError{}
	for _, r := range results {
		out.DeadLettered = max(out.DeadLettered, r.DeadLettered)
		for _, it := range r.Failed {
			failed[it.Index] = it
		}
	}
	for _, it := range failed {
		out.Failed = append(out.Failed, it)
	}
	out.Delivered -= len(failed) + out.DeadLettered
	return out, nil
}

// Close closes every sink.
func (f Fanout) Close(ctx context.Context) error {
	var errs []error
	for _, s := range f {
		errs = append(errs, s.Close(ctx))
	}
	return errors.Join(errs...)
}
