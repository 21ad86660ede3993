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
// downstream). Commit writes the position in place (two slots in turn, so
// that a torn write leaves the one before) and has it fsynced within a
// second, not per call: a crash of the process loses no commit, a crash of
// the machine may take the position back by up to a second of deliveries,
// which are then delivered again (see commitSyncEvery).
//
// Open repairs what a crash or a bad disk leaves behind without help: a
// record cut short at the end of a segment is truncated away, a damaged
// record inside a segment is skipped (the records after it are kept), and
// each is reported with one warning naming the segment, the offset and the
// bytes dropped. A damaged commit file makes Open replay every segment.
//
// One process uses a directory at a time: Open takes a lock on it.
//
// # When the disk fails
//
// A failed fsync is final for the WAL that saw it. After one, the kernel may
// have dropped the pages it could not write and marked them clean, so that a
// second fsync of the file reports success without the data (PostgreSQL's
// "fsyncgate"). So the WAL never fsyncs that file again and never
// acknowledges a record that the failed fsync was to cover: the Appends
// waiting on it get its error, every later Append fails at once with the
// same error (it wraps ErrFailed), and Err reports it. This lasts until the
// process opens the directory again (in practice: restarts), whose recovery
// keeps only the records whose checksums match on disk. A write that fails
// for another reason than a full disk, a segment file that cannot be
// created, and a failed fsync of the directory fail the WAL the same way:
// past them, the WAL no longer knows what its files hold. The WAL does not
// seal the segment and try again in a fresh one after a backoff: it cannot
// tell a passing error from a dying disk, and every record it acknowledged
// there would rest on the same device. What Append acknowledged before the
// failure was fsynced and stays readable: Read and Commit go on, so the
// records already in the WAL are still delivered. Close then skips the fsync
// of a file whose fsync failed and returns the failure.
//
// A full disk (ENOSPC, or EDQUOT for a quota) found by a write is not a
// failure. The write only added bytes after the last record, so the WAL cuts
// them off again and Append returns an error wrapping ErrFull, as when
// MaxBytes is reached: the caller retries later, and the first Append that
// fits succeeds. A segment file that cannot be created for lack of room is
// handled the same way. A write that fails with EFBIG (the file may not grow:
// RLIMIT_FSIZE, or the filesystem's largest file) is a full disk too. Room
// comes back as Commit removes delivered segments: Commit removes them even
// when the commit file itself cannot be written (then its position lives on
// in memory and is written by the next Commit; a restart before that
// delivers again what lies after the older position), so a WAL that filled
// the disk itself empties it as its records are delivered (the commit file
// has its room from the start: commits need no more of the disk). That includes the
// active segment, which would otherwise never roll while appends are refused:
// while the disk is full, a Commit that covers every record of the active
// segment replaces it with an empty one and removes it, and so does an Append
// that finds the disk full and the active segment delivered (the disk may
// have filled while the WAL was idle). Stats.DiskFull tells while appends are
// refused for lack of room. If the bytes of a failed write cannot be cut off,
// the WAL fails.
// A full disk reported by fsync instead (filesystems that allocate blocks only
// when they write back) is a failed fsync.
package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
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
	// not of the machine. Close still fsyncs.
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
	// MemoryBytes bounds the records appended and not yet read that the
	// WAL keeps in memory as well (0: none), so that Read returns them
	// without reading them back from the file: the reader usually follows
	// right behind the appends. A record that does not fit (the reader is
	// behind by MemoryBytes) is read from its file, as is everything after
	// Open. With it, Append keeps rec until Read returns it: the caller
	// must not modify rec once it is appended.
	MemoryBytes int64
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
	if o.MemoryBytes < 0 {
		return o, fmt.Errorf("wal: Options.MemoryBytes is negative (%d)", o.MemoryBytes)
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
	// ErrFailed is wrapped by the error of a failed fsync, a failed write
	// (other than a full disk) or a segment that could not be created: from
	// then on every Append fails with it, until the directory is opened
	// again. Err returns it. See the package documentation.
	ErrFailed = errors.New("wal: failed")
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
	// NoSpace counts the Appends refused with ErrFull because the disk
	// had no room (not because of MaxBytes).
	NoSpace uint64
	// DiskFull: Appends are being refused for lack of room on the disk. It
	// is set when one is, and cleared when an Append succeeds, when Commit
	// frees delivered segments (the next Append tries again), or after
	// DiskFullLapse without a refusal (no one tried: whether there is room
	// is unknown, so that a replica out of service for it gets a try again).
	DiskFull bool
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
	commitMu sync.Mutex // serializes Commit and Close, and guards com*
	// The commit file, written in place (see writeCommit): nil until
	// opened, and after a write failed (the next Commit opens it again).
	comFile segFile
	comPath string
	comSlot int // the slot the next commit goes to
	// comDirty: written since its last fsync, which was at comSyncedAt;
	// comTimer fsyncs it later.
	comDirty    bool
	comSyncedAt time.Time
	comTimer    *time.Timer
	// syncMu serializes every fsync of a segment file (group commit, roll,
	// Close), so that a failed fsync is recorded in failed before another
	// fsync of the file can run and wrongly report success.
	syncMu sync.Mutex

	mu       sync.Mutex
	closed   bool      // Close started
	finished bool      // Close done
	failed   error     // set once, wraps ErrFailed: the WAL no longer knows what is on disk
	diskFull bool      // the last write or segment creation found no room
	fullAt   time.Time // when an Append was last refused for lack of room
	// segs is sorted by id; the last one is the active segment that Append
	// writes to, the others are sealed.
	segs []*segment
	// written and synced count bytes since Open over all segments: every
	// byte before synced is on disk. syncedCh is closed when synced moves
	// or failed is set.
	written, synced uint64
	syncedCh        chan struct{}
	com             committed
	// comSaved: the commit file holds com. It does not after a Commit that
	// could not write the file; committing com again then retries.
	comSaved  bool
	appendSeq uint64 // Seq of the last record appended
	pending   int64  // bytes after com
	// The reader's cursor: the next record is at roff in segment rseg (or,
	// if that segment is gone, at the start of the next one).
	rseg uint64
	roff int64
	rseq uint64
	wbuf []byte // Append's buffer for small records
	// mem holds the last records appended and not yet read, in Append
	// order, up to Options.MemoryBytes (memBytes) of them: Read takes the
	// next record from there when it is the first one.
	mem      []memRecord
	memBytes int64
	// Counters for Stats.
	appends, syncs, corrupt, noSpace uint64
	corruptBytes                     int64

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
		return nil, fmt.Errorf("wal: %w", err) // "mkdir DIR: …"
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
	w.comPath = filepath.Join(opts.Dir, commitName)
	err = w.recover()
	if err == nil {
		err = w.openCommit()
	}
	if err != nil {
		for _, s := range w.segs {
			s.f.Close()
		}
		unlock()
		return nil, fmt.Errorf("wal: %w", pathError("open", opts.Dir, err))
	}
	if opts.Sync == SyncInterval {
		w.wg.Add(1)
		go w.syncLoop()
	}
	return w, nil
}

