package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	"github.com/ferrylogs/ferry/pipeline/multiline"
	"github.com/ferrylogs/ferry/pipeline/parse"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// join collects the fragments of one split line of one stream.
type join struct {
	active bool
	off    int64
	time   int64
	orig   string // the first fragment's time as written, when out of range
	flags  uint32
	buf    []byte
	frags  int   // fragments so far
	last   int64 // when the last fragment was read (Unix ns)
	end    int64 // offset just past the last fragment
	// flushed: the last partial record of the stream was sent on its own
	// (partial_flush_after): what continues it is flagged partial too.
	flushed bool
}

// follower reads one file (one device and inode) until it is rotated away
// or deleted and drained, or until its context ends.
type follower struct {
	m    *Manager
	in   *Input
	log  *slog.Logger
	link string // the glob match; "" for a file recovered by identity
	path string // the file actually open
	di   devIno
	f    *os.File
	file *File

	// drainOnly: read to EOF and finish (a rotated file found at start).
	drainOnly bool
	// resume, if set, is the checkpoint to continue (recovery).
	resume *checkpoint.Entry
	// startAtEnd: skip the endAt bytes the file held when it was found
	// (start_at: end, for files present at the very first start).
	startAtEnd bool
	endAt      int64

	fp       string    // fingerprint of the current identity
	fpLen    int       // bytes it covers
	movedAt  time.Time // when the glob match was first seen to name another file
	leftover bool      // partial may hold complete lines (the chunk filled up)
	// canRewind: the unconsumed bytes may be given up and read again
	// (see rewind); rewound counts how often they were (tests).
	canRewind bool
	rewound   atomic.Int64
	// perRec is about how many bytes of the file make one event (see
	// readWant); 0 until known.
	perRec int

	format   parse.Format
	bufStart int64 // file offset of the first unconsumed byte
	readPos  int64 // file offset of the next byte to read
	// The bytes read but not consumed yet (an incomplete line, or complete
	// lines left when the chunk filled up) are in rbuf, a read buffer the
	// follower keeps while it has work, or in partial while it waits.
	rbuf     *[]byte
	partial  []byte
	skipping bool  // dropping the rest of an over-long line
	skipOff  int64 // where the over-long line started
	joins    [3]join
	chunk    *Chunk
	now      int64
	warned   bool
	sentEnd  int64 // End of the last chunk handed on
	wake     chan struct{}
	parked   parked
	// notified: write notifications come for the file's directory (set
	// by startFollower, cleared when the directory's watch ends, set again
	// when it is watched again: see Manager.dirGone and rewatch).
	notified atomic.Bool
	// lookGone: a notification said the file may be deleted or renamed
	// (or notifications were lost): see whether it is gone at the next
	// wake, not only at the next poll.
	lookGone atomic.Bool
	looks    atomic.Int64 // times goneHow or a poll while parked looked (tests)
	reads    atomic.Int64 // turns that read (tests)
	turns    atomic.Int64 // turns (tests)
	// stop ends the follower without finishing the file (its position
	// stays where the acks put it); set by startFollower.
	stop context.CancelFunc
	// next is the input SetInputs gave the file (m.mu), which the
	// follower takes on between chunks (switchInput); switched says
	// there is one. in is written under m.mu too.
	next     *Input
	switched atomic.Bool
	// marks are checks of the bytes before some offsets of the current
	// content, as read: every power of two from markMin up to what was
	// read, and the last chunk ends. They tell a truncation that kept what
	// was read (truncate -s) from a rewrite.
	marks []mark
	// retired: the file was seen deleted and its position retired.
	retired bool
	// long holds the start of an over-long Docker line being skipped, and
	// longTail its last bytes so far, to parse its stream and time.
	long     []byte
	longTail []byte
	// lineEnd is the offset just past the line being emitted.
	lineEnd int64
	// ml is the multiline rule in effect (nil: none) and mls its joiner
	// of each stream, made on first use. mlWait: the pod's rule is still
	// to be asked for (Input.RuleFor), mlWarned: a bad one was warned of.
	ml       *multiline.Spec
	mls      [3]*multiline.Joiner
	mlWait   bool
	mlWarned bool
}

// Marks are kept at every power of two from markMin, and at the last
// markChunkEnds chunk ends.
const (
	markMin       = 64
	markChunkEnds = 8
)

// addMark records mk, in offset order; of the marks not at a power of two
// only the last markChunkEnds are kept.
func (fl *follower) addMark(mk mark) {
	i := len(fl.marks)
	for i > 0 && fl.marks[i-1].end >= mk.end {
		if fl.marks[i-1].end == mk.end {
			return
		}
		i--
	}
	fl.marks = append(fl.marks, mark{})
	copy(fl.marks[i+1:], fl.marks[i:])
	fl.marks[i] = mk
	others := 0
	for j := len(fl.marks) - 1; j >= 0; j-- {
		if isPow2(fl.marks[j].end) {
			continue
		}
		if others++; others > markChunkEnds {
			fl.marks = append(fl.marks[:j], fl.marks[j+1:]...)
		}
	}
}

func isPow2(x int64) bool { return x > 0 && x&(x-1) == 0 }

// passMarks takes the marks at the powers of two in (from, to] of the
// file as it is now: called right after those bytes were read.
func (fl *follower) passMarks(from, to int64) {
	b := int64(markMin)
	for b <= from {
		b <<= 1
	}
	for ; b <= to; b <<= 1 {
		if mk, ok := checkAt(fl.f, b); ok {
			fl.addMark(mk)
		}
	}
}

// lastMark returns the mark with the greatest offset in (after, upTo].
func (fl *follower) lastMark(after, upTo int64) (mark, bool) {
	for i := len(fl.marks) - 1; i >= 0; i-- {
		if mk := fl.marks[i]; mk.end <= upTo {
			return mk, mk.end > after && mk.n > 0
		}
	}
	return mark{}, false
}

