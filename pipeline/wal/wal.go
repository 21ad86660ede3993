// Package wal is the aggregator's write-ahead buffer: an on-disk FIFO of
// records in checksummed segment files, bounded by size, replayed after a
// crash.
//
// The receiver appends each batch (its protobuf encoding) and acks the agent
// once Append returns: the batch is then on disk, as durable as the
// SyncPolicy makes it. One loop reads the records in Append order, writes
// them to the sinks and commits what was delivered. Only Commit moves the
// position that survives a restart: after a crash, Read starts again after
// the last committed record, so records read but not committed are
// delivered twice (at least once; event ids make that idempotent
// downstream).
//
// Open repairs what a crash or a bad disk leaves behind without help: a
// record cut short at the end of a segment is truncated away, a damaged
// record inside a segment is skipped (the records after it are kept), and
// each is reported with one warning naming the segment, the offset and the
// bytes dropped. A damaged commit file makes Open replay every segment.
//
// One process uses a directory at a time: Open takes a lock on it.
package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// SyncPolicy says when appended records are forced to disk.
type SyncPolicy int

const (
	// SyncAlways fsyncs before Append returns. Concurrent Appends share an
	// fsync when they arrive while one is running.
	SyncAlways SyncPolicy = iota
	// SyncInterval fsyncs at most once per Options.SyncInterval while
	// records arrive; Append waits for the next fsync (group commit: the
	// Appends of one interval share one fsync). It bounds the rate of
	// fsyncs; each Append waits up to one interval more than with
	// SyncAlways.
	SyncInterval
	// SyncNever leaves it to the OS: records survive a crash of the process,
	// not of the machine. Roll and Close still fsync.
	SyncNever
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Options configures a WAL. Zero values take the defaults.
type Options struct {
	// Dir holds the segment files, the commit file and a lock file. It is
	// created if needed.
	Dir string
	// SegmentBytes: Append starts a new segment file when a record would
	// take the current one past this size (default 64 MiB). A record larger
	// than SegmentBytes gets a segment of its own.
	SegmentBytes int64
	// MaxBytes bounds the bytes appended and not yet committed (headers
	// included); Append fails with ErrFull beyond it (default 1 GiB). The
	// directory may hold up to one more segment: committed records stay on
	// disk until their whole segment is committed.
	MaxBytes int64
	// MaxRecordBytes bounds one record; a larger Append fails with
	// ErrTooLarge (default 64 MiB, at most MaxBytes minus a 12-byte header).
	MaxRecordBytes int64
	// Sync is the fsync policy (default SyncAlways).
	Sync SyncPolicy
	// SyncInterval is the group commit window of SyncInterval (default 10ms).
	SyncInterval time.Duration
	// Logger receives the damage reports (default slog.Default()).
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("wal: Options.Dir is empty")
	}
	def := func(v *int64, d int64, name string) error {
		if *v < 0 {
			return fmt.Errorf("wal: Options.%s is negative (%d)", name, *v)
		}
		if *v == 0 {
			*v = d
		}
		return nil
	}
	if err := errors.Join(
		def(&o.SegmentBytes, 64<<20, "SegmentBytes"),
		def(&o.MaxBytes, 1<<30, "MaxBytes"),
		def(&o.MaxRecordBytes, 64<<20, "MaxRecordBytes"),
	); err != nil {
		return o, err
	}
	if o.MaxRecordBytes > math.MaxUint32 {
		return o, fmt.Errorf("wal: Options.MaxRecordBytes %d exceeds the 4 GiB record format", o.MaxRecordBytes)
	}
	if o.MaxRecordBytes+headerSize > o.MaxBytes {
		return o, fmt.Errorf("wal: Options.MaxRecordBytes %d does not fit in Options.MaxBytes %d", o.MaxRecordBytes, o.MaxBytes)
	}
	if o.Sync < SyncAlways || o.Sync > SyncNever {
		return o, fmt.Errorf("wal: Options.Sync: unknown policy %d", int(o.Sync))
	}
	if o.SyncInterval < 0 {
		return o, fmt.Errorf("wal: Options.SyncInterval is negative (%v)", o.SyncInterval)
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = 10 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

var (
	// ErrFull is returned by Append when the record would take the bytes not
	// yet committed past Options.MaxBytes. Answer the agent with a retry.
	ErrFull = errors.New("wal: full")
	// ErrClosed is returned by every method but Stats and Close after Close.
	ErrClosed = errors.New("wal: closed")
	// ErrTooLarge is returned by Append for a record larger than
	// Options.MaxRecordBytes; retrying cannot help.
	ErrTooLarge = errors.New("wal: record too large")
)

// Pos identifies a record: the segment that holds it, the offset just past
// its end in that segment (where reading resumes once it is committed), and
// its sequence number (1, 2, … in Append order; it restarts at 1 only if the
// commit file is lost). Commit only positions returned by Read.
type Pos struct {
	Segment uint64
	Offset  int64
	Seq     uint64
}

func (p Pos) String() string { return fmt.Sprintf("%s@%d#%d", segmentName(p.Segment), p.Offset, p.Seq) }

// before reports whether the position (s1, o1) comes before (s2, o2).
func before(s1 uint64, o1 int64, s2 uint64, o2 int64) bool {
	return s1 < s2 || s1 == s2 && o1 < o2
}

// Stats is a snapshot of a WAL's state and counters since Open.
type Stats struct {
	DiskBytes      int64  // bytes in segment files
	PendingBytes   int64  // bytes appended (or recovered) and not yet committed; bounded by MaxBytes
	PendingRecords uint64 // records appended (or recovered) and not yet committed
	UnreadRecords  uint64 // records not yet returned by Read
	Segments       int    // segment files
	Appends        uint64 // successful Appends since Open
	Syncs          uint64 // fsyncs of segment files since Open
	// Corrupt counts the damaged regions (a torn tail, a corrupt record)
	// dropped by Open or skipped by Read since Open; a region may have held
	// one record or several. CorruptBytes is their size.
	Corrupt      uint64
	CorruptBytes int64
}

// WAL is an open write-ahead buffer. Append, Commit, Stats and Close may be
// called concurrently; Read must be called by one goroutine at a time.
type WAL struct {
	opts Options
	log  *slog.Logger
	// unlock releases the directory lock.
	unlock func() error

	// Lock order: commitMu, syncMu, mu.
	commitMu sync.Mutex // serializes Commit and Close
	syncMu   sync.Mutex // serializes fsyncs of the active segment

	mu       sync.Mutex
	closed   bool  // Close started
	finished bool  // Close done
	failed   error // a failed fsync: the WAL no longer knows what is on disk
	// segs is sorted by id; the last one is the active segment that Append
	// writes to, the others are sealed.
	segs []*segment
	// written and synced count bytes since Open over all segments: every
	// byte before synced is on disk. syncedCh is closed when synced moves
	// or failed is set.
	written, synced uint64
	syncedCh        chan struct{}
	com             committed
	appendSeq       uint64 // Seq of the last record appended
	pending         int64  // bytes after com
	// The reader's cursor: the next record is at roff in segment rseg (or,
	// if that segment is gone, at the start of the next one).
	rseg uint64
	roff int64
	rseq uint64
	wbuf []byte // Append's buffer for small records
	// Counters for Stats.
	appends, syncs, corrupt uint64
	corruptBytes            int64

	readable chan struct{} // a record was appended; capacity 1, one reader
	dirty    chan struct{} // wakes the SyncInterval loop; capacity 1
	done     chan struct{} // closed by Close
	wg       sync.WaitGroup
}

// Open opens the WAL in opts.Dir, creating it if needed, and recovers what
// a previous process left there (see the package documentation). Reading
// resumes after the last committed record; appending goes to a new segment.
func Open(opts Options) (*WAL, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", opts.Dir, err)
	}
	unlock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	w := &WAL{
		opts:     opts,
		log:      opts.Logger,
		unlock:   unlock,
		syncedCh: make(chan struct{}),
		readable: make(chan struct{}, 1),
		dirty:    make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if err := w.recover(); err != nil {
		for _, s := range w.segs {
			s.f.Close()
		}
		unlock()
		return nil, fmt.Errorf("wal: open %s: %w", opts.Dir, err)
	}
	if opts.Sync == SyncInterval {
		w.wg.Add(1)
		go w.syncLoop()
	}
	return w, nil
}

func (w *WAL) active() *segment { return w.segs[len(w.segs)-1] }

// Append writes rec as the next record and returns its position once it is
// as durable as the sync policy asks. It fails with ErrFull when the WAL
// holds MaxBytes not yet committed, with ErrTooLarge for a record larger
// than MaxRecordBytes, and with ErrClosed after Close. If ctx ends while
// Append waits for an fsync, Append returns ctx's error, but the record is
// written and will be read: answer the agent with a retry, and the record
// arrives twice. The WAL does not keep rec.
func (w *WAL) Append(ctx context.Context, rec []byte) (Pos, error) {
	if err := ctx.Err(); err != nil {
		return Pos{}, err
	}
	if int64(len(rec)) > w.opts.MaxRecordBytes {
		return Pos{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(rec), w.opts.MaxRecordBytes)
	}
	size := int64(headerSize + len(rec))
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return Pos{}, ErrClosed
	}
	if w.failed != nil {
		err := w.failed
		w.mu.Unlock()
		return Pos{}, err
	}
	if w.pending+size > w.opts.MaxBytes {
		pending := w.pending
		w.mu.Unlock()
		return Pos{}, fmt.Errorf("%w: %d bytes not yet committed, a record of %d would pass %d", ErrFull, pending, size, w.opts.MaxBytes)
	}
	if seg := w.active(); seg.size > 0 && seg.size+size > w.opts.SegmentBytes {
		if err := w.roll(); err != nil {
			w.mu.Unlock()
			return Pos{}, err
		}
	}
	seg := w.active()
	if err := w.write(seg, rec); err != nil {
		w.mu.Unlock()
		return Pos{}, err
	}
	seg.size += size
	w.written += uint64(size)
	w.pending += size
	w.appendSeq++
	w.appends++
	pos := Pos{Segment: seg.id, Offset: seg.size, Seq: w.appendSeq}
	end := w.written
	w.mu.Unlock()
	notify(w.readable)

	switch w.opts.Sync {
	case SyncAlways:
		return pos, w.syncTo(end)
	case SyncInterval:
		notify(w.dirty)
		return pos, w.waitSynced(ctx, end)
	}
	return pos, nil
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// write writes the record at the end of seg. Called with mu held.
func (w *WAL) write(seg *segment, rec []byte) error {
	var err error
	if len(rec) <= 64<<10 {
		// Small records: one write call.
		b := slices.Grow(w.wbuf[:0], headerSize+len(rec))[:headerSize]
		putHeader(b, rec)
		b = append(b, rec...)
		_, err = seg.f.WriteAt(b, seg.size)
		w.wbuf = b
	} else {
		var h [headerSize]byte
		putHeader(h[:], rec)
		if _, err = seg.f.WriteAt(h[:], seg.size); err == nil {
			_, err = seg.f.WriteAt(rec, seg.size+headerSize)
		}
	}
	if err != nil {
		// Readers never look past seg.size and the next record overwrites
		// these bytes; cut them anyway, so that a crash now leaves no torn
		// record for Open to report.
		_ = seg.f.Truncate(seg.size)
		return fmt.Errorf("wal: write record of %d bytes to %s at offset %d: %w", len(rec), seg.path, seg.size, err)
	}
	return nil
}

// roll seals the active segment and starts the next one. Called with mu held.
func (w *WAL) roll() error {
	old := w.active()
	durable := w.opts.Sync != SyncNever
	if durable {
		// Sync only ever fsyncs the active segment: what is written to the
		// old one must be on disk before it stops being active.
		err := old.f.Sync()
		w.syncs++
		if err != nil {
			return w.fail(fmt.Errorf("wal: fsync %s: %w", old.path, err))
		}
	}
	seg, err := createSegment(w.opts.Dir, old.id+1)
	if err != nil {
		return err
	}
	w.segs = append(w.segs, seg)
	if durable {
		if err := syncDir(w.opts.Dir); err != nil {
			return w.fail(fmt.Errorf("wal: %w", err))
		}
		w.advanceSynced(w.written)
	}
	return nil
}

func createSegment(dir string, id uint64) (*segment, error) {
	path := filepath.Join(dir, segmentName(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: create segment: %w", err)
	}
	return &segment{id: id, path: path, f: f}, nil
}

// fail records a failed fsync: after one, the OS may have dropped the data
// it could not write, so every later Append fails until the WAL is opened
// again. Called with mu held.
func (w *WAL) fail(err error) error {
	if w.failed == nil {
		w.failed = err
		w.log.Error("wal: fsync failed; appends fail until the WAL is reopened", "dir", w.opts.Dir, "err", err)
		close(w.syncedCh)
		w.syncedCh = make(chan struct{})
	}
	return w.failed
}

// advanceSynced records that every byte before end is on disk. Called with
// mu held.
func (w *WAL) advanceSynced(end uint64) {
	if end > w.synced {
		w.synced = end
		close(w.syncedCh)
		w.syncedCh = make(chan struct{})
	}
}

// syncTo fsyncs the active segment unless every byte before target is
// already on disk. Callers that arrive during an fsync wait for it and are
// then often covered by it.
func (w *WAL) syncTo(target uint64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	if w.failed != nil {
		defer w.mu.Unlock()
		return w.failed
	}
	if w.synced >= target {
		w.mu.Unlock()
		return nil
	}
	seg, end := w.active(), w.written
	w.mu.Unlock()

	err := seg.f.Sync()

	w.mu.Lock()
	defer w.mu.Unlock()
	w.syncs++
	// ErrClosed: Commit removed the segment after it was sealed, and roll
	// had synced it then.
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return w.fail(fmt.Errorf("wal: fsync %s: %w", seg.path, err))
	}
	w.advanceSynced(end)
	return nil
}

// waitSynced waits until every byte before end is on disk.
func (w *WAL) waitSynced(ctx context.Context, end uint64) error {
	for {
		w.mu.Lock()
		synced, failed, finished, ch := w.synced, w.failed, w.finished, w.syncedCh
		w.mu.Unlock()
		switch {
		case synced >= end:
			return nil
		case failed != nil:
			return failed
		case finished:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wal: wait for fsync: %w", ctx.Err())
		}
	}
}

// syncLoop is SyncInterval's group commit: it fsyncs when records wait for
// it, at most once per interval. After a quiet interval the first record
// gets its fsync at once; under load, the records written during one
// interval share the next fsync.
func (w *WAL) syncLoop() {
	defer w.wg.Done()
	t := time.NewTimer(w.opts.SyncInterval)
	t.Stop()
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-w.dirty:
		case <-w.done:
			return
		}
		if wait := w.opts.SyncInterval - time.Since(last); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-w.done:
				return
			}
		}
		last = time.Now()
		w.mu.Lock()
		target := w.written
		w.mu.Unlock()
		_ = w.syncTo(target) // a failure reaches the waiting Appends through w.failed
	}
}