func (w *WAL) active() *segment { return w.segs[len(w.segs)-1] }

// memRecord is a record kept in memory: its bytes and where it lies in its
// segment ([start, end), header included), and what the caller kept with
// it (AppendKept) and the bytes that counts for.
type memRecord struct {
	seg        uint64
	start, end int64
	rec        []byte
	kept       any
	size       int64 // len(rec), plus keptBytes when kept is set
}

// keep adds the record just written to the memory tail if it fits (a
// copy of it when borrowed), with kept (of keptBytes) if that fits too,
// else alone. Called with mu held.
func (w *WAL) keep(seg uint64, start, end int64, rec []byte, borrowed bool, kept any, keptBytes int64) {
	size := int64(len(rec))
	if w.opts.MemoryBytes == 0 || w.memBytes+size > w.opts.MemoryBytes {
		return
	}
	if borrowed {
		rec = bytes.Clone(rec)
	}
	if kept != nil && w.memBytes+size+keptBytes <= w.opts.MemoryBytes {
		size += keptBytes
	} else {
		kept = nil
	}
	w.mem = append(w.mem, memRecord{seg: seg, start: start, end: end, rec: rec, kept: kept, size: size})
	w.memBytes += size
}

// MemoryFree returns the bytes the memory tail has room for now (see
// Options.MemoryBytes), 0 without one: a record appended now, with what
// is kept with it (AppendKept), is kept in memory if it is not larger.
func (w *WAL) MemoryFree() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return max(w.opts.MemoryBytes-w.memBytes, 0)
}

