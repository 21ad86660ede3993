package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/ferrylogs/ferry/pipeline/atomicfile"
)

// On-disk format.
//
// A segment file holds records back to back, with no file header:
//
//	[magic uint32][length uint32][crc32c of payload uint32][payload]
//
// all little-endian. A segment is named after its number, in hex, so that
// names sort in Append order: 0000000000000001.seg, 0000000000000002.seg…
//
// The commit file holds the committed position in two slots of 32 bytes,
// each with its own checksum:
//
//	[commitMagic uint32][segment uint64][offset int64][seq uint64][crc32c of the 28 bytes before]
//
// Commits write the slots in turn, in place; the valid slot with the
// furthest position is the committed one. A write torn by a crash leaves
// the other slot, one commit older. (Before 64-byte commit files, the file
// was one slot replaced by rename: Open reads such a file as the first
// slot.)
const (
	// recordMagic starts every record. Its bytes (ff a1 57 fe) never occur in
	// UTF-8 text, so log lines cannot fake a record header when recovery
	// searches for the next record after a damaged one.
	recordMagic = 0xfe57a1ff
	headerSize  = 12

	commitMagic = 0xfe57c0ff
	commitSize  = 32

	segmentExt = ".seg"
	commitName = "commit"
	commitTemp = "commit.tmp"
	lockName   = "lock"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

func segmentName(id uint64) string { return fmt.Sprintf("%016x%s", id, segmentExt) }

// parseSegmentName returns the number of a segment file name, and false for
// any other name.
func parseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(hex) != 16 || strings.ToLower(hex) != hex {
		return 0, false
	}
	id, err := strconv.ParseUint(hex, 16, 64)
	return id, err == nil
}

// putHeader writes the header of a record holding payload into h.
func putHeader(h []byte, payload []byte) {
	binary.LittleEndian.PutUint32(h[0:], recordMagic)
	binary.LittleEndian.PutUint32(h[4:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[8:], checksum(payload))
}

// segFile is what the WAL does with a segment file: an *os.File, or in
// tests one that fails on command. It must be safe for concurrent ReadAt,
// WriteAt and Sync.
type segFile interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
	Name() string
}

