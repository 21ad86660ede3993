package elasticsearch

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// handoff is what reaches the flusher: the items of a Write (write set), or
// items handed back by a sender (retries after a backoff, dead-letter
// documents).
type handoff struct {
	items []*item
	write bool
}

// run packs the items handed in by Writes and retries into bulk requests.
// A request goes out
//
//   - at once when it reaches FlushBytes or FlushEvents, waiting for a
//     request slot if need be (waiting blocks the loop, which blocks Writes:
//     that is the back-pressure);
//   - as soon as no more items can be expected soon and a request slot is
//     free: nothing is queued on s.in and no Write is preparing its items
//     (between entering and handing them over), so every Write in progress
//     waits on what the loop holds, and waiting longer would only delay
//     them. Writes that overlap join the same request; while every slot is
//     busy the request keeps growing until one frees;
//   - FlushInterval after its first item at the latest (once a slot is free),
//     however many Writes are still preparing.
func (s *Sink) run() {
	defer s.wg.Done()
	var (
		cur   []*item
		bytes int
		armed bool
		due   bool // FlushInterval passed while no slot was free
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// dispatch sends cur as one request once it holds a slot, waiting for
	// one when wait is set. It reports false when no slot was free.
	dispatch := func(wait bool) bool {
		if len(cur) == 0 {
			return true
		}
		if wait {
			select {
			case s.sem <- struct{}{}:
			case <-s.bg.Done():
				return false
			}
		} else {
			select {
			case s.sem <- struct{}{}:
			default:
				return false
			}
		}
		if armed {
			timer.Stop()
			armed = false
		}
		due = false
		batch := cur
		// The next request is likely as large: room for it at once
		// rather than growing from nothing.
		cur, bytes = make([]*item, 0, len(batch)), 0
		s.wg.Add(1)
		go s.send(batch)
		return true
	}
	for {
		select {
		case h := <-s.in:
			if h.write {
				s.preparing.Add(-1)
				s.handed.Add(1)
			}
			var last *waiter // the Write of the items before, alive
			for _, it := range h.items {
				if it.w != last {
					if !it.w.alive() {
						continue // its Write has returned
					}
					last = it.w // a Write's items come in a row: one look each
				}
				n := it.size()
				if len(cur) > 0 && bytes+n > s.cfg.FlushBytes {
					dispatch(true)
				}
				cur = append(cur, it)
				bytes += n
				if len(cur) >= s.cfg.FlushEvents || bytes >= s.cfg.FlushBytes {
					dispatch(true)
				}
			}
			if len(cur) > 0 && !armed {
				timer.Reset(s.cfg.FlushInterval)
				armed = true
			}
		case <-timer.C:
			armed = false
			due = true
		case <-s.wake: // a slot freed, or a Write left without items
		case <-s.bg.Done():
			return
		}
		if len(cur) > 0 && (due || (len(s.in) == 0 && s.preparing.Load() == 0)) {
			dispatch(false) // if no slot is free, a freed one wakes the loop
		}
	}
}

// poke wakes the flusher to look again whether to send what it holds.
func (s *Sink) poke() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake is pending already
	}
}

// releaseSlot gives a request slot back and wakes the flusher, which may
// be holding items for a free slot.
func (s *Sink) releaseSlot() {
	<-s.sem
	s.poke()
}

// enqueue hands items back to the flusher.
func (s *Sink) enqueue(items []*item) {
	select {
	case s.in <- handoff{items: items}:
	case <-s.bg.Done():
	}
}