// fromMemory returns the record at the reader's cursor (offset off of
// segment seg) if the memory tail holds it, dropping the records the
// cursor has passed (read from the file). Called with mu held.
func (w *WAL) fromMemory(seg uint64, off int64) (memRecord, bool) {
	for len(w.mem) > 0 {
		m := w.mem[0]
		if !before(m.seg, m.start, seg, off) {
			if m.seg != seg || m.start != off {
				return memRecord{}, false // after the cursor: read the file up to it
			}
		}
		w.mem[0] = memRecord{}
		w.mem = w.mem[1:]
		w.memBytes -= m.size
		if len(w.mem) == 0 {
			w.mem = w.mem[:0:0] // let the array go
		}
		if m.seg == seg && m.start == off {
			return m, true
		}
	}
	return memRecord{}, false
}

// Append writes rec as the next record and returns its position once it is
// as durable as the sync policy asks. It fails with ErrFull when the WAL
// holds MaxBytes not yet committed or the disk has no room, with ErrTooLarge
// for a record larger than MaxRecordBytes, with ErrClosed after Close, and
// with an error wrapping ErrFailed once the WAL has failed (see the package
// documentation); only a nil error means the record is durable. If ctx ends
// while Append waits for an fsync, Append returns ctx's error, but the record
// is written and will be read: answer the agent with a retry, and the record
// arrives twice. The WAL does not keep rec, unless Options.MemoryBytes is
// set: then it may keep rec until Read returns it, and rec must not be
// modified once appended.
func (w *WAL) Append(ctx context.Context, rec []byte) (Pos, error) {
	return w.append(ctx, rec, false, nil, 0)
}

// AppendBorrowed is Append of a record that the caller reuses once it
// returns: the memory tail keeps a copy of it, if it keeps it.
func (w *WAL) AppendBorrowed(ctx context.Context, rec []byte) (Pos, error) {
	return w.append(ctx, rec, true, nil, 0)
}

// AppendKept is Append that keeps kept, a value standing for keptBytes of
// memory (the decoded form of rec, say), with rec in the memory tail:
// ReadKept returns it with the record if the record is read from memory.
// kept is kept only if the memory tail has room for rec and keptBytes, and
// is never written: a record read from its file comes without it.
func (w *WAL) AppendKept(ctx context.Context, rec []byte, kept any, keptBytes int64) (Pos, error) {
	return w.append(ctx, rec, false, kept, keptBytes)
}

