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
	"time"

	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	"github.com/ferrylogs/ferry/pipeline/parse"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// join collects the fragments of one split line of one stream.
type join struct {
	active bool
	off    int64
	time   int64
	flags  uint32
	buf    []byte
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

	format   parse.Format
	bufStart int64  // file offset of the first unconsumed byte
	readPos  int64  // file offset of the next byte to read
	partial  []byte // unconsumed bytes kept while the read buffer is pooled
	skipping bool   // dropping the rest of an over-long line
	skipOff  int64  // where the over-long line started
	joins    [3]join
	chunk    *Chunk
	now      int64
	warned   bool
	sentEnd  int64 // End of the last chunk handed on
	wake     chan struct{}
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
	}()
	if err := fl.establish(ctx); err != nil {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, errGone) {
			fl.log.Warn("cannot follow file", "path", fl.path, "err", err)
		}
		return
	}
	grace := false
	timer := time.NewTimer(fl.in.PollInterval)
	defer timer.Stop()
	for {
		if err := fl.readToEOF(ctx); err != nil {
			if !errors.Is(err, context.Canceled) {
				fl.log.Warn("read failed", "path", fl.path, "err", err)
			}
			return
		}
		if err := fl.send(ctx, false); err != nil {
			return
		}
		truncated, err := fl.truncated()
		if err != nil {
			fl.log.Warn("stat failed", "path", fl.path, "err", err)
		}
		if truncated {
			if err := fl.handleTruncation(ctx); err != nil {
				if !errors.Is(err, context.Canceled) {
					fl.log.Warn("after truncation", "path", fl.path, "err", err)
				}
				return
			}
			continue
		}
		if fl.drainOnly || fl.gone() {
			// One more look after a poll interval: a writer may still
			// append to a file just renamed away.
			if grace {
				fl.finish(ctx)
				return
			}
			grace = true
		}
		timer.Reset(fl.in.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-fl.wake:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}

var errGone = errors.New("file gone before it had a first line")

// establish waits for the file's first line, then finds its identity and
// where to start: a saved position with the same device, inode and
// fingerprint, else the start of the file (or its end on a first start
// with start_at: end).
func (fl *follower) establish(ctx context.Context) error {
	f, err := os.Open(fl.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errGone
		}
		return fmt.Errorf("open %s: %w", fl.path, err)
	}
	fl.f = f
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", fl.path, err)
	}
	di, _ := statDevIno(fi)
	fl.di = di
	for {
		fp, n, err := fingerprint(f)
		if err == nil {
			return fl.start(fp, n)
		}
		if !errors.Is(err, errNoFingerprint) {
			return err
		}
		if fl.drainOnly || fl.gone() {
			return errGone
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-fl.wake:
		case <-time.After(fl.in.PollInterval):
		}
	}
}

func (fl *follower) start(fp string, fpLen int) error {
	store := fl.m.store
	var resume *checkpoint.Entry
	if fl.resume != nil {
		resume = fl.resume
	} else {
		for _, e := range store.Find(fl.di.dev, fl.di.ino) {
			if h, ok := fingerprintLen(fl.f, e.FingerprintLen); ok && h == e.Fingerprint {
				e := e
				resume = &e
				continue
			}
			// Same inode, other content: the inode was reused, or the
			// file was truncated while the agent was down (then a drain
			// of its copy owns the old position).
			if !fl.m.isRecovering(e.ID) {
				fl.log.Info("inode reused, starting over", "path", fl.path, "old_id", e.ID)
				store.Remove(e.ID)
			}
		}
	}
	var off int64
	id := identity(fl.di, fp)
	if resume != nil {
		id, off = resume.ID, resume.Offset
		fp, fpLen = resume.Fingerprint, resume.FingerprintLen
		if fi, err := fl.f.Stat(); err == nil && fi.Size() < off {
			fl.log.Warn("file shorter than its saved offset, reading from the start", "path", fl.path, "offset", off, "size", fi.Size())
			off = 0
		}
	} else if fl.in.StartAtEnd && fl.m.firstStart {
		if fi, err := fl.f.Stat(); err == nil {
			off = fi.Size()
		}
	}
	if _, err := fl.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s to %d: %w", fl.path, off, err)
	}
	fl.bufStart, fl.readPos, fl.sentEnd = off, off, off
	fl.partial = fl.partial[:0]
	fl.skipping = false
	fl.joins = [3]join{}
	link := fl.link
	if link == "" && resume != nil {
		link = resume.Link
	}
	if link == "" {
		link = fl.path
	}
	fl.file = fl.m.newFile(fl.in, id, fl.path, link)
	store.Put(checkpoint.Entry{
		ID: id, Dev: fl.di.dev, Ino: fl.di.ino, Fingerprint: fp, FingerprintLen: fpLen,
		Path: fl.path, Link: link, Input: fl.in.Name, Offset: off,
	})
	fl.format = fl.in.Format
	fl.log.Debug("following", "path", fl.path, "id", id, "offset", off)
	return nil
}

