package buffer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferrylogs/ferry/internal/testlog"
	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/wal"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is the sink behind the buffer: it records the event ids it got
// and fails as told.
type recorder struct {
	mu        sync.Mutex
	ids       map[string]int
	writes    int
	failFirst int           // fail this many writes with a temporary error
	permanent bool          // refuse every batch for good
	refuseOne bool          // refuse the first event of every batch for good, take the others
	block     chan struct{} // when set, writes wait for it (or ctx)
}

func (r *recorder) Write(ctx context.Context, b *event.Batch) (sinks.Result, error) {
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return sinks.Result{}, ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	if r.permanent {
		return sinks.Result{}, sinks.Permanent(errors.New("mapping says no"))
	}
	if r.writes <= r.failFirst {
		return sinks.Result{}, errors.New("elasticsearch unreachable")
	}
	if r.ids == nil {
		r.ids = map[string]int{}
	}
	res := sinks.Result{Delivered: len(b.Events)}
	for i, e := range b.Events {
		if r.refuseOne && i == 0 {
			res.Delivered--
			res.Failed = append(res.Failed, sinks.ItemError{Index: 0, Err: errors.New("document too large")})
			continue
		}
		r.ids[event.IDString(e.Id)]++
	}
	return res, nil
}

func (r *recorder) Close(context.Context) error { return nil }

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

func batch(seq uint64, n int) *event.Batch {
	b := &event.Batch{Node: "n1", Seq: seq}
	for i := range n {
		b.Events = append(b.Events, &ferryv1.Event{
			Id:      event.ID(nil, "n1", "file", int64(seq)*1000+int64(i)),
			Message: []byte("hello"),
		})
	}
	return b
}

func open(t *testing.T, dir string, inner sinks.Sink, maxBytes int64) *Sink {
	t.Helper()
	return openMemory(t, dir, inner, maxBytes, 0)
}