func (w *WAL) append(ctx context.Context, rec []byte, borrowed bool, kept any, keptBytes int64) (Pos, error) {
	if err := ctx.Err(); err != nil {
		return Pos{}, err
	}
	if int64(len(rec)) > w.opts.MaxRecordBytes {
		return Pos{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(rec), w.opts.MaxRecordBytes)
	}
	pos, end, err := w.put(rec, borrowed, kept, keptBytes)
	if err != nil {
		return Pos{}, err
	}
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

// put writes rec after the last record, in a new segment if it does not fit
// in the active one, and returns its position and the byte count (since
// Open) that an fsync must reach for it to be durable.
func (w *WAL) put(rec []byte, borrowed bool, kept any, keptBytes int64) (Pos, uint64, error) {
	size := int64(headerSize + len(rec))
	holdSync := false
	w.mu.Lock()
	defer func() {
		w.mu.Unlock()
		if holdSync {
			w.syncMu.Unlock()
		}
	}()
	for {
		switch {
		case w.closed:
			return Pos{}, 0, ErrClosed
		case w.failed != nil:
			return Pos{}, 0, w.failed
		case w.pending+size > w.opts.MaxBytes:
			return Pos{}, 0, fmt.Errorf("%w: %d bytes not yet committed, a record of %d would pass %d", ErrFull, w.pending, size, w.opts.MaxBytes)
		}
		seg := w.active()
		// The disk is full and the active segment holds only delivered
		// records: reclaim it, or nothing may ever free its bytes.
		reclaim := w.diskFull && w.activeDelivered()
		if !reclaim && (seg.size == 0 || seg.size+size <= w.opts.SegmentBytes) {
			break
		}
		if !holdSync {
			// roll and reclaim need syncMu (roll fsyncs; reclaim must not
			// close a segment being fsynced), which comes before mu. Check
			// again once both are held: Close, a failure or another roll
			// may have come in between.
			w.mu.Unlock()
			w.syncMu.Lock()
			holdSync = true
			w.mu.Lock()
			continue
		}
		if reclaim {
			if _, err := w.reclaim(); err != nil {
				return Pos{}, 0, err
			}
			continue
		}
		if err := w.roll(); err != nil {
			return Pos{}, 0, err
		}
	}
	seg := w.active()
	if err := w.write(seg, rec); err != nil {
		return Pos{}, 0, err
	}
	w.keep(seg.id, seg.size, seg.size+size, rec, borrowed, kept, keptBytes)
	seg.size += size
	w.written += uint64(size)
	w.pending += size
	w.appendSeq++
	w.appends++
	return Pos{Segment: seg.id, Offset: seg.size, Seq: w.appendSeq}, w.written, nil
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// write writes the record at the end of seg. Called with mu held. A write
// that fails is cut back off the segment; then a disk without room is
// ErrFull, anything else fails the WAL.
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
	if err == nil {
		w.roomAgain()
		return nil
	}
	err = fmt.Errorf("append record of %d bytes at offset %d: %w", len(rec), seg.size, pathError("write", seg.path, err))
	// Readers never look past seg.size and the next record overwrites
	// these bytes, but a crash would leave them for Open to report as a
	// torn record, and a shorter record written over them would leave
	// their end behind it. A write only ever adds bytes after seg.size, so
	// cutting them off restores the file as it was.
	if terr := seg.f.Truncate(seg.size); terr != nil {
		return w.fail(fmt.Errorf("%w; then cutting it off again: %w", err, pathError("truncate", seg.path, terr)))
	}
	if noSpace(err) {
		return w.full(err)
	}
	return w.fail(err)
}

// DiskFullLapse is how long Stats.DiskFull stays set after the last Append
// refused for lack of room, if nothing clears it before.
const DiskFullLapse = 30 * time.Second

// activeDelivered reports whether the active segment holds records and
// every one of them is committed. Called with mu held.
func (w *WAL) activeDelivered() bool {
	seg := w.active()
	return seg.size > 0 && w.com.segment == seg.id && w.com.offset >= seg.size
}

// reclaim replaces the active segment, whose records are all committed
// (activeDelivered), with an empty one and removes it, so that its bytes go
// back to the disk. It returns the bytes freed. No room for the new segment
// is ErrFull (the old one stays); any other failure fails the WAL, as in
// roll. Called with syncMu and mu held: no fsync of the old segment runs.
func (w *WAL) reclaim() (int64, error) {
	old := w.active()
	seg, err := createSegment(w.opts.Dir, old.id+1)
	if err != nil {
		if noSpace(err) {
			return 0, w.full(err)
		}
		return 0, w.fail(err)
	}
	// The reader's cursor is at the end of old (a record is committed
	// only once read): it moves on to seg by itself.
	w.segs[len(w.segs)-1] = seg
	old.f.Close()
	var errs []error
	// A segment left behind by a failure here is removed by the next Open,
	// which finds it behind the committed position (or fully committed).
	if err := os.Remove(old.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("wal: remove delivered segment: %w", err))
	}
	if w.opts.Sync != SyncNever {
		if err := syncDir(w.opts.Dir); err != nil {
			return old.size, w.fail(err)
		}
	}
	w.pending = w.pendingBytes()
	w.log.Info("wal: the disk is full and every record of the active segment is delivered: started a new one and removed it",
		"dir", w.opts.Dir, "segment", old.path, "bytes", old.size)
	return old.size, errors.Join(errs...)
}