// Read returns the next record in Append order and its position, blocking
// until there is one, ctx ends or the WAL is closed. The cursor lives in
// memory: after a restart, reading starts again after the last committed
// record. A record is readable as soon as it is written, possibly before
// its fsync. A damaged record is skipped with a warning. The caller owns the
// returned slice.
func (w *WAL) Read(ctx context.Context) (Pos, []byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Pos{}, nil, err
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return Pos{}, nil, ErrClosed
		}
		seg, sealed := w.readerSegment()
		switch {
		case seg != nil && w.roff < seg.size:
			off, limit := w.roff, seg.size
			w.mu.Unlock()
			// Commit removes a segment only once the cursor is past it,
			// so seg stays open while it is read, unless Close closes it.
			fd, err := nextRecord(seg.f, off, limit, nil)
			w.mu.Lock()
			if err != nil {
				closed := w.closed
				w.mu.Unlock()
				if closed {
					return Pos{}, nil, ErrClosed
				}
				return Pos{}, nil, fmt.Errorf("wal: %w", err)
			}
			if fd.start > off && !seg.damaged[off] {
				w.report(seg, off, fd.start-off, fd.reason, false)
			}
			if !fd.ok {
				w.roff = limit
				w.mu.Unlock()
				continue
			}
			w.roff = fd.end
			w.rseq++
			p := Pos{Segment: seg.id, Offset: fd.end, Seq: w.rseq}
			w.mu.Unlock()
			return p, fd.payload, nil
		case seg != nil && sealed:
			w.rseg, w.roff = seg.id+1, 0
			w.mu.Unlock()
			continue
		}
		w.mu.Unlock()
		select {
		case <-w.readable:
		case <-ctx.Done():
			return Pos{}, nil, ctx.Err()
		case <-w.done:
			return Pos{}, nil, ErrClosed
		}
	}
}

