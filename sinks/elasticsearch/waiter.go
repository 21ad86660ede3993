package elasticsearch

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/ferrylogs/ferry/sinks"
)

// waiter collects the outcome of the items of one Write.
type waiter struct {
	ctx  context.Context
	done chan struct{} // closed when every item is resolved

	mu       sync.Mutex
	left     int
	finished bool // Write returned; later outcomes are ignored
	res      sinks.Result
	resolved []bool
	why      []pending // per event: why it is not resolved yet (nil until an event is retried)
}

// pending is the last reason an unresolved event was sent again.
type pending struct {
	err       error
	itemLevel bool // Elasticsearch answered for this very item (429, 5xx)
}

func newWaiter(ctx context.Context, n int) *waiter {
	return &waiter{ctx: ctx, done: make(chan struct{}), left: n, resolved: make([]bool, n)}
}

// alive reports whether the Write still waits for its items.
func (w *waiter) alive() bool {
	if w.ctx.Err() != nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.finished
}

// resolve records the final outcome of event pos: delivered (into its data
// stream, or dead-lettered), or failed when failErr is not nil.
func (w *waiter) resolve(pos int, deadLettered bool, failErr error, retryable bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished || w.resolved[pos] {
		return
	}
	w.resolved[pos] = true
	switch {
	case failErr != nil:
		w.res.Failed = append(w.res.Failed, sinks.ItemError{Index: pos, Retryable: retryable, Err: failErr})
	case deadLettered:
		w.res.DeadLettered++
	default:
		w.res.Delivered++
	}
	w.left--
	if w.left == 0 {
		close(w.done)
	}
}

// resolveDelivered is resolve(it.pos, it.dead, nil, false) for each of
// items, which are all the waiter's, taking its lock once.
func (w *waiter) resolveDelivered(items []*item) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return
	}
	for _, it := range items {
		if w.resolved[it.pos] {
			continue
		}
		w.resolved[it.pos] = true
		if it.dead {
			w.res.DeadLettered++
		} else {
			w.res.Delivered++
		}
		w.left--
		if w.left == 0 {
			close(w.done)
		}
	}
}

// retrying records why event pos is being sent again.
func (w *waiter) retrying(pos int, err error, itemLevel bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.finished && !w.resolved[pos] {
		if w.why == nil {
			w.why = make([]pending, len(w.resolved))
		}
		w.why[pos] = pending{err: err, itemLevel: itemLevel}
	}
}

// result returns the outcome once every item is resolved.
func (w *waiter) result() sinks.Result {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished = true
	sort.Slice(w.res.Failed, func(i, j int) bool { return w.res.Failed[i].Index < w.res.Failed[j].Index })
	return w.res
}

// finish ends the wait early (cause: the context's error or errClosed).
// Events Elasticsearch itself kept rejecting with 429/5xx become retryable
// item failures; if any event never got an answer for itself (request
// failed, never sent), the batch as a whole is not written: error.
func (w *waiter) finish(cause error) (sinks.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished = true
	unanswered := 0
	var reqErr error
	for pos, ok := range w.resolved {
		if ok {
			continue
		}
		var p pending
		if w.why != nil {
			p = w.why[pos]
		}
		if p.itemLevel {
			w.res.Failed = append(w.res.Failed, sinks.ItemError{Index: pos, Retryable: true, Err: p.err})
			continue
		}
		unanswered++
		if p.err != nil {
			reqErr = p.err
		}
	}
	sort.Slice(w.res.Failed, func(i, j int) bool { return w.res.Failed[i].Index < w.res.Failed[j].Index })
	if unanswered == 0 {
		return w.res, nil
	}
	if reqErr == nil {
		reqErr = cause
	} else {
		reqErr = fmt.Errorf("%w (last: %w)", cause, reqErr)
	}
	return w.res, fmt.Errorf("elasticsearch: %d of %d events not written: %w", unanswered, len(w.resolved), reqErr)
}