// roll seals the active segment and starts the next one. Called with syncMu
// and mu held.
func (w *WAL) roll() error {
	old := w.active()
	durable := w.opts.Sync != SyncNever
	if durable {
		// Sync only ever fsyncs the active segment: what is written to the
		// old one must be on disk before it stops being active.
		err := old.f.Sync()
		w.syncs++
		if err != nil {
			old.syncFailed = true
			return w.fail(pathError("fsync", old.path, err))
		}
		w.advanceSynced(w.written)
	}
	seg, err := createSegment(w.opts.Dir, old.id+1)
	if err != nil {
		if noSpace(err) {
			return w.full(err)
		}
		return w.fail(err)
	}
	w.roomAgain()
	w.segs = append(w.segs, seg)
	if durable {
		if err := syncDir(w.opts.Dir); err != nil {
			return w.fail(err)
		}
	}
	return nil
}

func createSegment(dir string, id uint64) (*segment, error) {
	path := filepath.Join(dir, segmentName(id))
	f, err := openFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", pathError("open", path, err))
	}
	return &segment{id: id, path: path, f: f}, nil
}

// noSpace reports whether err says that the disk (or the quota) is full,
// or that the file may not grow (EFBIG: RLIMIT_FSIZE, or the largest file
// of the filesystem): either way the record does not fit now, and fits
// once delivered segments are removed.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG)
}

// full turns err, a write or a segment creation that found no room, into
// an ErrFull. Called with mu held.
func (w *WAL) full(err error) error {
	w.noSpace++
	w.fullAt = time.Now()
	if !w.diskFull {
		w.diskFull = true
		w.log.Warn("wal: the disk is full; appends are refused as full until there is room again", "dir", w.opts.Dir, "err", err)
	}
	return fmt.Errorf("%w: no room on the disk: %w", ErrFull, err)
}

// roomAgain records that a write or a segment creation succeeded. Called
// with mu held.
func (w *WAL) roomAgain() {
	if w.diskFull {
		w.diskFull = false
		w.log.Info("wal: the disk has room again; appending", "dir", w.opts.Dir)
	}
}

// fail makes the WAL refuse every later Append with err (see the package
// documentation), wakes the Appends waiting for an fsync so that they get
// it, and returns it. Only the first failure is kept. Called with mu held.
func (w *WAL) fail(err error) error {
	if w.failed == nil {
		w.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		w.log.Error("wal: failed; appends are refused until the directory is opened again (restart the process)",
			"dir", w.opts.Dir, "err", err)
		close(w.syncedCh)
		w.syncedCh = make(chan struct{})
	}
	return w.failed
}