// send runs one bulk request, holding a request slot, and retries it as a
// whole while it fails as a whole. Then it resolves the items answered for
// good and hands the others back: rejected ones as dead-letter documents at
// once, 429/5xx ones after a backoff.
func (s *Sink) send(batch []*item) {
	defer s.wg.Done()
	holding := true
	release := func() {
		if holding {
			s.releaseSlot()
			holding = false
		}
	}
	defer release()
	for attempt := 0; ; attempt++ {
		batch = aliveItems(batch)
		if len(batch) == 0 {
			return
		}
		answer, err := s.bulk(batch)
		if err == nil {
			release()
			s.handle(batch, answer)
			return
		}
		if s.bg.Err() != nil {
			return
		}
		if te := (*tooLargeError)(nil); errors.As(err, &te) {
			holding = false // split takes over this request's slot
			s.split(batch, te)
			return
		}
		if fe := (*fatalError)(nil); errors.As(err, &fe) {
			s.items.dropped.Add(uint64(len(batch)))
			for _, it := range batch {
				it.w.resolve(it.pos, false, fe, false)
			}
			return
		}
		for _, it := range batch {
			it.w.retrying(it.pos, err, false)
		}
		d := backoff(attempt, s.cfg.RetryInitial, s.cfg.RetryMax)
		s.outage.failed(s.bg, "bulk request", err, "events", len(batch), "attempt", attempt+1, "in", d.Round(time.Millisecond))
		release() // others may try meanwhile; ours waits
		if !sleep(s.bg, d) {
			return
		}
		select {
		case s.sem <- struct{}{}:
			holding = true
		case <-s.bg.Done():
			return
		}
	}
}

// split sends a batch refused as too large (413: Elasticsearch's
// http.max_content_length is below flush_bytes) again in halves, one after
// the other, each through send, which splits it again if need be. It is
// called holding a request slot, which the first half's send releases; the
// second half waits for a slot of its own. A single document too large is
// refused for good.
func (s *Sink) split(batch []*item, te *tooLargeError) {
	if len(batch) == 1 {
		s.releaseSlot()
		it := batch[0]
		s.items.dropped.Add(1)
		it.w.resolve(it.pos, false, fmt.Errorf("%s %s: document of %d bytes refused as too large (http.max_content_length): %w", it.index, it.id, it.size(), te), false)
		return
	}
	s.log.Warn("bulk request refused as too large; sending it in halves (lower flush_bytes below the cluster's http.max_content_length)",
		"events", len(batch), "err", te)
	half := len(batch) / 2
	s.wg.Add(1)
	s.send(batch[:half:half])
	select {
	case s.sem <- struct{}{}:
	case <-s.bg.Done():
		return
	}
	s.wg.Add(1)
	s.send(batch[half:])
}

// tooLargeError is a whole-request 413: the request, not its documents, is
// refused; smaller requests may pass.
type tooLargeError struct{ err error }

func (e *tooLargeError) Error() string { return e.err.Error() }
func (e *tooLargeError) Unwrap() error { return e.err }

// fatalError is a whole-request answer that no retry can change (400).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// bulk sends the items as one _bulk request and returns its per-item answer.
func (s *Sink) bulk(batch []*item) (bulkAnswer, error) {
	body := s.bodies.get()
	setBulkBody(body, batch)
	start := time.Now()
	slow := time.AfterFunc(s.slowAfter, func() {
		s.outage.slow(s.bg, fmt.Sprintf("bulk request of %d events", len(batch)), s.slowAfter, s.reqTimeout)
	})
	r, err := s.doBody(s.bg, http.MethodPost, "/_bulk", bulkQuery, "application/x-ndjson", body)
	slow.Stop()
	size := body.size
	body.done() // back to the pool once the transport is done with it too
	if err != nil {
		return bulkAnswer{}, fmt.Errorf("bulk of %d events: %w", len(batch), err)
	}
	if r.status != http.StatusOK {
		err := fmt.Errorf("bulk of %d events: HTTP %d: %s", len(batch), r.status, r.errorSummary())
		if r.status == http.StatusRequestEntityTooLarge {
			return bulkAnswer{}, &tooLargeError{err}
		}
		if !retryableStatus(r.status) {
			return bulkAnswer{}, &fatalError{err}
		}
		return bulkAnswer{}, err
	}
	a, err := parseBulk(r.body, len(batch))
	if err != nil {
		return bulkAnswer{}, fmt.Errorf("bulk of %d events: %w", len(batch), err)
	}
	s.log.Debug("bulk request", "events", len(batch), "bytes", size, "errors", a.Errors, "took", time.Since(start).Round(time.Millisecond))
	return a, nil
}

