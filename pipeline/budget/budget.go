// Package budget bounds the bytes a process holds in memory for data in
// flight: a weighted semaphore counted in bytes, shared by everything that
// reads ahead (the agent's followers, the aggregator's receivers), so that
// one configured number bounds them all.
//
// Waiters are served first come, first served: a large request is not
// starved by a stream of small ones. A request is always granted when
// nothing is held, even if it is larger than the whole budget, so that one
// oversized item (a long line, a large batch) slows things down instead of
// deadlocking them; callers bound the size of a single item separately.
package budget

import (
	"container/list"
	"context"
	"fmt"
	"sync"
)

// Budget is a byte budget. The zero value is not usable; call New.
type Budget struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	peak    int64
	waiters list.List // of *waiter, in arrival order
}

type waiter struct {
	n     int64
	ready chan struct{} // closed once the bytes are granted
}

// New returns a budget of limit bytes (at least 1).
func New(limit int64) *Budget {
	return &Budget{limit: max(limit, 1)}
}

// Limit returns the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Used returns the bytes held now.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Peak returns the most bytes held at once since New.
func (b *Budget) Peak() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// Waiting returns how many callers wait in Acquire.
func (b *Budget) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters.Len()
}

// fits reports whether n bytes can be granted now, to a caller at the head
// of the queue.
func (b *Budget) fits(n int64) bool { return b.used == 0 || b.used+n <= b.limit }

func (b *Budget) take(n int64) {
	b.used += n
	b.peak = max(b.peak, b.used)
}

// Acquire takes n bytes, waiting until they fit or ctx ends; bytes that fit
// at once are granted even if ctx has ended. It returns ctx's cause
// (context.Cause) when it gave up, and then holds nothing.
func (b *Budget) Acquire(ctx context.Context, n int64) error {
	if n < 0 {
		return fmt.Errorf("budget: acquire %d bytes", n)
	}
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.fits(n) {
		b.take(n)
		b.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	e := b.waiters.PushBack(w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted meanwhile: give it back.
			b.used -= n
		default:
			b.waiters.Remove(e)
		}
		// Leaving may let the next waiter in (it was behind us).
		b.grant()
		b.mu.Unlock()
		return context.Cause(ctx)
	}
}

// TryAcquire takes n bytes if they fit now and nobody waits before.
func (b *Budget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 0 || b.waiters.Len() > 0 || !b.fits(n) {
		return false
	}
	b.take(n)
	return true
}

// Force takes n bytes without waiting, even past the limit: for memory that
// is already being used (a buffer that had to grow) and must be counted.
// Later Acquires wait until the overdraft is released.
func (b *Budget) Force(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.take(n)
	b.mu.Unlock()
}

// Release gives back n bytes taken by Acquire, TryAcquire or Force.
func (b *Budget) Release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if over := -b.used; over > 0 {
		b.used = 0
		b.mu.Unlock()
		panic(fmt.Sprintf("budget: released %d bytes more than held", over))
	}
	b.grant()
	b.mu.Unlock()
}

// grant admits waiters in order while the first one fits.
func (b *Budget) grant() {
	for e := b.waiters.Front(); e != nil; e = b.waiters.Front() {
		w := e.Value.(*waiter)
		if !b.fits(w.n) {
			return
		}
		b.take(w.n)
		b.waiters.Remove(e)
		close(w.ready)
	}
}