func (fl *follower) run(ctx context.Context) {
	defer func() {
		if fl.chunk != nil {
			fl.chunk.Release()
			fl.chunk = nil
		}
		if fl.f != nil {
			fl.f.Close()
		}
		fl.dropUnconsumed()
	}()
	if err := fl.establish(ctx); err != nil {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, errGone) {
			fl.log.Warn("cannot follow file", "path", fl.path, "err", err)
		}
		return
	}
	fl.initRule()
	// goneAt is when the file was first seen gone: deleted, renamed away,
	// or (drainOnly) rotated while the agent was down. A writer may still
	// append to it for a while, so it is read on until a poll interval
	// passes without new data, and a renamed file (which a writer is more
	// likely to hold open until it reopens its log) for at least
	// renameWaitPolls poll intervals. A deleted file is let go after
	// rotateWait at most, so that its space is freed.
	var goneAt time.Time
	timer := time.NewTimer(fl.in.PollInterval)
	defer timer.Stop()
	// polled: this turn comes from the poll timer (or is the first). A
	// turn woken by a write notification does not look whether the file
	// is gone (a stat of its link and of the file): the next poll does, and
	// a deletion or rename notification wakes it with lookGone.
	polled := true
	for {
		fl.turns.Add(1)
		before := fl.readPos
		if !polled || !goneAt.IsZero() || !fl.quiet() {
			fl.reads.Add(1)
			err := fl.readToEOF(ctx, true)
			if errors.Is(err, errTruncated) {
				if err := fl.handleTruncation(ctx); err != nil {
					if !errors.Is(err, context.Canceled) && !errors.Is(err, errGone) {
						fl.log.Warn("after truncation", "path", fl.path, "err", err)
					}
					return
				}
				goneAt = time.Time{}
				continue
			}
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					fl.log.Warn("read failed", "path", fl.path, "err", err)
				}
				return
			}
			if err := fl.flushStaleJoins(ctx); err != nil {
				return
			}
			if err := fl.flushGroups(ctx, false); err != nil {
				return
			}
			if err := fl.resolveRule(ctx); err != nil {
				return
			}
			if err := fl.send(ctx, false); err != nil {
				return
			}
		}
		g := notGone
		if polled || fl.lookGone.Swap(false) || !goneAt.IsZero() {
			g = fl.goneHow()
		}
		if g != notGone {
			if g == deleted && !fl.retired {
				// No file is ever resumed from this position again,
				// even should a new file get the inode.
				fl.retired = true
				fl.m.store.Retire(fl.file.ID)
			}
			now := time.Now()
			quiet := fl.readPos == before
			switch {
			case goneAt.IsZero():
				goneAt = now
			case g == deleted && (quiet || now.Sub(goneAt) >= rotateWait),
				g == moved && quiet && now.Sub(goneAt) >= renameWaitPolls*fl.in.PollInterval:
				fl.finish(ctx)
				return
			}
		} else {
			goneAt = time.Time{}
		}
		switch {
		case goneAt.IsZero() && !fl.waiting():
			// Nothing to do until the file changes: its polls are the
			// manager's (see parked).
			timer.Stop()
			fl.park()
		case goneAt.IsZero():
			timer.Reset(untilPoll(time.Now(), fl.in.PollInterval))
		default:
			// A full interval: quiet must mean a poll interval without
			// new data.
			timer.Reset(fl.in.PollInterval)
		}
		select {
		case <-ctx.Done():
			fl.unpark()
			return
		case <-fl.wake:
			polled = fl.unpark()
			timer.Stop()
		case <-timer.C:
			polled = true
		}
	}
}

// parked is the state of a follower that waits with nothing to do until
// its file changes (no timer of its own): the manager polls it, so that the
// polls of idle files cost one wake of the agent per poll interval, not one
// per file. The manager looks at what the follower's own poll would (see
// pollParked) while the follower sleeps, under mu, and wakes it for a
// polled turn when that poll would do anything. The follower touches its
// file, readPos and link only while not parked.
type parked struct {
	mu     sync.Mutex
	on     bool
	next   time.Time     // the next poll
	every  time.Duration // the poll interval
	polled bool          // the manager woke it for a poll
	// grown: a poll found the file longer than what was read, and left
	// it to the write notification that is then on its way.
	grown bool
}

// park makes the follower's polls the manager's until it is woken. While
// notifications cover the file, its polls keep the interval they backed
// off to (see pollParked): the writes to a busy file wake its follower
// through their notifications, and polling it at the input's interval
// again after each of its turns would look at it (two system calls) every
// interval for nothing, the larger part of the agent's polls at a trickle.
// A poll that finds the file grown still goes back to the input's interval.
func (fl *follower) park() {
	now := time.Now()
	fl.parked.mu.Lock()
	every := fl.in.PollInterval
	if fl.notified.Load() && !fl.m.notesFailed.Load() && fl.parked.every > every {
		every = fl.parked.every
	}
	fl.parked.on, fl.parked.every, fl.parked.grown = true, every, false
	fl.parked.next = now.Add(untilPoll(now, every))
	fl.parked.mu.Unlock()
}

// unpark ends park on a wake; it reports whether the manager woke the
// follower for a poll.
func (fl *follower) unpark() (polled bool) {
	fl.parked.mu.Lock()
	polled = fl.parked.polled
	fl.parked.on, fl.parked.polled = false, false
	fl.parked.mu.Unlock()
	return polled
}

// pollParked is the poll of a parked follower, done by the manager at now:
// if the poll is due and would find anything to do (the file is longer or
// shorter than what was read, deleted, or its link names another file or
// nothing; a new input to take on), the follower is woken for a polled
// turn. It returns when the next poll of the follower is due, zero if it
// is not parked.
func (fl *follower) pollParked(now time.Time) time.Time {
	p := &fl.parked
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on {
		return time.Time{}
	}
	if now.Before(p.next) {
		return p.next
	}
	if fl.pollWouldAct() {
		p.on, p.polled = false, true
		fl.wakeUp()
		return time.Time{}
	}
	if fl.notified.Load() && !fl.m.notesFailed.Load() && !p.grown {
		// Notifications cover the file: its writes, removal and renames
		// wake the follower, and the poll is only a safety net, which
		// backs off while the file stays quiet (an idle node with a
		// thousand files would otherwise stat each four times a second)
		// and keeps the interval across the follower's turns (see park).
		// A poll that finds the file grown keeps the interval, so the
		// next one reads it (see pollWouldAct).
		p.every = min(2*p.every, parkedPollMax(fl.in.PollInterval))
	} else {
		p.every = fl.in.PollInterval
	}
	p.next = now.Add(untilPoll(now, p.every))
	return p.next
}