// gone reports whether the file is no longer reachable by its glob match:
// deleted, or its path now names another file (rename rotation).
func (fl *follower) gone() bool {
	if fi, err := fl.f.Stat(); err == nil && nlink(fi) == 0 {
		return true
	}
	if fl.link == "" {
		return true
	}
	fi, err := os.Stat(fl.link)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	di, _ := statDevIno(fi)
	return di != fl.di
}

// truncated reports whether the file was truncated in place (copytruncate):
// it is shorter than what was read, or its first bytes changed.
func (fl *follower) truncated() (bool, error) {
	fi, err := fl.f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", fl.path, err)
	}
	if fi.Size() < fl.readPos {
		return true, nil
	}
	if fi.Size() == fl.readPos || fl.file == nil {
		return false, nil
	}
	e, ok := fl.m.store.Get(fl.file.ID)
	if !ok {
		return false, nil
	}
	h, ok := fingerprintLen(fl.f, e.FingerprintLen)
	return !ok || h != e.Fingerprint, nil
}

// handleTruncation deals with copytruncate: it first looks for the copy
// (a file beside this one that starts with the same bytes) and reads from
// it whatever was not read yet, under the old identity, so no line is lost;
// then it starts the truncated file over under a new identity.
func (fl *follower) handleTruncation(ctx context.Context) error {
	fl.log.Info("file truncated, starting over", "path", fl.path, "read_offset", fl.readPos)
	old := fl.file
	e, _ := fl.m.store.Get(old.ID)
	safe := fl.safeEnd()
	if cp := fl.m.findByFingerprint(filepath.Dir(fl.path), e, fl.di); cp != "" {
		if f, err := os.Open(cp); err == nil {
			fl.log.Info("reading the rest of the truncated file from its copy", "copy", cp, "offset", safe)
			orig, origPath := fl.f, fl.path
			fl.f, fl.path = f, cp
			if _, err := f.Seek(safe, io.SeekStart); err == nil {
				fl.bufStart, fl.readPos = safe, safe
				fl.partial, fl.skipping, fl.joins = fl.partial[:0], false, [3]join{}
				err = fl.readToEOF(ctx)
				if err != nil {
					f.Close()
					fl.f, fl.path = orig, origPath
					return err
				}
			}
			f.Close()
			fl.f, fl.path = orig, origPath
		}
	}
	if err := fl.flushPending(ctx); err != nil {
		return err
	}
	if err := fl.send(ctx, true); err != nil {
		return err
	}
	for {
		fp, n, err := fingerprint(fl.f)
		if err == nil {
			// A truncated file is new content: never resume it.
			fl.resume = nil
			return fl.startFresh(fp, n)
		}
		if !errors.Is(err, errNoFingerprint) {
			return err
		}
		if fl.gone() {
			return errGone
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-fl.wake:
		case <-time.After(fl.in.PollInterval):
		}
	}
}

// startFresh starts the open file at offset 0 under a new identity.
func (fl *follower) startFresh(fp string, fpLen int) error {
	id := identity(fl.di, fp)
	if _, ok := fl.m.store.Get(id); ok {
		// Same first line as before the truncation: make the identity
		// distinct so ids of new lines cannot collide with old ones.
		id = fmt.Sprintf("%s.%d", id, time.Now().UnixNano())
	}
	if _, err := fl.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s: %w", fl.path, err)
	}
	fl.bufStart, fl.readPos, fl.sentEnd = 0, 0, 0
	fl.partial, fl.skipping, fl.joins = fl.partial[:0], false, [3]join{}
	fl.file = fl.m.newFile(fl.in, id, fl.path, fl.file.Link)
	fl.m.store.Put(checkpoint.Entry{
		ID: id, Dev: fl.di.dev, Ino: fl.di.ino, Fingerprint: fp, FingerprintLen: fpLen,
		Path: fl.path, Link: fl.file.Link, Input: fl.in.Name,
	})
	return nil
}

// finish drains what is left of a file that is gone: an unterminated last
// line and unfinished joins become events, then a final chunk lets the
// position be forgotten once acknowledged.
func (fl *follower) finish(ctx context.Context) {
	if err := fl.flushPending(ctx); err != nil {
		return
	}
	if err := fl.send(ctx, true); err != nil {
		return
	}
	fl.log.Debug("finished file", "path", fl.path, "offset", fl.readPos)
}

// flushPending emits the unterminated last line and open joins.
func (fl *follower) flushPending(ctx context.Context) error {
	if err := fl.ensureChunk(ctx); err != nil {
		return err
	}
	fl.now = time.Now().UnixNano()
	if len(fl.partial) > 0 && !fl.skipping {
		line := fl.partial
		if len(line) > fl.in.MaxLineBytes {
			line = line[:fl.in.MaxLineBytes]
		}
		fl.emit(line, fl.bufStart, 0)
	}
	fl.partial = fl.partial[:0]
	fl.skipping = false
	fl.bufStart = fl.readPos
	for s := range fl.joins {
		j := &fl.joins[s]
		if !j.active {
			continue
		}
		fl.emitJoined(j, ferryv1.StreamName(s))
	}
	return nil
}