// openMemory is open with Options.MemoryBytes.
func openMemory(t *testing.T, dir string, inner sinks.Sink, maxBytes, memory int64) *Sink {
	t.Helper()
	s, err := New(inner, Options{
		WAL:          wal.Options{Dir: dir, MaxBytes: maxBytes, SegmentBytes: 64 << 10, Sync: wal.SyncAlways},
		RetryInitial: time.Millisecond, RetryMax: 10 * time.Millisecond,
		MemoryBytes: memory,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeliversEverythingAndRetries(t *testing.T) {
	cases := []struct {
		name      string
		failFirst int
	}{{"sink up", 0}, {"sink down for a while", 25}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{failFirst: tc.failFirst}
			s := open(t, t.TempDir(), rec, 64<<20)
			for i := range 50 {
				res, err := s.Write(context.Background(), batch(uint64(i+1), 20))
				if err != nil || !res.OK() || res.Delivered != 20 {
					t.Fatalf("Write = %+v, %v", res, err)
				}
			}
			waitFor(t, "every event delivered", func() bool { return rec.distinct() == 1000 })
			waitFor(t, "every batch committed", func() bool { return s.Stats().PendingRecords == 0 })
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

// After a crash (here: Close while the sink hangs, so nothing is
// delivered), a new buffer on the same directory delivers every batch.
func TestReplayAfterRestart(t *testing.T) {
	dir := t.TempDir()
	hung := &recorder{block: make(chan struct{})}
	s := open(t, dir, hung, 64<<20)
	for i := range 10 {
		if _, err := s.Write(context.Background(), batch(uint64(i+1), 10)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if hung.distinct() != 0 {
		t.Fatalf("hung sink got %d events", hung.distinct())
	}
	rec := &recorder{}
	s2 := open(t, dir, rec, 64<<20)
	defer s2.Close(context.Background())
	waitFor(t, "replayed events", func() bool { return rec.distinct() == 100 })
	waitFor(t, "replayed batches committed", func() bool { return s2.Stats().PendingRecords == 0 })
}

// A full buffer answers with ErrFull (retryable) and accepts again once
// batches are delivered.
func TestFullBufferPushesBack(t *testing.T) {
	rec := &recorder{block: make(chan struct{})}
	s := open(t, t.TempDir(), rec, 1<<20)
	defer s.Close(context.Background())
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		_, err = s.Write(context.Background(), batch(uint64(i+1), 50))
	}
	if !errors.Is(err, ErrFull) || sinks.IsPermanent(err) {
		t.Fatalf("err = %v, want retryable ErrFull", err)
	}
	close(rec.block)
	waitFor(t, "room again", func() bool {
		_, err := s.Write(context.Background(), batch(99999, 1))
		return err == nil
	})
}

// A batch the sink refuses for good is dropped (logged and counted), not
// retried for ever, and does not hold back the batches behind it.
func TestPermanentRefusalDoesNotBlock(t *testing.T) {
	rec := &recorder{permanent: true}
	s := open(t, t.TempDir(), rec, 64<<20)
	defer s.Close(context.Background())
	for i := range 5 {
		if _, err := s.Write(context.Background(), batch(uint64(i+1), 3)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "refused batches committed", func() bool { return s.Stats().PendingRecords == 0 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.writes != 5 {
		t.Fatalf("sink saw %d writes, want 5 (one per batch, no retries)", rec.writes)
	}
	// Every event of the refused batches is counted as dropped.
	if d := s.Dropped(); d != 15 {
		t.Fatalf("Dropped() = %d, want 15 (5 batches of 3 refused for good)", d)
	}
}

// Events the sink refuses for good, while it takes the rest of their batch,
// are dropped and counted, not retried for ever: later batches go on.
func TestRefusedEventsDoNotBlock(t *testing.T) {
	rec := &recorder{refuseOne: true}
	s := open(t, t.TempDir(), rec, 64<<20)
	defer s.Close(context.Background())
	for i := range 5 {
		if _, err := s.Write(context.Background(), batch(uint64(i+1), 3)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every batch committed", func() bool { return s.Stats().PendingRecords == 0 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.writes != 5 || len(rec.ids) != 10 {
		t.Fatalf("sink saw %d writes and took %d events, want 5 and 10 (no retries)", rec.writes, len(rec.ids))
	}
	if d := s.Dropped(); d != 5 {
		t.Fatalf("Dropped() = %d, want 5", d)
	}
}

// A buffer whose disk fails says so: the Write that meets the failure and
// every later one fail, retryably, with wal.ErrFailed, and Err reports why;
// the batches it took before are still delivered, and Close returns the
// failure. The fault is real: the buffer's directory is removed, so the next
// segment file cannot be created.
func TestFailedDiskMakesBufferUnhealthy(t *testing.T) {
	dir := t.TempDir()
	rec := &recorder{}
	s := open(t, dir, rec, 64<<20)
	defer s.Close(context.Background())
	if err := s.Err(); err != nil {
		t.Fatalf("Err() of a new buffer = %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	var err error
	taken := 0
	for i := 0; i < 10000 && err == nil; i++ {
		if _, err = s.Write(context.Background(), batch(uint64(i+1), 50)); err == nil {
			taken++
		}
	}
	if !errors.Is(err, wal.ErrFailed) || !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrFull) || sinks.IsPermanent(err) {
		t.Fatalf("Write = %v, want a retryable wal.ErrFailed naming the missing directory", err)
	}
	health := s.Err()
	if !errors.Is(health, wal.ErrFailed) || !strings.Contains(health.Error(), dir) {
		t.Fatalf("Err() = %v, want the failure in %s", health, dir)
	}
	if _, err := s.Write(context.Background(), batch(99999, 1)); err == nil || !strings.Contains(err.Error(), health.Error()) {
		t.Fatalf("Write after the failure = %v, want %v", err, health)
	}
	waitFor(t, "the batches taken before the failure delivered", func() bool { return rec.distinct() == taken*50 })
	if err := s.Close(context.Background()); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("Close = %v, want the failure", err)
	}
}

// A buffer that cannot be read stops delivering, and says so through Err
// instead of stalling silently. The fault is real: the segment file is cut
// short under the buffer while the sink holds the first batches (without
// the memory tail, which would deliver them from memory).
func TestUnreadableBufferReportsStoppedDelivery(t *testing.T) {
	dir := t.TempDir()
	rec := &recorder{block: make(chan struct{})}
	s := openMemory(t, dir, rec, 64<<20, -1)
	for i := range 10 {
		if _, err := s.Write(context.Background(), batch(uint64(i+1), 5)); err != nil {
			t.Fatal(err)
		}
	}
	// The sink holds at most Concurrency (4) batches: the delivery loop
	// waits for a slot before it reads the next one, from the cut file.
	if err := os.Truncate(filepath.Join(dir, "0000000000000001.seg"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err() before the failed read = %v", err)
	}
	close(rec.block)
	waitFor(t, "Err to report the stopped delivery", func() bool { return s.Err() != nil })
	if err := s.Err(); !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "delivery stopped") {
		t.Fatalf("Err() = %v, want the delivery stopped by the failed read", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s.Close(ctx)
}

// A batch the sink keeps failing is warned about at its first failure and
// then at most once a minute (not every tenth attempt), and its delivery
// after failures is logged.
func TestRetryLogCadence(t *testing.T) {
	rec := &recorder{failFirst: 25}
	log, logs := testlog.New(t, "buffer")
	s, err := New(rec, Options{
		WAL:          wal.Options{Dir: t.TempDir(), Sync: wal.SyncAlways},
		RetryInitial: time.Millisecond, RetryMax: 2 * time.Millisecond,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := s.Write(context.Background(), batch(1, 5)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the batch delivered", func() bool { return rec.distinct() == 5 })
	waitFor(t, "the recovery line", func() bool { return logs.Count("sink took a buffered batch after failed attempts") == 1 })
	if w := logs.Lines("sink write failed"); len(w) != 1 || !strings.Contains(w[0], "attempt=1 ") {
		t.Errorf("warnings %q, want the first failure only (25 failures within a minute)", w)
	}
	if !strings.Contains(logs.String(), "attempts=26") {
		t.Errorf("recovery line does not say 26 attempts:\n%s", logs.String())
	}
}

// closeChecker is a sink whose Close fails when given a context that is
// already done, as the Elasticsearch sink's may (it cannot tell whether
// writes are still in progress).
type closeChecker struct{ recorder }

func (c *closeChecker) Close(ctx context.Context) error { return ctx.Err() }

// TestCloseAfterDrainTimeout: when the shutdown deadline passes with
// batches still in the buffer, the buffer stops its deliveries (they stay
// on disk for the next start) and closes the sink with a context of its
// own, so a shutdown that kept every batch durable is not reported as a
// failure.
func TestCloseAfterDrainTimeout(t *testing.T) {
	inner := &closeChecker{recorder{block: make(chan struct{})}}
	s := open(t, t.TempDir(), inner, 1<<20)
	for i := range 3 {
		if _, err := s.Write(context.Background(), batch(uint64(i), 5)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close after the drain deadline, batches kept on disk: %v", err)
	}
	if n := inner.distinct(); n != 0 {
		t.Fatalf("%d events delivered through a blocked sink", n)
	}
}

// TestCommitInterval: the delivered position is committed at most once
// per CommitInterval (here an hour: the first delivery is committed at
// once, the second waits), and what was delivered is committed when the
// buffer closes, so that a restart does not deliver it again.
func TestCommitInterval(t *testing.T) {
	dir := t.TempDir()
	r := &recorder{}
	newBuf := func(inner sinks.Sink) *Sink {
		s, err := New(inner, Options{
			WAL:          wal.Options{Dir: dir, MaxBytes: 64 << 20, SegmentBytes: 64 << 10, Sync: wal.SyncAlways},
			RetryInitial: time.Millisecond, RetryMax: 10 * time.Millisecond, CommitInterval: time.Hour,
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newBuf(r)
	if _, err := s.Write(context.Background(), batch(1, 3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first batch committed", func() bool { return s.Stats().PendingRecords == 0 })
	if _, err := s.Write(context.Background(), batch(2, 3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second batch delivered", func() bool { return r.distinct() == 6 })
	if n := s.Stats().PendingRecords; n != 1 {
		t.Fatalf("%d records not committed right after the second delivery, want 1 (the next commit is due in an hour)", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = newBuf(r)
	defer s.Close(context.Background())
	if st := s.Stats(); st.PendingRecords != 0 {
		t.Fatalf("%d records pending after a restart, want 0: the delivered batch was committed at Close", st.PendingRecords)
	}
}