// parkedPollMax is the longest interval between two polls of a parked
// follower whose file notifications cover, for an input polled every
// base: the largest of base, 2×base, 4×base and 8×base that is at most
// 2 s (base itself if longer). Being a power-of-two multiple of base, its
// polls fall on the base's ticks (see untilPoll): still one wake of the
// agent for all files.
func parkedPollMax(base time.Duration) time.Duration {
	m := base
	for i := 0; i < 3 && 2*m <= 2*time.Second; i++ {
		m *= 2
	}
	return m
}

// pollWouldAct reports whether a poll of the parked follower would do more
// than look (see run): its turn reads when the file's size is not what was
// read, and goneHow finds something unless the file has links and its link
// names it. (p.mu is held.)
func (fl *follower) pollWouldAct() bool {
	fl.looks.Add(1)
	if fl.switched.Load() || fl.drainOnly || fl.link == "" {
		return true
	}
	size, links, err := fileSize(fl.f)
	if err != nil || links == 0 || size < fl.readPos {
		return true
	}
	if size > fl.readPos {
		// Written since it was read. Where notifications come, the
		// write's wakes the follower, within the read delay (the poll
		// would only read it sooner, and cost a turn that looks whether
		// the file is gone): a poll reads it only should it still wait
		// at the next poll (a notification lost where the kernel does
		// not send them, e.g. for writes on another NFS client).
		if !fl.notified.Load() || fl.m.notesFailed.Load() || fl.parked.grown {
			return true
		}
		fl.parked.grown = true
		return false
	}
	fi, err := os.Stat(fl.link)
	if err != nil {
		return true
	}
	di, _ := statDevIno(fi)
	return di != fl.di
}

// quiet reports, at a poll, that there is nothing to do but look whether
// the file is gone: it is no longer than what was read, and nothing read
// waits (a chunk, leftover or unterminated bytes, a join, a multiline
// group, the pod's rule, a new input to take on). Such a poll takes no
// chunk and reads nothing. A file rewritten to the very length that was
// read is not noticed either way (see truncated).
func (fl *follower) quiet() bool {
	if fl.waiting() {
		return false
	}
	size, _, err := fileSize(fl.f)
	return err == nil && size == fl.readPos
}

// waiting reports whether anything read waits to be handed on or flushed
// (see quiet): the follower then keeps its own poll timer.
func (fl *follower) waiting() bool {
	if fl.chunk != nil || fl.leftover || fl.skipping || fl.mlWait || fl.switched.Load() || len(fl.unconsumed()) > 0 {
		return true
	}
	for i := range fl.joins {
		if fl.joins[i].active {
			return true
		}
	}
	for _, j := range fl.mls {
		if j == nil {
			continue
		}
		if _, open := j.Open(); open {
			return true
		}
	}
	return false
}

const (
	// rotateWait bounds how long a deleted file is still read while a
	// writer keeps appending to it.
	rotateWait = 5 * time.Second
	// renameWaitPolls is how many poll intervals a renamed file is read at
	// least.
	renameWaitPolls = 10
)

var errGone = errors.New("file gone before it had a first line")

// establish waits for the file's first line, then finds its identity and
// where to start: a saved position with the same device, inode and
// fingerprint, else the start of the file (or its end on a first start
// with start_at: end). The file is already open.
func (fl *follower) establish(ctx context.Context) error {
	for {
		fp, n, err := fingerprint(fl.f)
		if err == nil {
			return fl.start(fp, n)
		}
		if !errors.Is(err, errNoFingerprint) {
			return err
		}
		if fl.drainOnly || fl.gone() {
			return errGone
		}
		if err := fl.sleep(ctx); err != nil {
			return err
		}
	}
}

// untilPoll is how long to wait at now for the next poll of a file polled
// every interval: until the next multiple of interval since the epoch, so
// that the polls of every file with the same interval fall on the same
// moments and wake the agent once, not once per file.
func untilPoll(now time.Time, interval time.Duration) time.Duration {
	return interval - time.Duration(now.UnixNano()%int64(interval))
}

// sleep waits until the next poll or until the file changes.
func (fl *follower) sleep(ctx context.Context) error {
	t := time.NewTimer(untilPoll(time.Now(), fl.in.PollInterval))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-fl.wake:
	case <-t.C:
	}
	return nil
}

