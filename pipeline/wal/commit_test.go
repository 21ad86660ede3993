package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// encodeCommit is c as one slot, a commit file as versions before 64-byte
// files wrote it.
func encodeCommit(c committed) []byte {
	b := make([]byte, commitSize)
	putCommit(b, c)
	return b
}

// commitsOf appends n records, reads them and returns them.
func commitsOf(t *testing.T, w *WAL, n int) []got {
	t.Helper()
	for i := range n {
		mustAppend(t, w, payload(i))
	}
	return mustRead(t, w, n)
}

// TestCommitFileInPlace: commits write the commit file in place, in its two
// slots in turn: no temporary file, 64 bytes, and a reopened WAL resumes
// after the last commit.
func TestCommitFileInPlace(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Sync: SyncAlways}
	w := openWAL(t, opts)
	recs := commitsOf(t, w, 10)
	for i := range 6 {
		if err := w.Commit(recs[i].pos); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, commitName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, slot, ok := readCommitFile(b)
	if len(b) != 2*commitSize || !ok || c.offset != recs[5].pos.Offset || c.seq != recs[5].pos.Seq {
		t.Fatalf("commit file of %d bytes: %+v (slot %d, %v), want the position of record 5 %v", len(b), c, slot, ok, recs[5].pos)
	}
	older, err := decodeCommit(b[(slot^1)*commitSize : (slot^1+1)*commitSize])
	if err != nil || older.seq != recs[4].pos.Seq {
		t.Fatalf("the other slot holds %+v (%v), want the commit before (record 4)", older, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if _, seg := parseSegmentName(e.Name()); !seg && e.Name() != commitName && e.Name() != lockName {
			t.Errorf("%s left in the directory", e.Name())
		}
	}
	w = openWAL(t, opts)
	defer w.Close()
	for i, r := range mustRead(t, w, 4) {
		if !bytes.Equal(r.rec, payload(6+i)) {
			t.Fatalf("after reopening, record %d = %.20q…, want record %d", i, r.rec, 6+i)
		}
	}
	expectNoRecord(t, w)
}

// TestCommitTornSlot: a crash that tears the commit being written (its slot
// no longer checks) leaves the commit before it, in the other slot: the
// reopened WAL delivers again what lies after that one, without a warning
// (a torn write is what a crash does), and its next commit goes to the
// torn slot, not over the one it resumed from.
func TestCommitTornSlot(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Sync: SyncNever}
	w := openWAL(t, opts)
	recs := commitsOf(t, w, 10)
	for _, i := range []int{3, 6} {
		if err := w.Commit(recs[i].pos); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	path := filepath.Join(dir, commitName)
	b, _ := os.ReadFile(path)
	_, slot, _ := readCommitFile(b)
	b[slot*commitSize+20] ^= 0x10 // the last commit, torn
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	log, lb := newLogger()
	opts.Logger = log
	w = openWAL(t, opts)
	defer w.Close()
	if ws := lb.Lines("level=WARN"); len(ws) != 0 {
		t.Errorf("warnings for a torn commit: %q", ws)
	}
	again := mustRead(t, w, 6)
	for i, r := range again {
		if !bytes.Equal(r.rec, payload(4+i)) {
			t.Fatalf("record %d = %.20q…, want record %d", i, r.rec, 4+i)
		}
	}
	if err := w.Commit(again[0].pos); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if c, s, ok := readCommitFile(b); !ok || s != slot || c.seq != again[0].pos.Seq {
		t.Fatalf("the commit after reopening went to slot %d (%+v), want the torn slot %d", s, c, slot)
	}
	if c, err := decodeCommit(b[(slot^1)*commitSize : (slot^1+1)*commitSize]); err != nil || c.offset != recs[3].pos.Offset {
		t.Fatalf("the slot resumed from holds %+v (%v), want record 3's commit", c, err)
	}
}

// TestCommitFileOfOneSlot: a commit file of 32 bytes, the format before
// 64-byte files, is read as the first slot; the next commit goes to the
// second, and the file keeps both.
func TestCommitFileOfOneSlot(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Sync: SyncAlways}
	w := openWAL(t, opts)
	recs := commitsOf(t, w, 10)
	if err := w.Commit(recs[4].pos); err != nil {
		t.Fatal(err)
	}
	w.Close()
	path := filepath.Join(dir, commitName)
	b, _ := os.ReadFile(path)
	c, _, _ := readCommitFile(b)
	if err := os.WriteFile(path, encodeCommit(c), 0o644); err != nil { // as an older version wrote it
		t.Fatal(err)
	}
	w = openWAL(t, opts)
	again := mustRead(t, w, 5)
	if !bytes.Equal(again[0].rec, payload(5)) {
		t.Fatalf("resumed at %.20q…, want record 5", again[0].rec)
	}
	if err := w.Commit(again[2].pos); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, _ = os.ReadFile(path)
	if first, err := decodeCommit(b[:commitSize]); len(b) != 2*commitSize || err != nil || first != c {
		t.Fatalf("commit file of %d bytes, first slot %+v (%v): want 64 bytes and the old commit %+v kept", len(b), first, err, c)
	}
	w = openWAL(t, opts)
	defer w.Close()
	rest := mustRead(t, w, 2)
	if !bytes.Equal(rest[0].rec, payload(8)) {
		t.Fatalf("resumed at %.20q…, want record 8", rest[0].rec)
	}
}

// TestCommitFsyncs: commits in a row share one fsync of the commit file per
// commitSyncEvery, and the last one is fsynced within it by itself; under
// SyncNever the commit file is never fsynced.
func TestCommitFsyncs(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			cf := installCommitFaults(t)
			w := openWAL(t, Options{Sync: policy})
			defer w.Close()
			recs := commitsOf(t, w, 50)
			base := cf.syncs.Load() // the new file's
			start := time.Now()
			for _, r := range recs {
				if err := w.Commit(r.pos); err != nil {
					t.Fatal(err)
				}
			}
			n := cf.syncs.Load() - base
			if policy == SyncNever {
				if n != 0 || base != 0 {
					t.Fatalf("%d fsyncs of the commit file (%d at open) under SyncNever", n, base)
				}
				return
			}
			if max := 1 + int64(time.Since(start)/commitSyncEvery); n > max {
				t.Fatalf("%d fsyncs for %d commits in %s, want at most %d", n, len(recs), time.Since(start), max)
			}
			dirty := func() bool {
				w.commitMu.Lock()
				defer w.commitMu.Unlock()
				return w.comDirty
			}
			left := dirty() // the last commits, not fsynced yet
			for deadline := time.Now().Add(10 * commitSyncEvery); dirty(); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the last commit was never fsynced")
				}
			}
			if left && cf.syncs.Load()-base != n+1 {
				t.Fatalf("%d fsyncs after the commits, want the one for the last of them", cf.syncs.Load()-base-n)
			}
		})
	}
}
