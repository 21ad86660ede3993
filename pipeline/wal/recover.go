package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// recover rebuilds the WAL's state from its directory: the committed
// position, the segments after it (checked record by record, repaired), and
// a fresh active segment. Called by Open only.
func (w *WAL) recover() error {
	dir := w.opts.Dir
	// A crash during Commit may leave the temporary commit file behind
	// (atomicfile names it .commit.tmp*; older versions commit.tmp).
	stale, _ := filepath.Glob(filepath.Join(dir, "."+commitName+".tmp*"))
	for _, p := range append(stale, filepath.Join(dir, commitTemp)) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale commit file: %w", err)
		}
	}
	com, slot, err := w.readCommit()
	if err != nil {
		return err
	}
	w.comSlot = slot ^ 1 // the next commit leaves the last one in place

	ents, err := os.ReadDir(dir)
	if err != nil {
		return err // "open DIR: …"
	}
	var ids []uint64
	for _, e := range ents {
		if id, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)

	var records uint64 // records after the committed position
	for _, id := range ids {
		path := filepath.Join(dir, segmentName(id))
		if id < com.segment {
			// Fully committed; a crash came between Commit and the removal.
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("remove committed segment: %w", err)
			}
			continue
		}
		f, err := openFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open segment: %w", pathError("open", path, err))
		}
		seg := &segment{id: id, path: path, f: f}
		w.segs = append(w.segs, seg)
		n, err := w.check(seg, com)
		if err != nil {
			return err
		}
		records += n
	}

	// Append to a new segment numbered after the committed position, never
	// to an old one: when the machine crashed, the commit file may name an
	// offset past the data that reached the disk, and records written there
	// again would count as committed. An empty last segment will do.
	if n := len(w.segs); n == 0 || w.segs[n-1].size > 0 || w.segs[n-1].id <= com.segment {
		id := com.segment + 1
		if n > 0 {
			id = max(id, w.segs[n-1].id+1)
		}
		seg, err := createSegment(dir, id)
		if err != nil {
			return err
		}
		w.segs = append(w.segs, seg)
		if err := syncDir(dir); err != nil {
			return err
		}
	}

	w.com, w.comSaved = com, true
	w.rseg, w.roff, w.rseq = com.segment, com.offset, com.seq
	w.appendSeq = com.seq + records
	w.pending = w.pendingBytes()
	if records > 0 || w.corrupt > 0 {
		w.log.Info("wal: recovered", "dir", dir, "records", records, "bytes", w.pending,
			"segments", len(w.segs), "damaged_regions", w.corrupt, "damaged_bytes", w.corruptBytes)
	}
	return nil
}

// readCommit returns the committed position and the slot of the commit
// file holding it; without a valid commit file, every segment is replayed
// (slot 1: the next commit goes to slot 0).
func (w *WAL) readCommit() (committed, int, error) {
	b, err := os.ReadFile(w.comPath)
	if errors.Is(err, fs.ErrNotExist) {
		return committed{}, 1, nil
	}
	if err != nil {
		return committed{}, 0, err // "open DIR/commit: …"
	}
	c, slot, ok := readCommitFile(b)
	if !ok && len(b) > 0 && !allZero(b) {
		// A commit torn by a crash leaves the other slot valid, so this
		// takes a bad disk or a hand edit. Replaying everything is safe:
		// at least once.
		w.log.Warn("wal: damaged commit file; every record in the WAL will be delivered again",
			"file", w.comPath, "bytes", len(b), "err", errBadCommit)
		return committed{}, 1, nil
	}
	if !ok {
		return committed{}, 1, nil // created, never committed to
	}
	return c, slot, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// check validates every record of seg, skips damaged regions inside it and
// truncates a damaged tail, reporting each once. It sets seg.size and
// returns the number of valid records after the committed position.
func (w *WAL) check(seg *segment, com committed) (records uint64, err error) {
	fi, err := seg.f.Stat()
	if err != nil {
		return 0, pathError("stat", seg.path, err)
	}
	size := fi.Size()
	var buf []byte
	for off := int64(0); off < size; {
		fd, err := nextRecord(seg.f, off, size, buf)
		if err != nil {
			return 0, err
		}
		if !fd.ok {
			// Nothing valid up to the end: a record cut short by a crash,
			// or damage at the end.
			w.report(seg, off, size-off, fd.reason, true)
			if err := seg.f.Truncate(off); err != nil {
				return 0, fmt.Errorf("cut damaged tail at %d bytes: %w", off, pathError("truncate", seg.path, err))
			}
			if err := seg.f.Sync(); err != nil {
				return 0, pathError("fsync", seg.path, err)
			}
			size = off
			break
		}
		if fd.start > off {
			w.report(seg, off, fd.start-off, fd.reason, false)
			if seg.damaged == nil {
				seg.damaged = map[int64]bool{}
			}
			seg.damaged[off] = true
		}
		if seg.id > com.segment || fd.start >= com.offset {
			records++
		}
		buf = fd.payload[:0]
		off = fd.end
	}
	seg.size = size
	return records, nil
}