// start picks the position the file resumes from: a saved entry of its
// device and inode that is not retired (its file deleted), whose
// fingerprint the file starts with and whose check the file still holds
// before the offset (see matchesEntry). Entries of the inode that fail are
// forgotten: their file was rewritten or the inode reused. Without one the
// file is new content, under the next generation of its identity, so no
// event id of an earlier content of the same inode and first line comes
// back.
func (fl *follower) start(fp string, fpLen int) error {
	fl.switchInput()
	store := fl.m.store
	resume := fl.resume
	if resume == nil {
		for _, e := range store.Find(fl.di.dev, fl.di.ino) {
			if e.Retired {
				continue // a deleted file's lines waiting for acks
			}
			if matchesEntry(fl.f, e) {
				if resume == nil || e.Updated.After(resume.Updated) {
					if resume != nil {
						store.Remove(resume.ID)
					}
					e := e
					resume = &e
				} else {
					store.Remove(e.ID)
				}
				continue
			}
			// Same inode, other content: rewritten, or the inode reused.
			fl.log.Info("file rewritten or inode reused, reading it as new content", "path", fl.path, "old_id", e.ID, "old_offset", e.Offset)
			store.Remove(e.ID)
		}
	}
	var off int64
	base := identity(fl.di, fp)
	gen := 0
	var check mark
	if resume != nil {
		// A file now shorter than the saved offset was truncated: the
		// run loop notices and reads the rest from the copy, if any.
		base, gen, off = resume.BaseID(), resume.Gen, resume.Offset
		fp, fpLen = resume.Fingerprint, resume.FingerprintLen
		check = entryMark(*resume)
	} else {
		gen = store.NextGen(base)
	}
	id := checkpoint.GenID(base, gen)
	if resume != nil {
		id = resume.ID
	}
	fl.marks = fl.marks[:0]
	if check.n > 0 {
		fl.addMark(check)
	}
	if resume != nil {
		if size, _, err := fileSize(fl.f); err == nil && size >= off {
			fl.passMarks(0, off) // the bytes before off are verified
		}
	} else if fl.startAtEnd {
		end := fl.endAt
		if size, _, err := fileSize(fl.f); err == nil && size < end {
			end = size
		}
		off = lineStartBefore(fl.f, end)
	}
	if _, err := fl.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("resume at offset %d: %w", off, err) // "seek /x: …"
	}
	fl.reset(off)
	fl.fp, fl.fpLen = fp, fpLen
	link := fl.link
	if link == "" && resume != nil {
		link = resume.Link
	}
	if link == "" {
		link = fl.path
	}
	fl.file = fl.m.newFile(fl.in, id, fl.path, link)
	if resume == nil && off > 0 {
		check, _ = checkAt(fl.f, off)
	}
	store.Put(checkpoint.Entry{
		ID: id, Base: base, Gen: gen, Dev: fl.di.dev, Ino: fl.di.ino, Fingerprint: fp, FingerprintLen: fpLen,
		Path: fl.path, Link: link, Input: fl.in.Name, Offset: off, Check: check.sum, CheckLen: check.n,
	})
	fl.format = fl.in.Format
	fl.log.Debug("following", "path", fl.path, "id", id, "offset", off)
	return nil
}

// reset forgets everything read and sets the read position to off.
func (fl *follower) reset(off int64) {
	fl.bufStart, fl.readPos, fl.sentEnd = off, off, off
	fl.dropUnconsumed()
	fl.skipping, fl.leftover = false, false
	fl.long, fl.longTail = nil, nil
	for i := range fl.joins {
		fl.joins[i].active, fl.joins[i].flushed = false, false
	}
	for _, j := range fl.mls {
		if j != nil {
			j.Reset()
		}
	}
}

// lineStartBefore returns the start of the line that holds the byte before
// off (off itself if that byte ends a line), so that a reader starting at
// the end of a file never starts inside a line. It looks back at most
// 64 KiB.
func lineStartBefore(f *os.File, off int64) int64 {
	if off <= 0 {
		return 0
	}
	var buf [64 << 10]byte
	from := max(0, off-int64(len(buf)))
	n, err := f.ReadAt(buf[:off-from], from)
	if err != nil && !errors.Is(err, io.EOF) {
		return off
	}
	if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
		return from + int64(i) + 1
	}
	if from == 0 {
		return 0
	}
	return off
}

// goneState says whether and how a file stopped being followed.
type goneState int

const (
	notGone goneState = iota
	deleted           // no link left
	moved             // renamed away from its glob match, or drainOnly
)

// gone reports whether the file is no longer followed.
func (fl *follower) gone() bool { return fl.goneHow() != notGone }