// readToEOF reads and parses everything up to the current end of file. It
// holds at most one chunk and one read buffer at a time, and holds no read
// buffer while it waits to hand a full chunk on.
func (fl *follower) readToEOF(ctx context.Context) error {
	for {
		if err := fl.ensureChunk(ctx); err != nil {
			return err
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

// readSome reads until the end of file or until the chunk is full.
func (fl *follower) readSome() (full bool, err error) {
	bp := bufPool.Get().(*[]byte)
	buf := append((*bp)[:0], fl.partial...)
	defer func() {
		fl.partial = append(fl.partial[:0], buf...)
		if cap(fl.partial) > 64<<10 && len(fl.partial) < 4<<10 {
			fl.partial = append([]byte(nil), fl.partial...)
		}
		if cap(buf) <= 4*readSize {
			*bp = buf[:0]
			bufPool.Put(bp)
		}
	}()
	for {
		if cap(buf)-len(buf) < readSize/2 {
			nb := make([]byte, len(buf), 2*cap(buf)+readSize)
			copy(nb, buf)
			buf = nb
		}
		n, rerr := fl.f.Read(buf[len(buf):cap(buf)])
		if n > 0 {
			fl.readPos += int64(n)
			buf = buf[:len(buf)+n]
			used := fl.process(buf)
			rest := copy(buf, buf[used:])
			buf = buf[:rest]
		}
		if errors.Is(rerr, io.EOF) || n == 0 {
			return false, nil
		}
		if rerr != nil {
			return false, fmt.Errorf("read %s: %w", fl.path, rerr)
		}
		if fl.chunk.full() {
			return true, nil
		}
	}
}

func (fl *follower) ensureChunk(ctx context.Context) error {
	if fl.chunk != nil {
		return nil
	}
	c, err := fl.m.newChunk(ctx, fl.file)
	if err != nil {
		return err
	}
	fl.chunk = c
	return nil
}

// process parses the complete lines in buf and returns how many bytes it
// consumed. An over-long line is cut at max_line_bytes, sent flagged, and the
// rest of it skipped up to its newline.
func (fl *follower) process(buf []byte) int {
	pos := 0
	base := fl.bufStart
	defer func() { fl.bufStart = base + int64(pos) }()
	max := fl.in.MaxLineBytes
	fl.now = time.Now().UnixNano()
	for pos < len(buf) {
		i := bytes.IndexByte(buf[pos:], '\n')
		if fl.skipping {
			if i < 0 {
				pos = len(buf)
				return pos
			}
			pos += i + 1
			fl.bufStart = base + int64(pos)
			fl.skipping = false
			continue
		}
		if i < 0 {
			if len(buf)-pos > max {
				fl.skipping = true
				fl.skipOff = base + int64(pos)
				fl.emit(buf[pos:pos+max], fl.skipOff, uint32(ferryv1.Flag_FLAG_TRUNCATED))
				pos = len(buf)
				return pos
			}
			break
		}
		line := buf[pos : pos+i]
		var flags uint32
		if len(line) > max {
			line = line[:max]
			flags = uint32(ferryv1.Flag_FLAG_TRUNCATED)
		}
		lineOff := base + int64(pos)
		pos += i + 1
		fl.bufStart = base + int64(pos)
		fl.emit(line, lineOff, flags)
	}
	return pos
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
	if h.Time == 0 {
		h.Time = fl.now
	}
	s := int(h.Stream) % len(fl.joins)
	if j := &fl.joins[s]; h.Partial || j.active {
		msg := arena[start:]
		c.Arena = arena[:start]
		if !j.active {
			*j = join{active: true, off: off, time: h.Time, buf: j.buf[:0]}
		}
		if room := fl.in.MaxLineBytes - len(j.buf); len(msg) > room {
			msg = msg[:max(room, 0)]
			flags |= uint32(ferryv1.Flag_FLAG_TRUNCATED)
		}
		j.buf = append(j.buf, msg...)
		j.flags |= flags
		if !h.Partial {
			fl.emitJoined(j, h.Stream)
		}
		return
	}
	c.Arena = arena
	c.Recs = append(c.Recs, Rec{Off: off, MsgStart: uint32(start), MsgEnd: uint32(len(arena)), Time: h.Time, Stream: h.Stream, Flags: flags})
}

// emitJoined adds the event of a finished join. The chunk must exist.
func (fl *follower) emitJoined(j *join, stream ferryv1.StreamName) {
	c := fl.chunk
	start := len(c.Arena)
	c.Arena = append(c.Arena, j.buf...)
	c.Recs = append(c.Recs, Rec{Off: j.off, MsgStart: uint32(start), MsgEnd: uint32(len(c.Arena)), Time: j.time, Stream: stream, Flags: j.flags | uint32(ferryv1.Flag_FLAG_JOINED)})
	j.active = false
	if cap(j.buf) > 1<<20 {
		j.buf = nil
	}
}

// safeEnd is the offset up to which every line has been turned into an
// event: the start of unconsumed bytes, of an open join, or of an over-long
// line still being skipped, whichever is first.
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
	fl.sentEnd = c.End
	c.Final = final
	select {
	case fl.m.out <- c:
		return nil
	case <-ctx.Done():
		c.Release()
		return ctx.Err()
	}
}
