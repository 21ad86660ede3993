package sinks_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake answers every Write with res, err and records the batches.
type fake struct {
	res      sinks.Result
	err      error
	closeErr error
	started  chan struct{} // if set, signalled when a Write starts
	release  chan struct{} // if set, Write waits for it

	mu     sync.Mutex
	got    []*event.Batch
	closed int
}

func (f *fake) Write(ctx context.Context, b *event.Batch) (sinks.Result, error) {
	f.mu.Lock()
	f.got = append(f.got, b)
	f.mu.Unlock()
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return sinks.Result{}, ctx.Err()
		}
	}
	return f.res, f.err
}

func (f *fake) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return f.closeErr
}

func batch(n int) *event.Batch {
	b := &event.Batch{Node: "n", Seq: 1}
	for i := range n {
		b.Events = append(b.Events, &ferryv1.Event{Id: event.ID(nil, "n", "f", int64(i))})
	}
	return b
}

func ok(n int) sinks.Result { return sinks.Result{Delivered: n} }

func failed(n int, idx ...int) sinks.Result {
	r := sinks.Result{Delivered: n - len(idx)}
	for _, i := range idx {
		r.Failed = append(r.Failed, sinks.ItemError{Index: i, Retryable: true, Err: errors.New("429")})
	}
	return r
}

// refused is a result with the events idx refused for good.
func refused(n int, idx ...int) sinks.Result {
	r := sinks.Result{Delivered: n - len(idx)}
	for _, i := range idx {
		r.Failed = append(r.Failed, sinks.ItemError{Index: i, Retryable: false, Err: errors.New("too large")})
	}
	return r
}

func TestFanoutWrite(t *testing.T) {
	const n = 5
	down := errors.New("connection refused")
	cases := []struct {
		name       string
		sinks      []*fake
		wantErr    error // errors.Is
		permanent  bool
		wantOK     bool
		wantFailed []int
		retryable  bool // of the result, when not OK
		delivered  int
		dead       int
	}{
		{name: "all ok", sinks: []*fake{{res: ok(n)}, {res: ok(n)}}, wantOK: true, delivered: n},
		{name: "one sink", sinks: []*fake{{res: failed(n, 3)}}, wantFailed: []int{3}, retryable: true, delivered: n - 1},
		{name: "refused for good", sinks: []*fake{{res: refused(n, 3)}, {res: ok(n)}}, wantFailed: []int{3}, delivered: n - 1},
		{name: "refused in one, retryable in other", sinks: []*fake{{res: refused(n, 3)}, {res: failed(n, 3)}}, wantFailed: []int{3}, retryable: true, delivered: n - 1},
		{name: "retryable in one, refused in other", sinks: []*fake{{res: failed(n, 3)}, {res: refused(n, 3)}}, wantFailed: []int{3}, retryable: true, delivered: n - 1},
		{name: "one sink fails", sinks: []*fake{{res: ok(n)}, {err: down}}, wantErr: down},
		{name: "both fail", sinks: []*fake{{err: down}, {err: context.DeadlineExceeded}}, wantErr: context.DeadlineExceeded},
		{name: "one permanent", sinks: []*fake{{res: ok(n)}, {err: sinks.Permanent(errors.New("bad mapping"))}}, permanent: true},
		{name: "permanent and temporary", sinks: []*fake{{err: sinks.Permanent(errors.New("bad mapping"))}, {err: down}}, wantErr: down},
		{name: "partial in one", sinks: []*fake{{res: ok(n)}, {res: failed(n, 1)}}, wantFailed: []int{1}, retryable: true, delivered: n - 1},
		{name: "partial in both", sinks: []*fake{{res: failed(n, 0, 4)}, {res: failed(n, 1)}}, wantFailed: []int{0, 1, 4}, retryable: true, delivered: n - 3},
		{name: "same item in both", sinks: []*fake{{res: failed(n, 2)}, {res: failed(n, 2)}}, wantFailed: []int{2}, retryable: true, delivered: n - 1},
		{name: "dead-lettered", sinks: []*fake{{res: sinks.Result{Delivered: n - 1, DeadLettered: 1}}, {res: ok(n)}}, wantOK: true, delivered: n - 1, dead: 1},
		{name: "three sinks, last partial", sinks: []*fake{{res: ok(n)}, {res: ok(n)}, {res: failed(n, 4)}}, wantFailed: []int{4}, retryable: true, delivered: n - 1},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var fo sinks.Fanout
			for _, s := range tt.sinks {
				fo = append(fo, s)
			}
			b := batch(n)
			res, err := fo.Write(context.Background(), b)
			for i, s := range tt.sinks {
				if len(s.got) != 1 || s.got[0] != b {
					t.Errorf("sink %d got %d batches", i, len(s.got))
				}
			}
			switch {
			case tt.permanent:
				if !sinks.IsPermanent(err) {
					t.Fatalf("err %v, want permanent", err)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				if sinks.IsPermanent(err) {
					t.Errorf("err %v is permanent", err)
				}
				return
			case err != nil:
				t.Fatalf("err %v", err)
			}
			if res.OK() != tt.wantOK {
				t.Errorf("OK() = %v, want %v (%+v)", res.OK(), tt.wantOK, res)
			}
			if res.Retryable() != tt.retryable {
				t.Errorf("Retryable() = %v, want %v (%+v)", res.Retryable(), tt.retryable, res)
			}
			var idx []int
			for _, it := range res.Failed {
				idx = append(idx, it.Index)
				if it.Err == nil {
					t.Errorf("failed item %d without error", it.Index)
				}
			}
			slices.Sort(idx)
			if !slices.Equal(idx, tt.wantFailed) {
				t.Errorf("failed %v, want %v", idx, tt.wantFailed)
			}
			if res.Delivered != tt.delivered || res.DeadLettered != tt.dead {
				t.Errorf("delivered %d dead-lettered %d, want %d and %d", res.Delivered, res.DeadLettered, tt.delivered, tt.dead)
			}
		})
	}
}

// TestFanoutConcurrent: every sink is written at once, not one after the
// other; a cancelled ctx reaches all of them.
func TestFanoutConcurrent(t *testing.T) {
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	a := &fake{res: ok(1), started: started, release: release}
	b := &fake{res: ok(1), started: started, release: release}
	done := make(chan error, 1)
	go func() {
		_, err := sinks.Fanout{a, b}.Write(context.Background(), batch(1))
		done <- err
	}()
	for range 2 {
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("both sinks were not written at once")
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	c := &fake{res: ok(1), release: make(chan struct{})}
	d := &fake{res: ok(1), release: make(chan struct{})}
	go func() { _, err := (sinks.Fanout{c, d}).Write(ctx, batch(1)); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
}

func TestFanoutClose(t *testing.T) {
	boom := errors.New("flush failed")
	a, b, c := &fake{}, &fake{closeErr: boom}, &fake{}
	err := sinks.Fanout{a, b, c}.Close(context.Background())
	if !errors.Is(err, boom) {
		t.Errorf("Close: %v, want %v", err, boom)
	}
	for i, s := range []*fake{a, b, c} {
		if s.closed != 1 {
			t.Errorf("sink %d closed %d times", i, s.closed)
		}
	}
}