// goneHow reports whether the file is deleted, or no longer followed
// because its glob match now names another file (rename rotation) and no
// scan since matches it under another name.
func (fl *follower) goneHow() goneState {
	fl.looks.Add(1)
	if _, links, err := fileSize(fl.f); err == nil && links == 0 {
		return deleted
	}
	if fl.drainOnly || fl.link == "" {
		return moved
	}
	if fi, err := os.Stat(fl.link); err == nil {
		if di, _ := statDevIno(fi); di == fl.di {
			fl.movedAt = time.Time{}
			return notGone
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return notGone
	}
	if fl.movedAt.IsZero() {
		fl.movedAt = time.Now()
	}
	if matched, known := fl.m.matchedSince(fl.di, fl.movedAt); known && !matched {
		return moved
	}
	return notGone
}

// errTruncated says the file was truncated under the follower.
var errTruncated = errors.New("file truncated")

// truncated reports whether the file was truncated in place (copytruncate):
// it is shorter than what was read, or its first bytes changed.
func (fl *follower) truncated() (bool, error) {
	size, _, err := fileSize(fl.f)
	if err != nil {
		return false, err
	}
	if size < fl.readPos {
		return true, nil
	}
	if size == fl.readPos || fl.fpLen == 0 {
		return false, nil
	}
	if !hasFingerprint(fl.f, fl.fpLen, fl.fp) {
		return true, nil
	}
	// Rewritten in place (O_TRUNC and more bytes than were read): the
	// bytes before the last mark read are not what they were.
	if mk, ok := fl.lastMark(int64(fl.fpLen), fl.readPos); ok && !mk.holds(fl.f) {
		return true, nil
	}
	return false, nil
}

// handleTruncation deals with copytruncate: it first looks for the copy
// (a file beside this one that starts with the same bytes) and reads from
// it whatever was not read yet, under the old identity, so no line is lost;
// then it starts the truncated file over under a new identity.
func (fl *follower) handleTruncation(ctx context.Context) error {
	fl.log.Info("file truncated", "path", fl.path, "read_offset", fl.readPos)
	old := fl.file
	oldFP, oldFPLen, oldRead := fl.fp, fl.fpLen, fl.readPos
	marks := append([]mark(nil), fl.marks...)
	e := checkpoint.Entry{Fingerprint: fl.fp, FingerprintLen: fl.fpLen}
	if saved, ok := fl.m.store.Get(old.ID); ok {
		e.Offset, e.Check, e.CheckLen = saved.Offset, saved.Check, saved.CheckLen
	}
	fromCopy := false
	if cp := fl.m.findByFingerprint(filepath.Dir(fl.path), e, fl.di); cp != "" {
		if f, err := os.Open(cp); err == nil {
			fromCopy = true
			// The copy holds the same bytes as the file did: go on
			// reading at the read position, with lines, joins and
			// skips in progress as they are.
			fl.log.Info("reading the rest of the truncated file from its copy", "copy", cp, "offset", fl.readPos)
			orig, origPath := fl.f, fl.path
			fl.f, fl.path = f, cp
			_, err := f.Seek(fl.readPos, io.SeekStart)
			if err == nil {
				err = fl.readToEOF(ctx, false)
			}
			f.Close()
			fl.f, fl.path = orig, origPath
			if err != nil {
				return err
			}
		}
	}
	// Without a copy, an unterminated last line may be cut short by the
	// truncation: it is sent flagged as truncated.
	if err := fl.flushPending(ctx, !fromCopy); err != nil {
		return err
	}
	if err := fl.send(ctx, true); err != nil {
		return err
	}
	for {
		fp, n, err := fingerprint(fl.f)
		if err == nil {
			// A truncated file is new content: never resume it. What
			// truncate -s kept was read already: read on from its end.
			fl.resume = nil
			var from int64
			if !fromCopy && fp == oldFP && n == oldFPLen {
				from = keptPrefix(fl.f, marks, n, oldRead)
			}
			if from > 0 {
				fl.log.Info("file truncated to a size that holds what was read: reading on from its end as new content", "path", fl.path, "size", from)
			} else {
				fl.log.Info("reading the truncated file from its start as new content", "path", fl.path)
			}
			return fl.startFresh(fp, n, old, from, marks)
		}
		if !errors.Is(err, errNoFingerprint) {
			return err
		}
		if fl.gone() {
			return errGone
		}
		if err := fl.sleep(ctx); err != nil {
			return err
		}
	}
}

// keptPrefix returns where to read on in a file truncated under its
// follower, that still starts with the fingerprint it had: its new size, if
// that is less than what was read (oldRead), ends a line, and the last mark
// at or before it (past the fingerprint's fpLen bytes) still holds, so the
// file holds what was read up to there (truncate -s); else 0, to read it
// again from its start. Without such a mark (a size below the first marks,
// or a file resumed from a position while it was already shorter) only the
// fingerprint is known, which is not enough unless it is all that is left.
func keptPrefix(f *os.File, marks []mark, fpLen int, oldRead int64) int64 {
	size, _, err := fileSize(f)
	if err != nil || size == 0 || size >= oldRead {
		return 0
	}
	if size > int64(fpLen) {
		var mk mark
		found := false
		for i := len(marks) - 1; i >= 0; i-- {
			if marks[i].end <= size {
				mk, found = marks[i], marks[i].end > int64(fpLen) && marks[i].n > 0
				break
			}
		}
		if !found || !mk.holds(f) {
			return 0
		}
	}
	var last [1]byte
	if n, _ := f.ReadAt(last[:], size-1); n != 1 || last[0] != '\n' {
		return 0
	}
	return size
}

// startFresh starts the open file at offset from (0, or the end of what a
// truncation kept) as new content: the next generation of its identity, so
// the ids of its lines differ from those of the content before. The old
// File's position goes with the final chunk already sent; marks up to from
// still hold.
func (fl *follower) startFresh(fp string, fpLen int, old *File, from int64, marks []mark) error {
	base := identity(fl.di, fp)
	if e, ok := fl.m.store.Get(old.ID); ok && fp == fl.fp {
		base = e.BaseID()
	}
	gen := fl.m.store.NextGen(base)
	id := checkpoint.GenID(base, gen)
	if _, err := fl.f.Seek(from, io.SeekStart); err != nil {
		return fmt.Errorf("read on at offset %d: %w", from, err) // "seek /x: …"
	}
	fl.reset(from)
	fl.fp, fl.fpLen = fp, fpLen
	fl.marks = fl.marks[:0]
	for _, mk := range marks {
		if mk.end <= from {
			fl.addMark(mk)
		}
	}
	var check mark
	if from > 0 {
		check, _ = checkAt(fl.f, from)
		fl.addMark(check)
	}
	fl.file = fl.m.newFile(fl.in, id, fl.path, old.Link)
	fl.m.store.Put(checkpoint.Entry{
		ID: id, Base: base, Gen: gen, Dev: fl.di.dev, Ino: fl.di.ino, Fingerprint: fp, FingerprintLen: fpLen,
		Path: fl.path, Link: old.Link, Input: fl.in.Name, Offset: from, Check: check.sum, CheckLen: check.n,
	})
	return nil
}

// finish drains what is left of a file that is gone: an unterminated last
// line and unfinished joins become events, then a final chunk lets the
// position be forgotten once acknowledged.
func (fl *follower) finish(ctx context.Context) {
	if err := fl.flushPending(ctx, false); err != nil {
		return
	}
	if err := fl.send(ctx, true); err != nil {
		return
	}
	fl.log.Debug("finished file", "path", fl.path, "offset", fl.readPos)
}

// flushPending emits complete lines left over from a full chunk, then the
// unterminated last line (flagged truncated if cut) and open joins.
func (fl *follower) flushPending(ctx context.Context, cut bool) error {
	for fl.leftover {
		if err := fl.ensureRoom(ctx); err != nil {
			return err
		}
		fl.leftover = false
		p := &fl.partial
		if fl.rbuf != nil {
			p = fl.rbuf
		}
		buf := *p
		used := fl.process(buf)
		*p = buf[:copy(buf, buf[used:])]
		fl.leftover = fl.chunk.full()
	}
	fl.now = time.Now().UnixNano()
	fl.lineEnd = fl.readPos
	if fl.skipping && fl.long != nil {
		if err := fl.ensureRoom(ctx); err != nil {
			return err
		}
		fl.emitLong(fl.long, fl.longTail, fl.skipOff, 0)
	}
	fl.long, fl.longTail = nil, nil
	if len(fl.unconsumed()) > 0 && !fl.skipping {
		if err := fl.ensureRoom(ctx); err != nil {
			return err
		}
		line, flags := fl.cut(fl.unconsumed())
		if cut {
			flags |= uint32(ferryv1.Flag_FLAG_TRUNCATED)
		}
		fl.emit(line, fl.bufStart, flags)
	}
	fl.dropUnconsumed()
	fl.skipping, fl.leftover = false, false
	fl.bufStart = fl.readPos
	for s := range fl.joins {
		j := &fl.joins[s]
		if !j.active {
			continue
		}
		if err := fl.ensureRoom(ctx); err != nil {
			return err
		}
		j.flags |= uint32(ferryv1.Flag_FLAG_PARTIAL) // never continued
		fl.emitJoined(j, ferryv1.StreamName(s))
	}
	return fl.flushGroups(ctx, true)
}

// readToEOF reads and parses everything up to the current end of file. It
// holds at most one chunk and one read buffer at a time, and holds no read
// buffer while it waits to hand a full chunk on. With check it returns
// errTruncated, before reading, if the file was truncated.
func (fl *follower) readToEOF(ctx context.Context, check bool) error {
	fl.canRewind = true
	defer func() { fl.canRewind = false }()
	for {
		if err := fl.ensureChunk(ctx); err != nil {
			return err
		}
		// Checked before every read (and after waiting for a chunk): bytes
		// written after a truncation must not be read as the old file's.
		if check {
			if t, err := fl.truncated(); err != nil {
				return err
			} else if t {
				return errTruncated
			}
		}
		full, err := fl.readSome()
		if err != nil {
			return err
		}
		if !full {
			return nil
		}
		if err := fl.send(ctx, false); err != nil {
			return err
		}
	}
}

// readSome reads until the end of file or until the chunk is full. It
// first parses complete lines left over from the last full chunk.
func (fl *follower) readSome() (full bool, err error) {
	bp := fl.rbuf
	if bp == nil {
		bp = bufPool.Get().(*[]byte)
		*bp = append((*bp)[:0], fl.partial...)
		fl.partial = fl.partial[:0]
		if cap(fl.partial) > smallPartial {
			fl.partial = nil
		}
		fl.rbuf = bp
	}
	buf := *bp
	defer func() {
		*bp = buf
		if len(buf) <= smallPartial {
			fl.compact()
		}
	}()
	if fl.leftover {
		fl.leftover = false
		used := fl.process(buf)
		buf = buf[:copy(buf, buf[used:])]
		if fl.chunk.full() {
			fl.leftover = true
			return true, nil
		}
	}
	for {
		if cap(buf)-len(buf) < readSize/2 {
			nb := make([]byte, len(buf), 2*cap(buf)+readSize)
			copy(nb, buf)
			buf = nb
		}
		want := min(cap(buf), len(buf)+fl.readWant()) - len(buf)
		n, rerr := fl.f.Read(buf[len(buf) : len(buf)+want])
		if n > 0 {
			fl.passMarks(fl.readPos, fl.readPos+int64(n))
			fl.readPos += int64(n)
			buf = buf[:len(buf)+n]
			recs := len(fl.chunk.Recs)
			used := fl.process(buf)
			fl.learnLineSize(used, len(fl.chunk.Recs)-recs)
			buf = buf[:copy(buf, buf[used:])]
			if fl.chunk.full() {
				fl.leftover = true
				return true, nil
			}
		}
		if errors.Is(rerr, io.EOF) || n == 0 {
			return false, nil
		}
		if rerr != nil {
			return false, rerr // "read /x: …" names the file
		}
		if n < want {
			// A short read of a regular file ends at its end: what is
			// written from now on comes with a notification (or the
			// next poll), so the read that would return 0 is saved
			// (one syscall of every turn of a follower woken by a
			// write).
			return false, nil
		}
	}
}

// minRead is the least a follower asks for in one read.
const minRead = 4 << 10

// readWant is how many bytes to read next: about what the chunk has room
// for, from the bytes per event of the file so far, so that few complete
// lines are left over when the chunk fills up (they would be read again,
// see rewind); readSize while nothing is known.
func (fl *follower) readWant() int {
	if fl.perRec <= 0 {
		return readSize
	}
	room := chunkMaxRecs - len(fl.chunk.Recs) + 1
	return min(max(room*fl.perRec, minRead), readSize)
}

// learnLineSize takes into account that used bytes made recs events.
func (fl *follower) learnLineSize(used, recs int) {
	if recs <= 0 {
		return
	}
	cur := (used + recs - 1) / recs
	if fl.perRec <= 0 {
		fl.perRec = cur
	} else {
		fl.perRec = (3*fl.perRec + cur + 3) / 4
	}
}

// smallPartial is the most unconsumed bytes a follower keeps outside a read
// buffer between reads without being made to (see compact).
const smallPartial = 4 << 10

// unconsumed returns the bytes read but not consumed yet.
func (fl *follower) unconsumed() []byte {
	if fl.rbuf != nil {
		return *fl.rbuf
	}
	return fl.partial
}

// compact moves the unconsumed bytes out of the read buffer, which goes
// back to the pool: done before waiting, so that blocked followers hold no
// read buffers, and between reads when few bytes are left.
func (fl *follower) compact() {
	bp := fl.rbuf
	if bp == nil {
		return
	}
	if len(*bp) > smallPartial && fl.rewind() {
		return
	}
	fl.rbuf = nil
	if rest := *bp; len(rest) <= smallPartial {
		fl.partial = append(fl.partial[:0], rest...)
	} else {
		fl.partial = bytes.Clone(rest) // exactly sized: it may be held a while
	}
	if cap(*bp) <= 4*readSize {
		*bp = (*bp)[:0]
		bufPool.Put(bp)
	}
}

// rewind gives up the complete lines left unconsumed when a chunk filled
// up, instead of copying them aside while the follower waits (for the
// shipper or the budget): the file is read again from the first of them
// (bufStart, the start of a line), from the page cache as a rule. A copy
// would cost an allocation per full chunk, as much garbage as the lines
// themselves, and memory the budget does not count for every waiting
// follower. Only within readToEOF (canRewind), where nothing but reading
// on depends on those bytes: flushPending must see them.
func (fl *follower) rewind() bool {
	if !fl.canRewind || !fl.leftover || fl.skipping || fl.long != nil {
		return false
	}
	if _, err := fl.f.Seek(fl.bufStart, io.SeekStart); err != nil {
		return false // copied aside instead
	}
	fl.readPos = fl.bufStart
	fl.leftover = false
	fl.rewound.Add(1)
	fl.dropUnconsumed()
	return true
}

// dropUnconsumed forgets the unconsumed bytes.
func (fl *follower) dropUnconsumed() {
	if bp := fl.rbuf; bp != nil {
		fl.rbuf = nil
		if cap(*bp) <= 4*readSize {
			*bp = (*bp)[:0]
			bufPool.Put(bp)
		}
	}
	fl.partial = fl.partial[:0]
	if cap(fl.partial) > smallPartial {
		fl.partial = nil
	}
}

// ensureRoom makes sure there is a chunk with room for one more event,
// handing on a full one.
func (fl *follower) ensureRoom(ctx context.Context) error {
	if fl.chunk != nil && fl.chunk.full() {
		if err := fl.send(ctx, false); err != nil {
			return err
		}
	}
	return fl.ensureChunk(ctx)
}

func (fl *follower) ensureChunk(ctx context.Context) error {
	if fl.chunk != nil {
		return nil
	}
	fl.switchInput()
	c := fl.m.tryNewChunk(fl.file)
	if c == nil {
		fl.compact() // about to wait: hold no read buffer meanwhile
		var err error
		if c, err = fl.m.newChunk(ctx, fl.file); err != nil {
			return err
		}
	}
	fl.chunk = c
	return nil
}

// process parses the complete lines in buf, until the chunk is full, and
// returns how many bytes it consumed. An over-long line is cut at
// max_line_bytes, sent flagged, and the rest of it skipped up to its
// newline.
func (fl *follower) process(buf []byte) int {
	pos := 0
	base := fl.bufStart
	fl.now = time.Now().UnixNano()
	for pos < len(buf) && !fl.chunk.full() {
		i := bytes.IndexByte(buf[pos:], '\n')
		if fl.skipping {
			if i < 0 {
				fl.keepTail(buf[pos:])
				pos = len(buf)
				break
			}
			if fl.long != nil {
				fl.keepTail(buf[pos : pos+i])
				fl.lineEnd = base + int64(pos+i+1)
				fl.emitLong(fl.long, fl.longTail, fl.skipOff, 0)
				fl.long, fl.longTail = nil, nil
			}
			pos += i + 1
			fl.skipping = false
			continue
		}
		if i < 0 {
			if len(buf)-pos > fl.in.MaxLineBytes+dockerHeadSlack {
				fl.skipping = true
				fl.skipOff = base + int64(pos)
				fl.lineEnd = base + int64(len(buf))
				if fl.format == parse.FormatDocker {
					// Sent once its end (stream, time) is read.
					fl.long = bytes.Clone(buf[pos : pos+fl.in.MaxLineBytes+dockerHeadSlack])
					fl.keepTail(buf[pos:])
				} else {
					line, flags := fl.cut(buf[pos:])
					fl.emit(line, fl.skipOff, flags)
				}
				pos = len(buf)
			}
			break
		}
		lineOff := base + int64(pos)
		fl.lineEnd = lineOff + int64(i+1)
		if raw := buf[pos : pos+i]; len(raw) > fl.in.MaxLineBytes && fl.format == parse.FormatDocker {
			fl.emitLong(raw[:min(len(raw), fl.in.MaxLineBytes+dockerHeadSlack)], raw[max(0, len(raw)-parse.DockerTailBytes):], lineOff, 0)
		} else {
			line, flags := fl.cut(raw)
			fl.emit(line, lineOff, flags)
		}
		pos += i + 1
	}
	fl.bufStart = base + int64(pos)
	return pos
}

// dockerHeadSlack is how many bytes beyond max_line_bytes of an over-long
// Docker line are kept to decode its message from: the {"log":" before it
// and some escapes.
const dockerHeadSlack = 64

// keepTail keeps the last parse.DockerTailBytes bytes of an over-long
// Docker line being skipped, b being its next bytes.
func (fl *follower) keepTail(b []byte) {
	if fl.long == nil {
		return
	}
	if len(b) >= parse.DockerTailBytes {
		fl.longTail = append(fl.longTail[:0], b[len(b)-parse.DockerTailBytes:]...)
		return
	}
	fl.longTail = append(fl.longTail, b...)
	if over := len(fl.longTail) - parse.DockerTailBytes; over > 0 {
		fl.longTail = fl.longTail[:copy(fl.longTail, fl.longTail[over:])]
	}
}

// cut shortens a line longer than max_line_bytes, at a character boundary
// if one is near, and says so in the flags.
func (fl *follower) cut(line []byte) ([]byte, uint32) {
	if len(line) <= fl.in.MaxLineBytes {
		return line, 0
	}
	return cutRunes(line, fl.in.MaxLineBytes), uint32(ferryv1.Flag_FLAG_TRUNCATED)
}

// cutRunes returns b cut to at most n bytes, backing up (at most three
// bytes) so as not to split a UTF-8 sequence.
func cutRunes(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return b[:i]
		}
	}
	return b[:n]
}