// readerSegment returns the segment the reader's cursor is in, moving the
// cursor to the start of the next segment if its own is gone, and whether
// that segment is sealed. Called with mu held.
func (w *WAL) readerSegment() (*segment, bool) {
	for i, s := range w.segs {
		if s.id >= w.rseg {
			if s.id > w.rseg {
				w.rseg, w.roff = s.id, 0
			}
			return s, i < len(w.segs)-1
		}
	}
	return nil, false
}

// report logs and counts a damaged region of n bytes at off in seg: cut off
// the end of the segment (tail) or skipped inside it. Called with mu held.
func (w *WAL) report(seg *segment, off, n int64, reason string, tail bool) {
	w.corrupt++
	w.corruptBytes += n
	msg := "wal: skipped damaged bytes inside a segment; the records before and after them are kept"
	if tail {
		msg = "wal: cut damaged bytes off the end of a segment (a write cut short by a crash, or a corrupt last record); the records before them are kept"
	}
	w.log.Warn(msg, "segment", seg.path, "offset", off, "bytes", n, "reason", reason)
}

// Commit records that every record up to and including p was delivered.
// It persists the position atomically (the commit file is replaced by
// rename, after an fsync), removes the segments that hold only committed
// records, and frees their bytes for Append. Positions must be committed in
// order: p must come from Read, must not be behind the committed position
// (committing it again is a no-op) and must not be past the last record
// read. Commit costs two fsyncs: commit after a group of deliveries rather
// than after each record.
func (w *WAL) Commit(p Pos) error {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	c := w.com
	read := Pos{Segment: w.rseg, Offset: w.roff}
	w.mu.Unlock()
	switch {
	case p.Segment == c.segment && p.Offset == c.offset:
		return nil
	case before(p.Segment, p.Offset, c.segment, c.offset):
		return fmt.Errorf("wal: commit %v: behind the committed position %v (commit in order)", p, Pos{c.segment, c.offset, c.seq})
	case before(read.Segment, read.Offset, p.Segment, p.Offset):
		return fmt.Errorf("wal: commit %v: past the last record read", p)
	}
	nc := committed{segment: p.Segment, offset: p.Offset, seq: p.Seq}
	if err := writeCommit(w.opts.Dir, nc); err != nil {
		return fmt.Errorf("wal: commit %v: %w", p, err)
	}

	w.mu.Lock()
	w.com = nc
	var gone []*segment
	keep := make([]*segment, 0, len(w.segs))
	for i, s := range w.segs {
		sealed := i < len(w.segs)-1
		if s.id < p.Segment || s.id == p.Segment && sealed && p.Offset >= s.size {
			gone = append(gone, s)
		} else {
			keep = append(keep, s)
		}
	}
	w.segs = keep
	w.pending = w.pendingBytes()
	w.mu.Unlock()

	var errs []error
	for _, s := range gone {
		s.f.Close()
		// A segment left behind by a failure here is removed by the next
		// Open, which finds it behind the committed position.
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("wal: remove committed segment: %w", err))
		}
	}
	return errors.Join(errs...)
}

