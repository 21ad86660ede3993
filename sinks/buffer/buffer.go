// Package buffer puts the aggregator's write-ahead buffer (pipeline/wal) in
// front of a sink: Write returns once a batch is durable on disk, and a
// delivery loop feeds the sink from the buffer in order, retrying each batch
// until the sink takes it, and after a crash replays what was not delivered.
// Re-delivery is at least once; event ids make it idempotent downstream.
//
// A record is a batch's wire encoding (ferry.v1.Batch). A batch that comes
// with it (event.Batch.Raw: the bytes the agent sent) is appended as it
// is, never encoded again; the receiver hands such batches undecoded (see
// TakesRaw). Delivery decodes each record once, with the fast decoder of
// proto/ferry/v1/wire, without checking UTF-8 again: every record passed
// that check before it was appended (the receiver's, or proto.Marshal's of
// a decoded batch), and the WAL checks each record's CRC when it reads it.
//
// The delivery loop usually follows right behind the appends, so the WAL
// keeps the records not yet read in memory as well, up to
// Options.MemoryBytes (see wal.Options.MemoryBytes): such a record is
// delivered from the bytes that were appended, without reading it back
// from the file; and when the receiver decoded the batch (it does when
// KeepsDecoded says the memory tail has room), from its decoded events,
// without decoding the bytes again. Nothing else changes: Write still returns only once the
// record is durable, and after a restart (or when delivery is behind by
// more than that) records are read from disk.
//
// When the disk cannot make a batch durable, Write says so and the agent
// keeps its lines: a full disk is ErrFull, as a buffer at its size limit,
// and passes once there is room; a failed fsync or write (see pipeline/wal)
// fails the buffer until the process restarts: every Write then fails, and
// Err reports why, for the aggregator's readiness. The batches already in a
// failed buffer are still delivered. A buffer that cannot be read stops
// delivering, and Err reports that too.
package buffer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/wal"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/proto/ferry/v1/wire"
	"github.com/ferrylogs/ferry/sinks"
)

// Options configure the buffer.
type Options struct {
	WAL wal.Options
	// Concurrency is how many batches are written to the sink at once.
	Concurrency int
	// RetryInitial and RetryMax bound the backoff between attempts to
	// deliver one batch.
	RetryInitial, RetryMax time.Duration
	// MemoryBytes bounds the appended batches not yet delivered that are
	// kept in memory for delivery (default DefaultMemoryBytes, at most a
	// quarter of the WAL's MaxBytes; negative: none). It sets
	// WAL.MemoryBytes.
	MemoryBytes int64
	// CommitInterval is the least time between two commits of the
	// delivered position (default DefaultCommitInterval; negative: no
	// wait). A commit costs two fsyncs; the batches delivered meanwhile
	// share the next one. After a crash, what was delivered and not yet
	// committed is delivered again (event ids make that idempotent).
	CommitInterval time.Duration
}

// DefaultCommitInterval is Options.CommitInterval when it is zero.
const DefaultCommitInterval = 100 * time.Millisecond

// DefaultMemoryBytes is Options.MemoryBytes when it is zero. Batches kept
// with their decoded events (see KeepsDecoded) count their Go heap too:
// about twice their bytes for 100-byte log lines.
const DefaultMemoryBytes = 8 << 20

// ErrFull is returned by Write when the buffer has no room: the caller tells
// the agent to retry later, and the agent keeps its offsets.
var ErrFull = errors.New("aggregator buffer full")

// Sink is a durable buffer in front of another sink.
type Sink struct {
	w      *wal.WAL
	inner  sinks.Sink
	opts   Options
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error

	mu      sync.Mutex
	stopped error // why the delivery loop stopped for good, if it did

	dropped atomic.Uint64 // events the sink refused for good
}