// emit parses one line and adds its event to the chunk, or to a join.
// The chunk must exist.
func (fl *follower) emit(line []byte, off int64, flags uint32) {
	if fl.format == parse.FormatAuto {
		fl.format = parse.Detect(line)
	}
	if fl.format == parse.FormatPlain && len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	c := fl.chunk
	start := len(c.Arena)
	arena, h, replaced, err := parse.Append(c.Arena, fl.format, line)
	fl.add(line, arena, start, h, replaced, err, off, flags)
}

// emitLong adds the event of a line longer than max_line_bytes, of which
// head holds the start and tail the last bytes (up to its newline): a
// Docker line keeps its stream and time (only the end of its message is
// cut); any other, or a Docker line that does not parse so, is cut raw.
// The chunk must exist.
func (fl *follower) emitLong(head, tail []byte, off int64, flags uint32) {
	flags |= uint32(ferryv1.Flag_FLAG_TRUNCATED)
	if fl.format == parse.FormatDocker {
		c := fl.chunk
		start := len(c.Arena)
		if arena, h, replaced, err := parse.AppendDockerCut(c.Arena, head, tail, fl.in.MaxLineBytes); err == nil {
			fl.add(tail, arena, start, h, replaced, nil, off, flags)
			return
		}
	}
	fl.emit(cutRunes(head, fl.in.MaxLineBytes), off, flags)
}