// pendingBytes returns the bytes after the committed position. Called with
// mu held.
func (w *WAL) pendingBytes() int64 {
	var n int64
	for _, s := range w.segs {
		switch {
		case s.id > w.com.segment:
			n += s.size
		case s.id == w.com.segment && s.size > w.com.offset:
			n += s.size - w.com.offset
		}
	}
	return n
}

// Stats returns a snapshot of the WAL's state and counters.
func (w *WAL) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := Stats{
		PendingBytes:   w.pending,
		PendingRecords: w.appendSeq - w.com.seq,
		UnreadRecords:  w.appendSeq - w.rseq,
		Segments:       len(w.segs),
		Appends:        w.appends,
		Syncs:          w.syncs,
		Corrupt:        w.corrupt,
		CorruptBytes:   w.corruptBytes,
	}
	for _, s := range w.segs {
		st.DiskBytes += s.size
	}
	return st
}

// Close fsyncs the segments, closes them and releases the directory. A Read
// blocked in it returns ErrClosed; an Append waiting for an fsync returns
// once Close's fsync covers it. Close is safe to call twice.
func (w *WAL) Close() error {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.done)
	w.mu.Unlock()
	w.wg.Wait()

	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for _, s := range w.segs {
		err := s.f.Sync()
		w.syncs++
		if err != nil {
			errs = append(errs, fmt.Errorf("wal: fsync %s: %w", s.path, err))
		}
		if err := s.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("wal: close %s: %w", s.path, err))
		}
	}
	if len(errs) > 0 {
		w.fail(errs[0])
	} else {
		w.advanceSynced(w.written)
	}
	w.finished = true
	close(w.syncedCh) // wake the Appends still waiting
	w.syncedCh = make(chan struct{})
	if err := w.unlock(); err != nil {
		errs = append(errs, fmt.Errorf("wal: release lock: %w", err))
	}
	return errors.Join(errs...)
}