// handle applies a bulk answer item by item.
func (s *Sink) handle(batch []*item, a bulkAnswer) {
	var retry, dead []*item
	var firstReject, firstRetry error
	maxAttempt := 0
	now := time.Now()
	// Delivered items are resolved a run at a time (batch[run:i]: of one
	// Write, all dead-letter items or none), and counted just before: a
	// Write that returns finds its items in Items.
	var created, duplicate, deadLettered uint64
	run := -1
	flush := func(end int) {
		if run >= 0 {
			s.items.created.Add(created)
			s.items.duplicate.Add(duplicate)
			s.items.deadLettered.Add(deadLettered)
			created, duplicate, deadLettered = 0, 0, 0
			batch[run].w.resolveDelivered(batch[run:end])
			run = -1
		}
	}
	for i, it := range batch {
		ans := a.item(i)
		out := classify(ans)
		if run >= 0 && (out != outDelivered || batch[run].w != it.w || batch[run].dead != it.dead) {
			flush(i)
		}
		switch out {
		case outDelivered:
			switch {
			case it.dead:
				deadLettered++
			case ans.Status == http.StatusConflict:
				duplicate++
			default:
				created++
			}
			if run < 0 {
				run = i
			}
		case outRetry:
			s.items.retried.Add(1)
			err := itemError(it, ans)
			if firstRetry == nil {
				firstRetry = err
			}
			it.w.retrying(it.pos, err, true)
			maxAttempt = max(maxAttempt, it.attempts)
			it.attempts++
			retry = append(retry, it)
		case outReject:
			if it.dead {
				s.items.dropped.Add(1)
				it.w.resolve(it.pos, false, fmt.Errorf("dead-letter write failed: %w", itemError(it, ans)), false)
				continue
			}
			if firstReject == nil {
				firstReject = itemError(it, ans)
			}
			dl, err := s.deadLetter(it, ans, now)
			if err != nil {
				s.items.dropped.Add(1)
				it.w.resolve(it.pos, false, err, false)
				continue
			}
			dead = append(dead, dl)
		}
	}
	flush(len(batch))
	if len(dead) > 0 {
		s.log.Warn("documents rejected, writing them to the dead-letter data stream",
			"count", len(dead), "data_stream", s.cfg.DeadLetterDataStream, "first_error", firstReject)
		s.enqueue(dead)
	}
	if len(retry) == 0 {
		s.outage.succeeded()
	}
	if len(retry) > 0 {
		d := backoff(maxAttempt, s.cfg.RetryInitial, s.cfg.RetryMax)
		s.outage.failed(s.bg, "bulk items", firstRetry, "rejected_for_now", len(retry), "of", len(batch),
			"attempt", maxAttempt+1, "in", d.Round(time.Millisecond))
		if sleep(s.bg, d) {
			if retry = aliveItems(retry); len(retry) > 0 {
				s.enqueue(retry)
			}
		}
	}
}

// itemError describes one item's error answer.
func itemError(it *item, a bulkItemAnswer) error {
	return fmt.Errorf("%s %s: HTTP %d %s: %s", it.index, it.id, a.Status, a.Error.Type, a.Error.Reason)
}

// aliveItems drops the items whose Write has returned, in place. A
// Write's items are usually in a row: its waiter is asked once per row.
func aliveItems(items []*item) []*item {
	out := items[:0]
	var w *waiter
	alive := false
	for _, it := range items {
		if it.w != w {
			w, alive = it.w, it.w.alive()
		}
		if alive {
			out = append(out, it)
		}
	}
	return out
}