// add adds the event parse made of line, appended to the chunk's arena at
// start, or adds it to a join.
func (fl *follower) add(line, arena []byte, start int, h parse.Header, replaced bool, err error, off int64, flags uint32) {
	c := fl.chunk
	if err != nil {
		flags |= uint32(ferryv1.Flag_FLAG_UNPARSED)
		if !fl.warned {
			fl.warned = true
			fl.log.Warn("line not in the file's format, sent as plain text (warned once per file)", "path", fl.path, "offset", off, "err", err)
		}
	}
	if replaced {
		flags |= uint32(ferryv1.Flag_FLAG_INVALID_UTF8)
	}
	if !h.HasTime() {
		h.Time = fl.now
	}
	// A time out of range is the first fragment's only (as the time is):
	// it is not or-ed into a join's flags.
	var oor uint32
	var orig string
	if h.TimeOutOfRange() {
		ts, te := h.TimeText()
		oor, orig = uint32(ferryv1.Flag_FLAG_TIMESTAMP_OUT_OF_RANGE), string(line[ts:te])
	}
	s := int(h.Stream) % len(fl.joins)
	if j := &fl.joins[s]; j.flushed {
		// The continuation of a partial record sent on its own.
		j.flushed = false
		flags |= uint32(ferryv1.Flag_FLAG_PARTIAL)
	}
	if j := &fl.joins[s]; h.Partial() || j.active {
		msg := arena[start:]
		c.Arena = arena[:start]
		if !j.active {
			*j = join{active: true, off: off, time: h.Time, orig: orig, flags: oor, buf: j.buf[:0]}
		}
		j.frags++
		j.last = fl.now
		j.end = fl.lineEnd
		if room := fl.in.MaxLineBytes - len(j.buf); len(msg) > room {
			msg = cutRunes(msg, max(room, 0))
			flags |= uint32(ferryv1.Flag_FLAG_TRUNCATED)
		}
		j.buf = append(j.buf, msg...)
		j.flags |= flags
		if !h.Partial() {
			fl.emitJoined(j, h.Stream)
		}
		return
	}
	c.Arena = arena
	c.count()
	fl.put(Rec{Off: off, MsgStart: uint32(start), MsgEnd: uint32(len(arena)), Time: h.Time, Stream: h.Stream, Flags: flags | oor, OrigTime: orig}, fl.lineEnd)
}

