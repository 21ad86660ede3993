package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
)

// TestQueueDropsOldest: with the shipper not reading (the aggregator is
// down), at most max cycles wait; the oldest are dropped and counted.
func TestQueueDropsOldest(t *testing.T) {
	q := newQueue(3)
	var in []*event.Sample
	for range 5 {
		s := &event.Sample{}
		in = append(in, s)
		q.push(s)
	}
	if got := q.dropped.Load(); got != 2 {
		t.Fatalf("dropped %d, want 2", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.pump(ctx)
	for _, w := range in[2:] {
		select {
		case got := <-q.out:
			if got != w {
				t.Fatal("cycles out of order, or an old one kept")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no cycle handed out")
		}
	}
	// A cycle pushed while the pump waits is handed out.
	late := &event.Sample{}
	q.push(late)
	select {
	case got := <-q.out:
		if got != late {
			t.Fatal("wrong cycle")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cycle pushed to an empty queue was not handed out")
	}
}

// TestSchedule: cycles run on multiples of the interval; one that ran late
// is followed by the next tick after it, the ticks it missed are not
// caught up.
func TestSchedule(t *testing.T) {
	iv := 10 * time.Second
	due := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	for _, c := range []struct {
		end    time.Duration // after due
		next   time.Duration
		missed int
	}{
		{20 * time.Millisecond, 10 * time.Second, 0},
		{9 * time.Second, 10 * time.Second, 0},
		{10*time.Second + time.Millisecond, 20 * time.Second, 1},
		{35 * time.Second, 40 * time.Second, 3},
	} {
		next, missed := schedule(due, due.Add(c.end), iv)
		if !next.Equal(due.Add(c.next)) || missed != c.missed {
			t.Errorf("cycle due at %v ending %v later: next %v missed %d, want %v and %d", due, c.end, next, missed, due.Add(c.next), c.missed)
		}
	}
	if got := nextTick(time.Date(2026, 1, 1, 0, 0, 3, 5, time.UTC), iv); !got.Equal(due) {
		t.Errorf("nextTick = %v, want %v", got, due)
	}
}

// TestRunAligned: Run samples once per interval, each cycle in its own
// interval, and hands the cycles out.
func TestRunAligned(t *testing.T) {
	iv := 100 * time.Millisecond
	s, err := New(Config{Node: "n", Interval: iv, HostRoot: nodeRoot(0), Sets: []string{"load", "uptime"}}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var prev time.Time
	for i := range 3 {
		select {
		case smp := <-s.Samples():
			if len(smp.Events) != 2 {
				t.Fatalf("cycle %d: %d events, want 2", i, len(smp.Events))
			}
			ts := time.Unix(0, smp.Events[0].GetTimeUnixNano())
			if !ts.Truncate(iv).After(prev.Truncate(iv)) {
				t.Fatalf("cycle at %v in the same interval as the one before (%v)", ts, prev)
			}
			for _, e := range smp.Events {
				if e.GetTimeUnixNano() != smp.Events[0].GetTimeUnixNano() {
					t.Fatal("events of one cycle with different times")
				}
			}
			prev = ts
		case <-time.After(10 * time.Second):
			t.Fatal("no cycle")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRunBoundedWhileNotRead: while nobody takes the samples (the
// aggregator is down and the shipper's window is full), at most
// QueueCycles cycles wait; the older ones are dropped and counted.
func TestRunBoundedWhileNotRead(t *testing.T) {
	s, err := New(Config{Node: "n", Interval: 20 * time.Millisecond, HostRoot: nodeRoot(0), Sets: []string{"uptime"}, QueueCycles: 3}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.Counters()["ferry_agent_metric_samples_dropped_total"] < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no cycle dropped: %v", s.Counters())
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	c := s.Counters()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if q := c["ferry_agent_metric_samples_queued"]; q > 3 {
		t.Errorf("%d cycles queued, at most 3", q)
	}
	// Every cycle is queued, handed over (one, to the pump) or dropped.
	if got := c["ferry_agent_metric_samples_queued"] + c["ferry_agent_metric_samples_dropped_total"] + 1; got < c["ferry_agent_metric_cycles_total"] {
		t.Errorf("counters do not add up: %v", c)
	}
}