// New opens the buffer in opts.WAL.Dir (replaying what it holds) and starts
// delivering to inner. Close stops it and closes inner.
func New(inner sinks.Sink, opts Options, log *slog.Logger) (*Sink, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.RetryInitial <= 0 {
		opts.RetryInitial = 200 * time.Millisecond
	}
	switch {
	case opts.CommitInterval == 0:
		opts.CommitInterval = DefaultCommitInterval
	case opts.CommitInterval < 0:
		opts.CommitInterval = 0
	}
	if opts.RetryMax < opts.RetryInitial {
		opts.RetryMax = max(30*time.Second, opts.RetryInitial)
	}
	opts.WAL.Logger = log
	switch {
	case opts.MemoryBytes < 0:
		opts.WAL.MemoryBytes = 0
	case opts.MemoryBytes == 0:
		opts.WAL.MemoryBytes = DefaultMemoryBytes
		if opts.WAL.MaxBytes > 0 {
			opts.WAL.MemoryBytes = min(DefaultMemoryBytes, opts.WAL.MaxBytes/4)
		}
	default:
		opts.WAL.MemoryBytes = opts.MemoryBytes
	}
	if opts.WAL.MaxRecordBytes == 0 && opts.WAL.MaxBytes > 0 {
		opts.WAL.MaxRecordBytes = min(64<<20, opts.WAL.MaxBytes/2)
	}
	w, err := wal.Open(opts.WAL)
	if err != nil {
		return nil, fmt.Errorf("open buffer: %w", err) // wal names the directory
	}
	if st := w.Stats(); st.UnreadRecords > 0 {
		log.Info("buffer holds undelivered batches from before; delivering them", "batches", st.UnreadRecords, "bytes", st.PendingBytes)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sink{w: w, inner: inner, opts: opts, log: log, cancel: cancel, done: make(chan struct{})}
	go s.deliver(ctx)
	return s, nil
}

// Write appends b to the buffer: b.Raw as it is when set (b.Events and
// b.Pods may then be nil: only Raw is read), else the encoding of b. It
// returns when b is durable (per the sync policy), with every event
// counted delivered; ErrFull (retryable) when the buffer or its disk has
// no room; a retryable error wrapping wal.ErrFailed once the buffer has
// failed (see Err); a permanent error for a batch larger than a record may
// be. The buffer may keep b.Raw until the batch is delivered (see
// Options.MemoryBytes) when b has both Raw and Events (decoded from Raw,
// see KeepsDecoded), with its Events and Pods, to deliver them as they
// are: none of them may be modified once written. Of a batch of bytes
// only, it keeps a copy: the caller may reuse Raw once Write returned. The
// buffer keeps nothing else of b.
func (s *Sink) Write(ctx context.Context, b *event.Batch) (sinks.Result, error) {
	data, events := b.Raw, len(b.Events)
	var kept *event.Batch
	var keptBytes int64
	if data != nil && b.Events != nil {
		// Decoded with its bytes (see KeepsDecoded): the memory tail keeps
		// the decoded batch too, and delivers it without decoding again.
		kept = &event.Batch{Node: b.Node, Seq: b.Seq, Events: b.Events, Pods: b.Pods}
		keptBytes = wire.HeapBytes(&ferryv1.Batch{Events: b.Events, Pods: b.Pods})
	}
	if data != nil {
		if b.Events == nil {
			n, _, err := wire.Count(data)
			if err != nil {
				return sinks.Result{}, sinks.Permanent(fmt.Errorf("raw batch: %w", err))
			}
			events = n
		}
	} else {
		var err error
		data, err = proto.Marshal(&ferryv1.Batch{Seq: b.Seq, Node: b.Node, Events: b.Events, Pods: b.Pods})
		if err != nil {
			return sinks.Result{}, sinks.Permanent(fmt.Errorf("encode batch: %w", err))
		}
	}
	var err error
	switch {
	case kept != nil:
		_, err = s.w.AppendKept(ctx, data, kept, keptBytes)
	case b.Raw != nil:
		// Raw belongs to the batch, whose writer may reuse it once Write
		// returns (the receiver does, for the batches it only scanned):
		// the memory tail keeps a copy.
		_, err = s.w.AppendBorrowed(ctx, data)
	default:
		_, err = s.w.Append(ctx, data) // our own encoding
	}
	if err != nil {
		switch {
		case errors.Is(err, wal.ErrFull):
			return sinks.Result{}, fmt.Errorf("%w: %v", ErrFull, err)
		case errors.Is(err, wal.ErrTooLarge):
			return sinks.Result{}, sinks.Permanent(err)
		}
		return sinks.Result{}, fmt.Errorf("buffer append: %w", err)
	}
	return sinks.Result{Delivered: events}, nil
}

// TakesRaw reports true: Write needs only a batch's wire bytes
// (event.Batch.Raw) with its Seq and Node, so the receiver need not decode
// a batch for it (see transport.Server).
func (s *Sink) TakesRaw() bool { return true }

// KeepsDecoded reports whether a batch of encoded bytes written now would
// likely be kept in the memory tail with its decoded form (Options.MemoryBytes
// has room for about twice its size): then the receiver may decode it,
// which it must check anyway, and hand Events and Pods with Raw; the
// delivery takes the decoded batch from memory rather than decode the
// record again. A batch that no longer fits once decoded is kept without
// its decoded form, or not at all, as any other.
func (s *Sink) KeepsDecoded(encoded int) bool {
	return s.w.MemoryFree() >= 2*int64(encoded)
}

// Stats reports the buffer's state.
func (s *Sink) Stats() wal.Stats { return s.w.Stats() }

// Dropped returns how many events the sink refused for good (neither
// delivered nor dead-lettered, and not retryable).
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

// Err returns why the buffer is broken, or nil while it works: its disk
// failed (an error wrapping wal.ErrFailed: every Write fails), or the
// buffer could not be read, which stopped the delivery to the sink. It
// stays set until the process restarts. A full buffer or disk is not a
// failure.
func (s *Sink) Err() error {
	if err := s.w.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// delivery is one batch on its way from the buffer to the sink.
type delivery struct {
	pos  wal.Pos
	done bool
}

// deliver reads batches in order and writes up to Concurrency of them at
// once; a batch's position is committed once it and every batch before it
// are delivered.
func (s *Sink) deliver(ctx context.Context) {
	defer close(s.done)
	var (
		mu      sync.Mutex
		queue   []*delivery
		wg      sync.WaitGroup
		slots   = make(chan struct{}, s.opts.Concurrency)
		commits = make(chan struct{}, 1)
	)
	commitDone := make(chan struct{})
	go func() { // commits in order, batching many deliveries per fsync
		defer close(commitDone)
		var lastCommit time.Time
		for range commits {
			// At most one commit per CommitInterval: the deliveries that
			// finish meanwhile are committed together. Once the delivery
			// stops (Close), what was delivered is committed at once.
			if wait := s.opts.CommitInterval - time.Since(lastCommit); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
			lastCommit = time.Now()
			mu.Lock()
			var last *delivery
			for len(queue) > 0 && queue[0].done {
				last, queue = queue[0], queue[1:]
			}
			mu.Unlock()
			if last != nil {
				if err := s.w.Commit(last.pos); err != nil {
					s.log.Error("buffer commit failed; batches may be delivered twice", "err", err)
				}
			}
		}
	}()
	defer func() {
		wg.Wait()
		close(commits)
		<-commitDone
	}()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		pos, rec, kept, err := s.w.ReadKept(ctx)
		if err != nil {
			<-slots
			if ctx.Err() == nil && !errors.Is(err, wal.ErrClosed) {
				s.log.Error("buffer read failed; delivery from this buffer stopped until the process restarts", "err", err)
				s.mu.Lock()
				s.stopped = fmt.Errorf("delivery stopped: %w", err)
				s.mu.Unlock()
			}
			return
		}
		d := &delivery{pos: pos}
		mu.Lock()
		queue = append(queue, d)
		mu.Unlock()
		if kb, ok := kept.(*event.Batch); ok {
			// Decoded by the receiver, kept with its bytes in memory.
			b := *kb
			b.Raw = rec
			s.start(ctx, &wg, slots, &mu, d, commits, &b)
			continue
		}
		// The record is this batch's own (the WAL reads each into a new
		// buffer, or returns the bytes appended, which nobody modifies), so
		// the decoded batch may share its memory. Typed fields stay
		// encoded (package event reads them so): the sinks behind a
		// buffer write them out, they do not change them.
		wb, err := wire.DecodeTrustedRawFields(rec)
		if err != nil {
			s.log.Error("undecodable batch in the buffer, skipped", "pos", pos.String(), "err", err)
			s.finish(&mu, d, commits)
			<-slots
			continue
		}
		s.start(ctx, &wg, slots, &mu, d, commits, &event.Batch{Node: wb.Node, Seq: wb.Seq, Events: wb.Events, Pods: wb.Pods, Raw: rec})
	}
}

// start delivers b, the batch of d, in a goroutine of its own that frees
// its slot once done.
func (s *Sink) start(ctx context.Context, wg *sync.WaitGroup, slots chan struct{}, mu *sync.Mutex, d *delivery, commits chan struct{}, b *event.Batch) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { <-slots }()
		if s.writeUntilDone(ctx, b) {
			s.finish(mu, d, commits)
		}
	}()
}