// flushStaleJoins sends, each as its own event flagged partial, the open
// joins that got no fragment for partial_flush_after: a partial record
// whose continuation never came would otherwise hold the file's committed
// offset back for ever (and be sent again after every restart).
func (fl *follower) flushStaleJoins(ctx context.Context) error {
	now := time.Now().UnixNano()
	fl.now = now
	for s := range fl.joins {
		j := &fl.joins[s]
		if !j.active || now-j.last < int64(fl.in.PartialFlushAfter) {
			continue
		}
		if err := fl.ensureRoom(ctx); err != nil {
			return err
		}
		j.flags |= uint32(ferryv1.Flag_FLAG_PARTIAL)
		fl.emitJoined(j, ferryv1.StreamName(s))
		j.flushed = true
	}
	return nil
}

// emitJoined adds the event of a finished join. The chunk must exist.
func (fl *follower) emitJoined(j *join, stream ferryv1.StreamName) {
	c := fl.chunk
	start := len(c.Arena)
	c.Arena = append(c.Arena, j.buf...)
	c.count()
	flags := j.flags
	if j.frags > 1 {
		flags |= uint32(ferryv1.Flag_FLAG_JOINED)
	}
	j.active = false
	fl.put(Rec{Off: j.off, MsgStart: uint32(start), MsgEnd: uint32(len(c.Arena)), Time: j.time, Stream: stream, Flags: flags, OrigTime: j.orig}, j.end)
	if cap(j.buf) > 1<<20 {
		j.buf = nil
	}
}

// safeEnd is the offset up to which every line has been turned into an
// event: the start of unconsumed bytes, of an open join, of an open
// multiline group, or of an over-long line still being skipped, whichever
// is first. A crash re-reads an open group from its first line.
func (fl *follower) safeEnd() int64 {
	end := fl.bufStart
	if fl.skipping && fl.skipOff < end {
		end = fl.skipOff
	}
	for i := range fl.joins {
		if fl.joins[i].active && fl.joins[i].off < end {
			end = fl.joins[i].off
		}
	}
	for _, j := range fl.mls {
		if j == nil {
			continue
		}
		if off, open := j.Open(); open && off < end {
			end = off
		}
	}
	return end
}

// send hands the current chunk on, blocking while the shipper is full.
// final marks the file's last chunk (sent even when empty).
func (fl *follower) send(ctx context.Context, final bool) error {
	if fl.chunk == nil && !final {
		return nil
	}
	if err := fl.ensureChunk(ctx); err != nil {
		return err
	}
	c := fl.chunk
	fl.chunk = nil
	c.End = fl.safeEnd()
	if len(c.Recs) == 0 && !final && c.End == fl.sentEnd {
		c.Release() // nothing new: do not hold a permit while idle
		return nil
	}
	if c.End > fl.sentEnd {
		// The check Commit saves with this offset, taken now that the
		// bytes were just read.
		if mk, ok := checkAt(fl.f, c.End); ok {
			c.File.checks.push(mk)
			fl.addMark(mk)
		}
	}
	prev := fl.sentEnd
	fl.sentEnd = c.End
	c.Final = final
	select {
	case fl.m.out <- c:
		return nil
	default:
	}
	fl.compact() // about to wait: hold no read buffer meanwhile
	select {
	case fl.m.out <- c:
		return nil
	case <-ctx.Done():
		c.Release()
		fl.sentEnd = prev // not handed on (SetInputs waits for the acks up to sentEnd)
		return ctx.Err()
	}
}
