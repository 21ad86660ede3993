package elasticsearch

import "sync/atomic"

// ItemCounts counts bulk items by what Elasticsearch answered, since the
// sink was made. Each attempt counts: an event retried twice and then
// created counts 2 Retried and 1 Created.
type ItemCounts struct {
	// Created: an event's document stored in its data stream (2xx).
	Created uint64
	// Duplicate: a create answered 409 (the document is there already: a
	// re-sent event), delivered.
	Duplicate uint64
	// Retried: an item answered 429, 5xx, 401 or 403, queued again.
	Retried uint64
	// DeadLettered: an event refused (another 4xx) whose dead-letter
	// document was stored (or was there already).
	DeadLettered uint64
	// Dropped: an event given up on for good: refused and its dead-letter
	// write refused as well, a single document too large for the cluster,
	// or a whole request refused with 400. The Write reports it as failed,
	// not retryable.
	Dropped uint64
}

// itemCounters are the sink's ItemCounts as they grow.
type itemCounters struct {
	created, duplicate, retried, deadLettered, dropped atomic.Uint64
}

// Items returns how many bulk items had each result so far.
func (s *Sink) Items() ItemCounts {
	c := &s.items
	return ItemCounts{
		Created: c.created.Load(), Duplicate: c.duplicate.Load(), Retried: c.retried.Load(),
		DeadLettered: c.deadLettered.Load(), Dropped: c.dropped.Load(),
	}
}
