package budget

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// step is one operation of a scripted test: acquire without waiting
// (try), force, release; want is whether a try succeeds, used the bytes held
// afterwards.
type step struct {
	op   string // try|force|release
	n    int64
	want bool
	used int64
}

func TestSteps(t *testing.T) {
	tests := []struct {
		name  string
		limit int64
		steps []step
	}{
		{"fits exactly", 100, []step{{"try", 60, true, 60}, {"try", 40, true, 100}, {"try", 1, false, 100}}},
		{"release makes room", 100, []step{{"try", 100, true, 100}, {"try", 10, false, 100}, {"release", 50, false, 50}, {"try", 10, true, 60}}},
		{"oversized when empty", 100, []step{{"try", 500, true, 500}, {"try", 1, false, 500}, {"release", 500, false, 0}, {"try", 1, true, 1}}},
		{"oversized when not empty", 100, []step{{"try", 1, true, 1}, {"try", 500, false, 1}}},
		{"force overdraws", 100, []step{{"try", 90, true, 90}, {"force", 50, false, 140}, {"try", 1, false, 140}, {"release", 90, false, 50}, {"try", 50, true, 100}}},
		{"zero bytes", 10, []step{{"try", 10, true, 10}, {"try", 0, true, 10}}},
		{"negative refused", 10, []step{{"try", -1, false, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(tt.limit)
			for i, s := range tt.steps {
				switch s.op {
				case "try":
					if got := b.TryAcquire(s.n); got != s.want {
						t.Fatalf("step %d: TryAcquire(%d) = %v, want %v", i, s.n, got, s.want)
					}
				case "force":
					b.Force(s.n)
				case "release":
					b.Release(s.n)
				}
				if got := b.Used(); got != s.used {
					t.Fatalf("step %d (%s %d): used %d, want %d", i, s.op, s.n, got, s.used)
				}
			}
		})
	}
}

func TestPeak(t *testing.T) {
	b := New(100)
	b.TryAcquire(70)
	b.Force(50)
	b.Release(120)
	b.TryAcquire(10)
	if p := b.Peak(); p != 120 {
		t.Fatalf("peak %d, want 120", p)
	}
}

func TestReleaseTooMuchPanics(t *testing.T) {
	b := New(10)
	b.TryAcquire(5)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	b.Release(6)
}

// waitWaiting waits until n callers wait in Acquire.
func waitWaiting(t *testing.T, b *Budget, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting, want %d", b.Waiting(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAcquireWaitsForRelease(t *testing.T) {
	b := New(100)
	if err := b.Acquire(context.Background(), 80); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Acquire(context.Background(), 30) }()
	waitWaiting(t, b, 1)
	select {
	case err := <-got:
		t.Fatalf("Acquire returned %v before any release", err)
	default:
	}
	b.Release(80)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if u := b.Used(); u != 30 {
		t.Fatalf("used %d, want 30", u)
	}
}

// A large waiter at the head is not overtaken by small requests.
func TestFirstComeFirstServed(t *testing.T) {
	b := New(100)
	b.TryAcquire(60)
	order := make(chan int64, 2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.Acquire(context.Background(), 90); err == nil {
			order <- 90
		}
	}()
	waitWaiting(t, b, 1)
	if b.TryAcquire(10) {
		t.Fatal("TryAcquire overtook a waiter")
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.Acquire(context.Background(), 20); err == nil {
			order <- 20
		}
	}()
	waitWaiting(t, b, 2)
	b.Release(60) // 90 fits, then 20 does not (110 > 100)
	if first := <-order; first != 90 {
		t.Fatalf("first granted %d, want 90", first)
	}
	b.Release(90)
	wg.Wait()
	if second := <-order; second != 20 {
		t.Fatalf("second granted %d, want 20", second)
	}
	b.Release(20)
	if u := b.Used(); u != 0 {
		t.Fatalf("used %d, want 0", u)
	}
}

// A waiter that gives up lets the ones behind it in.
func TestCancelledWaiterUnblocksQueue(t *testing.T) {
	b := New(100)
	b.TryAcquire(50)
	ctx, cancel := context.WithCancel(context.Background())
	big := make(chan error, 1)
	go func() { big <- b.Acquire(ctx, 80) }()
	waitWaiting(t, b, 1)
	small := make(chan error, 1)
	go func() { small <- b.Acquire(context.Background(), 40) }()
	waitWaiting(t, b, 2)
	cancel()
	if err := <-big; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v", err)
	}
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	if u := b.Used(); u != 90 {
		t.Fatalf("used %d, want 90", u)
	}
}

// Many goroutines acquiring and releasing never hold more than the limit.
func TestConcurrentNeverOverLimit(t *testing.T) {
	const limit = 1000
	b := New(limit)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				n := int64(1 + (g*31+i*7)%300)
				if err := b.Acquire(context.Background(), n); err != nil {
					t.Error(err)
					return
				}
				if u := b.Used(); u > limit {
					t.Errorf("used %d over limit", u)
				}
				b.Release(n)
			}
		}()
	}
	wg.Wait()
	if p := b.Peak(); p > limit {
		t.Fatalf("peak %d over limit %d", p, limit)
	}
	if u := b.Used(); u != 0 {
		t.Fatalf("used %d after all released", u)
	}
}

// Bytes that fit are granted even to an ended context; ones that do not
// fit are refused with the context's cause, holding nothing.
func TestAcquireEndedContext(t *testing.T) {
	b := New(100)
	cause := errors.New("drain gave up")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	if err := b.Acquire(ctx, 60); err != nil {
		t.Fatalf("Acquire of bytes that fit: %v", err)
	}
	if err := b.Acquire(ctx, 60); !errors.Is(err, cause) {
		t.Fatalf("Acquire of bytes that do not fit: %v, want the cause", err)
	}
	if u, w := b.Used(), b.Waiting(); u != 60 || w != 0 {
		t.Fatalf("used %d, waiting %d; want 60, 0", u, w)
	}
}

// One release lets several waiters through at once.
func TestReleaseAdmitsSeveral(t *testing.T) {
	b := New(100)
	b.TryAcquire(100)
	done := make(chan error, 3)
	for range 3 {
		go func() { done <- b.Acquire(context.Background(), 30) }()
	}
	waitWaiting(t, b, 3)
	b.Release(100)
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if u := b.Used(); u != 90 {
		t.Fatalf("used %d, want 90", u)
	}
}