// openFile opens a segment file. It is the tests' seam for I/O errors.
var openFile = func(name string, flag int, perm os.FileMode) (segFile, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// openCommitFile opens the commit file: the tests' seam for its errors,
// apart from openFile's, whose faults are the segment files'.
var openCommitFile = openFile

// segment is one segment file. Its fields are guarded by WAL.mu, except f,
// which is safe for concurrent ReadAt, WriteAt and Sync.
type segment struct {
	id   uint64
	path string
	f    segFile
	// size is the end of the last whole record written: readers never look
	// past it, so they never see a record being written.
	size int64
	// damaged holds the start offsets of the damaged regions that Open
	// already reported, so that the reader skips them without a second
	// warning.
	damaged map[int64]bool
	// syncFailed: an fsync of f failed, so f is never fsynced again.
	syncFailed bool
}

// found is the outcome of a search for the next valid record.
type found struct {
	start, end int64  // the record is [start, end); bytes before start were skipped
	payload    []byte // nil when ok is false
	ok         bool   // false: no valid record in [off, limit)
	reason     string // why the bytes at off were not a record, when start > off or !ok
}

// nextRecord returns the first valid record at or after off, among the bytes
// of r before limit. A record is valid when it starts with the magic, fits
// before limit and its payload matches its checksum; anything else is
// skipped byte by byte (searching for the next magic), so one damaged record
// costs only itself. buf is reused for the payload when it is large enough;
// pass nil to get a fresh slice. Only I/O failures are errors.
func nextRecord(r io.ReaderAt, off, limit int64, buf []byte) (found, error) {
	reason := ""
	for pos := off; pos < limit; {
		p, end, why, err := readAt(r, pos, limit, buf)
		if err != nil {
			return found{}, err
		}
		if why == "" {
			return found{start: pos, end: end, payload: p, ok: true, reason: reason}, nil
		}
		if reason == "" {
			reason = why
		}
		next, err := findMagic(r, pos+1, limit)
		if err != nil {
			return found{}, err
		}
		pos = next
	}
	return found{start: limit, reason: reason}, nil
}

// readAt reads the record at off. It returns why the bytes there are not a
// valid record, or "" and the payload and the offset just past the record.
func readAt(r io.ReaderAt, off, limit int64, buf []byte) (payload []byte, end int64, why string, err error) {
	if limit-off < headerSize {
		return nil, 0, "record header cut short", nil
	}
	var h [headerSize]byte
	if err := readFull(r, h[:], off); err != nil {
		return nil, 0, "", err
	}
	if binary.LittleEndian.Uint32(h[0:]) != recordMagic {
		return nil, 0, "bad magic", nil
	}
	n := int64(binary.LittleEndian.Uint32(h[4:]))
	if n > limit-off-headerSize {
		return nil, 0, fmt.Sprintf("record of %d bytes runs past the end of the data", n), nil
	}
	if int64(cap(buf)) >= n {
		payload = buf[:n]
	} else {
		payload = make([]byte, n)
	}
	if err := readFull(r, payload, off+headerSize); err != nil {
		return nil, 0, "", err
	}
	if checksum(payload) != binary.LittleEndian.Uint32(h[8:]) {
		return nil, 0, "checksum mismatch", nil
	}
	return payload, off + headerSize + n, "", nil
}

func readFull(r io.ReaderAt, p []byte, off int64) error {
	if _, err := r.ReadAt(p, off); err != nil {
		if f, ok := r.(interface{ Name() string }); ok {
			err = pathError("read", f.Name(), err)
		}
		return fmt.Errorf("read %d bytes at offset %d: %w", len(p), off, err)
	}
	return nil
}

// pathError returns err, the failure of op on the file at path, naming op
// and path once: an *fs.PathError of that path already names them ("write
// /b/1.seg: no space left on device"; its op is replaced by op, so that
// "sync" reads "fsync"), anything else is wrapped with them.
func pathError(op, path string, err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) && pe.Path == path {
		if pe.Op == op {
			return err
		}
		return &fs.PathError{Op: op, Path: path, Err: pe.Err}
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// findMagic returns the offset of the next record magic at or after off, or
// limit if there is none.
func findMagic(r io.ReaderAt, off, limit int64) (int64, error) {
	var magic [4]byte
	binary.LittleEndian.PutUint32(magic[:], recordMagic)
	buf := make([]byte, 16<<10)
	for off < limit {
		n := int64(len(buf))
		if limit-off < n {
			n = limit - off
		}
		if n < int64(len(magic)) {
			break
		}
		if err := readFull(r, buf[:n], off); err != nil {
			return 0, err
		}
		if i := bytes.Index(buf[:n], magic[:]); i >= 0 {
			return off + int64(i), nil
		}
		// The magic may straddle two reads.
		off += n - int64(len(magic)) + 1
	}
	return limit, nil
}

// committed is the position up to which records are delivered.
type committed struct {
	segment uint64
	offset  int64
	seq     uint64
}

// putCommit encodes c into b[:commitSize].
func putCommit(b []byte, c committed) {
	binary.LittleEndian.PutUint32(b[0:], commitMagic)
	binary.LittleEndian.PutUint64(b[4:], c.segment)
	binary.LittleEndian.PutUint64(b[12:], uint64(c.offset))
	binary.LittleEndian.PutUint64(b[20:], c.seq)
	binary.LittleEndian.PutUint32(b[28:], checksum(b[:28]))
}

var errBadCommit = errors.New("not a valid commit record")

func decodeCommit(b []byte) (committed, error) {
	if len(b) != commitSize || binary.LittleEndian.Uint32(b[0:]) != commitMagic ||
		binary.LittleEndian.Uint32(b[28:]) != checksum(b[:28]) {
		return committed{}, errBadCommit
	}
	c := committed{
		segment: binary.LittleEndian.Uint64(b[4:]),
		offset:  int64(binary.LittleEndian.Uint64(b[12:])),
		seq:     binary.LittleEndian.Uint64(b[20:]),
	}
	if c.offset < 0 {
		return committed{}, errBadCommit
	}
	return c, nil
}

// readCommitFile returns the committed position of the commit file b (its
// slot of the furthest position) and the slot it is in; ok is false when
// no slot is valid.
func readCommitFile(b []byte) (c committed, slot int, ok bool) {
	for i := 0; i < 2 && (i+1)*commitSize <= len(b); i++ {
		s, err := decodeCommit(b[i*commitSize : (i+1)*commitSize])
		if err != nil {
			continue
		}
		if !ok || before(c.segment, c.offset, s.segment, s.offset) || c.segment == s.segment && c.offset == s.offset && s.seq > c.seq {
			c, slot, ok = s, i, true
		}
	}
	return c, slot, ok
}

// syncDir makes the creation, removal or renaming of files in dir durable.
func syncDir(dir string) error { return atomicfile.SyncDir(dir) }