func (s *Sink) finish(mu *sync.Mutex, d *delivery, commits chan struct{}) {
	mu.Lock()
	d.done = true
	mu.Unlock()
	select {
	case commits <- struct{}{}:
	default: // a commit is already due; it will see this one too
	}
}

// warnEvery is the cadence of the warnings while a batch keeps failing.
const warnEvery = time.Minute

// writeUntilDone writes b to the sink until every event is delivered or
// dead-lettered, or the sink refuses it for good (logged; the batch is then
// dropped, as it can never be written). It reports false if ctx ended first.
// The first failure is a warning, then one every warnEvery with the
// attempts since; a batch that gets through after failures says so.
func (s *Sink) writeUntilDone(ctx context.Context, batch *event.Batch) bool {
	b := batch
	delay := s.opts.RetryInitial
	var start, lastWarn time.Time
	sinceWarn := 0
	for attempt := 1; ; attempt++ {
		res, err := s.inner.Write(ctx, batch)
		switch {
		case err == nil && res.OK():
			if attempt > 1 {
				s.log.Info("sink took a buffered batch after failed attempts", "node", b.Node, "seq", b.Seq,
					"attempts", attempt, "after", time.Since(start).Round(time.Millisecond))
			}
			return true
		case err != nil && sinks.IsPermanent(err):
			s.dropped.Add(uint64(len(b.Events)))
			s.log.Error("sink refused a buffered batch for good; dropped", "node", b.Node, "seq", b.Seq, "events", len(b.Events), "err", err)
			return true
		case err == nil && !res.Retryable():
			// Some events refused for good (the others are written):
			// retrying cannot help and would hold up every later batch.
			s.dropped.Add(uint64(len(res.Failed)))
			s.log.Error("sink refused events of a buffered batch for good; dropped, the rest is written", "node", b.Node, "seq", b.Seq,
				"dropped", len(res.Failed), "first", res.Failed[0].Error())
			return true
		case ctx.Err() != nil:
			return false
		}
		now := time.Now()
		if attempt == 1 {
			start = now
		}
		sinceWarn++
		if attempt == 1 || now.Sub(lastWarn) >= warnEvery {
			why := "some events not written"
			if err != nil {
				why = err.Error()
			} else if len(res.Failed) > 0 {
				why = res.Failed[0].Error()
			}
			s.log.Warn("sink write failed; retrying from the buffer", "node", b.Node, "seq", b.Seq, "attempt", attempt,
				"failing_for", now.Sub(start).Round(time.Millisecond), "failed_since_last_warning", sinceWarn, "err", why)
			lastWarn, sinceWarn = now, 0
		}
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		delay = min(2*delay, s.opts.RetryMax)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// Close delivers what the buffer holds until ctx ends, then stops (what is
// not delivered stays in the buffer for the next start), and closes the
// buffer and the sink. Safe to call twice.
func (s *Sink) Close(ctx context.Context) error {
	s.once.Do(func() {
		t := time.NewTicker(20 * time.Millisecond)
		for s.w.Stats().PendingRecords > 0 {
			select {
			case <-ctx.Done():
				s.log.Warn("buffer not empty at shutdown; the rest is delivered at the next start", "batches", s.w.Stats().PendingRecords)
			case <-t.C:
				continue
			}
			break
		}
		t.Stop()
		s.cancel()
		<-s.done
		// Every delivery has returned (s.done), so the sink has nothing of
		// ours in progress; when the drain deadline has passed, it still gets
		// a moment to close cleanly rather than an expired context (what was
		// not delivered is on disk for the next start, not lost).
		cctx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
		}
		s.err = errors.Join(s.w.Close(), s.inner.Close(cctx))
	})
	return s.err
}
