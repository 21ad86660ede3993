package metrics

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/ferrylogs/ferry/pipeline/event"
)

// queue holds sampled cycles until the shipper takes them: at most max of
// them (plus the one being handed over); when full, the oldest is dropped
// and counted. This bounds the agent's memory while the aggregator is
// unreachable: metrics have no file to be read again from.
type queue struct {
	mu      sync.Mutex
	items   []*event.Sample
	max     int
	wake    chan struct{} // signalled when items becomes non-empty
	out     chan *event.Sample
	dropped atomic.Uint64
}

func newQueue(max int) *queue {
	return &queue{max: max, wake: make(chan struct{}, 1), out: make(chan *event.Sample)}
}

// push adds a cycle, dropping the oldest one if the queue is full.
func (q *queue) push(s *event.Sample) {
	q.mu.Lock()
	if len(q.items) >= q.max {
		n := len(q.items) - q.max + 1
		clear(q.items[:n])
		q.items = q.items[n:]
		q.dropped.Add(uint64(n))
	}
	q.items = append(q.items, s)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop takes the oldest cycle, or nil.
func (q *queue) pop() *event.Sample {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil
	}
	s := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	return s
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// pump hands the queued cycles out on q.out, oldest first, until ctx ends.
func (q *queue) pump(ctx context.Context) {
	for {
		s := q.pop()
		if s == nil {
			select {
			case <-q.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case q.out <- s:
		case <-ctx.Done():
			return
		}
	}
}
