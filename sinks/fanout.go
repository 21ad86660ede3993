package sinks

import (
	"context"
	"errors"
	"sync"

	"github.com/ferrylogs/ferry/pipeline/event"
)

// Fanout writes every batch to all its sinks at once. A batch is OK only
// when every sink took all of it; an item failed in any sink is failed. The
// error is permanent only when every failing sink failed permanently: a
// sink that may succeed later needs the batch again.
type Fanout []Sink

// Write implements Sink.
func (f Fanout) Write(ctx context.Context, b *event.Batch) (Result, error) {
	switch len(f) {
	case 0:
		return Result{}, Permanent(errors.New("no sink configured"))
	case 1:
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
		var temporary []error
		for _, e := range errs {
			if e != nil && !IsPermanent(e) {
				temporary = append(temporary, e)
			}
		}
		if len(temporary) > 0 {
			return Result{}, &retryable{msg: err.Error(), errs: temporary}
		}
		return Result{}, err
	}
	out := Result{Delivered: len(b.Events)}
	failed := map[int]ItemError{}
	for _, r := range results {
		out.DeadLettered = max(out.DeadLettered, r.DeadLettered)
		for _, it := range r.Failed {
			// An item one sink may still take is retryable, whatever
			// another sink said of it.
			if prev, ok := failed[it.Index]; ok && prev.Retryable {
				continue
			}
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

// retryable reports every sink's error but unwraps only to the temporary
// ones, so IsPermanent is false while errors.Is still finds the causes.
type retryable struct {
	msg  string
	errs []error
}

func (r *retryable) Error() string   { return r.msg }
func (r *retryable) Unwrap() []error { return r.errs }