// Err returns the failure that makes Append refuse every record (it wraps
// ErrFailed), or nil while the WAL accepts them. Once set it stays set until
// the directory is opened again. A full disk is not a failure, nor is Close.
func (w *WAL) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// advanceSynced records that every byte before end is on disk. It does
// nothing once the WAL has failed: no fsync after a failed one proves
// anything. Called with mu held.
func (w *WAL) advanceSynced(end uint64) {
	if w.failed == nil && end > w.synced {
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
	if w.synced >= target {
		// Covered by an fsync that succeeded (synced never moves after a
		// failure).
		w.mu.Unlock()
		return nil
	}
	if w.failed != nil {
		defer w.mu.Unlock()
		return w.failed
	}
	seg, end := w.active(), w.written
	w.mu.Unlock()

	// seg stays the active segment during the fsync (a roll needs syncMu),
	// so Commit does not close it.
	err := seg.f.Sync()

	w.mu.Lock()
	defer w.mu.Unlock()
	w.syncs++
	if err != nil {
		seg.syncFailed = true
		return w.fail(pathError("fsync", seg.path, err))
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
// returned slice, and must not modify it: with Options.MemoryBytes it may be
// the slice that was appended.
func (w *WAL) Read(ctx context.Context) (Pos, []byte, error) {
	p, rec, _, err := w.ReadKept(ctx)
	return p, rec, err
}

// ReadKept is Read that also returns what AppendKept kept with the record,
// when the record comes from the memory tail with it; else nil.
func (w *WAL) ReadKept(ctx context.Context) (Pos, []byte, any, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Pos{}, nil, nil, err
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return Pos{}, nil, nil, ErrClosed
		}
		seg, sealed := w.readerSegment()
		switch {
		case seg != nil && w.roff < seg.size:
			if m, ok := w.fromMemory(seg.id, w.roff); ok {
				w.roff = m.end
				w.rseq++
				p := Pos{Segment: seg.id, Offset: m.end, Seq: w.rseq}
				w.mu.Unlock()
				return p, m.rec, m.kept, nil
			}
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
					return Pos{}, nil, nil, ErrClosed
				}
				return Pos{}, nil, nil, fmt.Errorf("wal: %w", err)
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
			return p, fd.payload, nil, nil
		case seg != nil && sealed:
			w.rseg, w.roff = seg.id+1, 0
			w.mu.Unlock()
			continue
		}
		w.mu.Unlock()
		select {
		case <-w.readable:
		case <-ctx.Done():
			return Pos{}, nil, nil, ctx.Err()
		case <-w.done:
			return Pos{}, nil, nil, ErrClosed
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
//
// If the commit file cannot be written (a full disk, say), Commit returns
// the error but still removes the segments behind p and frees their bytes:
// their records are delivered whatever the file says. The position is
// written by the next Commit (of p again, or of a later one); until then, a
// restart delivers again the records after the older position.
func (w *WAL) Commit(p Pos) error {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	c, saved := w.com, w.comSaved
	read := Pos{Segment: w.rseg, Offset: w.roff}
	w.mu.Unlock()
	switch {
	case p.Segment == c.segment && p.Offset == c.offset && saved:
		return nil
	case before(p.Segment, p.Offset, c.segment, c.offset):
		return fmt.Errorf("wal: commit %v: behind the committed position %v (commit in order)", p, Pos{c.segment, c.offset, c.seq})
	case before(read.Segment, read.Offset, p.Segment, p.Offset):
		return fmt.Errorf("wal: commit %v: past the last record read", p)
	}
	nc := committed{segment: p.Segment, offset: p.Offset, seq: p.Seq}
	var errs []error
	if err := w.writeCommit(nc); err != nil {
		errs = append(errs, fmt.Errorf("wal: commit %v: %w (segments behind it are removed all the same)", p, err))
	}

	// While the disk is full, the active segment may be reclaimed below,
	// which needs syncMu (before mu).
	w.mu.Lock()
	full := w.diskFull
	w.mu.Unlock()
	if full {
		w.syncMu.Lock()
		defer w.syncMu.Unlock()
	}
	w.mu.Lock()
	w.com = nc
	w.comSaved = len(errs) == 0
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
	var freed int64
	for _, s := range gone {
		freed += s.size
	}
	if full && w.diskFull && w.failed == nil && w.activeDelivered() {
		n, err := w.reclaim()
		freed += n
		if err != nil && !errors.Is(err, ErrFull) { // ErrFull: the next Append tries again
			errs = append(errs, err)
		}
	}
	if w.diskFull && freed > 0 {
		w.diskFull = false
		w.log.Info("wal: delivered segments removed; appends are tried again", "dir", w.opts.Dir, "bytes_freed", freed)
	}
	w.mu.Unlock()

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
		NoSpace:        w.noSpace,
		DiskFull:       w.diskFull && time.Since(w.fullAt) < DiskFullLapse,
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
// once Close's fsync covers it. After a failure (see Err), Close does not
// fsync a file whose fsync failed, the waiting Appends get the failure, and
// Close returns it. Close is safe to call twice.
func (w *WAL) Close() error {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mem, w.memBytes = nil, 0
	close(w.done)
	w.mu.Unlock()
	w.wg.Wait()
	comErr := w.closeCommit()

	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for _, s := range w.segs {
		if !s.syncFailed {
			err := s.f.Sync()
			w.syncs++
			if err != nil {
				s.syncFailed = true
				err = pathError("fsync", s.path, err)
				if w.failed != nil {
					errs = append(errs, fmt.Errorf("wal: %w", err))
				}
				w.fail(err)
			}
		}
		if err := s.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("wal: %w", pathError("close", s.path, err)))
		}
	}
	w.advanceSynced(w.written) // not after a failure
	w.finished = true
	close(w.syncedCh) // wake the Appends still waiting
	w.syncedCh = make(chan struct{})
	if err := w.unlock(); err != nil {
		errs = append(errs, fmt.Errorf("wal: release lock: %w", err))
	}
	return errors.Join(append([]error{w.failed, comErr}, errs...)...)
}

// commitSyncEvery is how often at most the commit file is fsynced (under
// every SyncPolicy but SyncNever), and how long a commit waits for it at
// most. Every Commit writes the file in place, so a crash of the process
// loses no commit: only a crash of the machine may, and takes the commit
// file back to a position up to this long older. Its records are then
// delivered again, as those read but not committed always may be (at least
// once; event ids make it idempotent downstream). An fsync and a new file
// per Commit (the rename of a temporary file) cost the aggregator two
// fsyncs per delivered batch, more than its WAL's own at a steady trickle.
const commitSyncEvery = time.Second

// openCommit opens the commit file for writing in place, creating it (64
// bytes, no valid slot) if there is none, and growing a file of one slot
// (an older version's) to two. Called by Open after recover (which read
// it and chose comSlot), and by writeCommit after a failed write. Called
// with commitMu held, or before the WAL is shared.
func (w *WAL) openCommit() error {
	f, err := openCommitFile(w.comPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open commit file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("commit file: %w", pathError("stat", w.comPath, err))
	}
	if size := fi.Size(); size < 2*commitSize {
		// Its room taken now, commits never need a block of the disk:
		// they go on when it is full.
		var zero [2 * commitSize]byte
		if _, err := f.WriteAt(zero[size:], size); err != nil {
			f.Close()
			return fmt.Errorf("commit file: %w", err)
		}
		if w.opts.Sync != SyncNever {
			err := f.Sync()
			if err == nil && size == 0 {
				err = syncDir(w.opts.Dir)
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("commit file: %w", err)
			}
		}
	}
	w.comFile = f
	return nil
}

// writeCommit writes c into the commit file's next slot, in place, and
// has it fsynced within commitSyncEvery (see there). Called with commitMu
// held.
func (w *WAL) writeCommit(c committed) error {
	if w.comFile == nil {
		if err := w.openCommit(); err != nil {
			return err
		}
	}
	var b [commitSize]byte
	putCommit(b[:], c)
	if _, err := w.comFile.WriteAt(b[:], int64(w.comSlot*commitSize)); err != nil {
		// Opened again by the next Commit: the slot written half is
		// the one not holding the last commit.
		w.comFile.Close()
		w.comFile = nil
		return err
	}
	w.comSlot ^= 1
	if w.opts.Sync == SyncNever {
		return nil
	}
	w.comDirty = true
	if wait := commitSyncEvery - time.Since(w.comSyncedAt); wait <= 0 {
		return w.syncCommit()
	} else if w.comTimer == nil {
		w.comTimer = time.AfterFunc(wait, w.syncCommitLater)
	}
	return nil
}

// syncCommit fsyncs the commit file. A failure is returned to the Commit
// that asked, or logged (syncCommitLater): the commit file only ever
// holds a position whose records were delivered, so one that did not
// reach the disk costs deliveries again after a crash, not records.
// Called with commitMu held.
func (w *WAL) syncCommit() error {
	w.comDirty = false
	w.comSyncedAt = time.Now()
	if err := w.comFile.Sync(); err != nil {
		return fmt.Errorf("commit file: %w", pathError("fsync", w.comPath, err))
	}
	return nil
}

// syncCommitLater is comTimer's: the fsync a Commit left for later.
func (w *WAL) syncCommitLater() {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	w.comTimer = nil
	if w.comFile == nil || !w.comDirty {
		return
	}
	if err := w.syncCommit(); err != nil {
		w.log.Warn("wal: the committed position may not survive a crash of the machine", "err", err)
	}
}

// closeCommit fsyncs (unless SyncNever) and closes the commit file, for
// Close (commitMu held).
func (w *WAL) closeCommit() error {
	if w.comTimer != nil {
		w.comTimer.Stop()
		w.comTimer = nil
	}
	if w.comFile == nil {
		return nil
	}
	var err error
	if w.comDirty {
		err = w.syncCommit()
	}
	if cerr := w.comFile.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("commit file: %w", pathError("close", w.comPath, cerr))
	}
	w.comFile = nil
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	return nil
}
