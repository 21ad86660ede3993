package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// faults makes the segment files of the WALs opened while it is installed
// fail on command, the way a disk and Linux do. It keeps, for each file, the
// size at its last fsync that succeeded: crash cuts every file back to it,
// as a machine crash would.
type faults struct {
	mu sync.Mutex
	// syncErr: the next fsync of a segment file fails with it (once). If
	// syncGate is set, that fsync first signals syncEntered and waits for
	// syncGate to close.
	syncErr     error
	syncGate    chan struct{}
	syncEntered chan struct{}
	// space is the number of bytes writes may still add (negative: no
	// limit); a write that needs more writes what fits and fails with
	// spaceErr.
	space    int64
	spaceErr error
	// capacity bounds the bytes of all segment files together, as a disk
	// does (negative: no bound): a write that would pass it writes what
	// fits and fails with ENOSPC. Removing a file frees its bytes.
	capacity  int64
	writeErr  error         // every write writes half its bytes and fails with it
	truncErr  error         // every truncate fails with it
	createErr error         // creating a segment file fails with it
	wrote     chan struct{} // signalled after every write, when set
	writes    int           // write calls
	files     map[string]*fileState
}

type fileState struct {
	synced int64 // size at the last fsync that succeeded
	// failed: an fsync failed. As on Linux, the next ones report success
	// but write nothing: the pages that could not be written are gone.
	failed         bool
	syncsAfterFail int
}

type faultFile struct {
	segFile
	fs   *faults
	name string
}

func installFaults(t *testing.T) *faults {
	fs := &faults{space: -1, capacity: -1, files: map[string]*fileState{}}
	orig := openFile
	openFile = func(name string, flag int, perm os.FileMode) (segFile, error) {
		fs.mu.Lock()
		cerr := fs.createErr
		fs.mu.Unlock()
		if cerr != nil && flag&os.O_CREATE != 0 {
			return nil, &os.PathError{Op: "open", Path: name, Err: cerr}
		}
		f, err := orig(name, flag, perm)
		if err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		fs.mu.Lock()
		fs.files[name] = &fileState{synced: fi.Size()}
		fs.mu.Unlock()
		return &faultFile{segFile: f, fs: fs, name: name}, nil
	}
	t.Cleanup(func() { openFile = orig })
	return fs
}

func (fs *faults) set(f func(fs *faults)) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f(fs)
}

func (fs *faults) writeCount() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.writes
}

// syncsAfterFail returns the fsyncs of files after their fsync failed.
func (fs *faults) syncsAfterFail() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := 0
	for _, st := range fs.files {
		n += st.syncsAfterFail
	}
	return n
}

// crash cuts every segment file back to its size at its last fsync that
// succeeded: what the disk holds when the machine dies.
func (fs *faults) crash(t *testing.T) {
	t.Helper()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for name, st := range fs.files {
		if err := os.Truncate(name, st.synced); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	f.fs.writes++
	werr, wrote := f.fs.writeErr, f.fs.wrote
	room := int64(-1) // bytes the file may grow by
	if f.fs.capacity >= 0 {
		room = f.fs.capacity - f.fs.used()
	}
	switch end := off + int64(len(p)); {
	case werr == nil && room >= 0 && end > f.size()+room:
		p = p[:max(0, f.size()+room-off)]
		werr = syscall.ENOSPC
	case werr == nil && f.fs.space >= 0 && int64(len(p)) > f.fs.space:
		werr = f.fs.spaceErr
		p = p[:f.fs.space]
		f.fs.space = 0
	case werr != nil:
		p = p[:len(p)/2]
	case f.fs.space >= 0:
		f.fs.space -= int64(len(p))
	}
	f.fs.mu.Unlock()
	n, err := f.segFile.WriteAt(p, off)
	if wrote != nil {
		select {
		case wrote <- struct{}{}:
		default:
			panic("faults.wrote is full")
		}
	}
	if err == nil && werr != nil {
		err = &os.PathError{Op: "write", Path: f.name, Err: werr}
	}
	return n, err
}

// used returns the bytes of the segment files that exist. Called with mu
// held.
func (fs *faults) used() int64 {
	var n int64
	for name := range fs.files {
		if fi, err := os.Stat(name); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func (f *faultFile) size() int64 {
	fi, err := os.Stat(f.name)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (f *faultFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	terr := f.fs.truncErr
	f.fs.mu.Unlock()
	if terr != nil {
		return &os.PathError{Op: "truncate", Path: f.name, Err: terr}
	}
	return f.segFile.Truncate(size)
}

func (f *faultFile) Sync() error {
	f.fs.mu.Lock()
	st := f.fs.files[f.name]
	if err := f.fs.syncErr; err != nil {
		f.fs.syncErr = nil
		st.failed = true
		gate, entered := f.fs.syncGate, f.fs.syncEntered
		f.fs.mu.Unlock()
		if entered != nil {
			entered <- struct{}{}
		}
		if gate != nil {
			<-gate
		}
		return &os.PathError{Op: "sync", Path: f.name, Err: err}
	}
	defer f.fs.mu.Unlock()
	if st.failed {
		st.syncsAfterFail++
		return nil
	}
	fi, err := f.segFile.Stat()
	if err != nil {
		return err
	}
	st.synced = fi.Size()
	return nil
}

// rec100 returns record i, 100 bytes (112 on disk).
func rec100(i int) []byte {
	return fmt.Appendf(nil, "record-%04d-%s", i, strings.Repeat("x", 100-12))
}

// TestFsyncFailureIsSticky: a failed fsync fails the Appends that waited on
// it and every later one, is never retried on the same file, and loses
// nothing that was acknowledged; opening the directory again recovers.
func TestFsyncFailureIsSticky(t *testing.T) {
	cases := []struct {
		name    string
		policy  SyncPolicy
		segment int64 // SegmentBytes
		waiters int   // Appends written while the failing fsync runs
	}{
		// The group commit fsync fails; the waiters wait for it (interval)
		// or for the next one (always).
		{"always, group commit", SyncAlways, 1 << 20, 2},
		{"interval, group commit", SyncInterval, 1 << 20, 2},
		// The fsync that seals a full segment fails.
		{"always, roll", SyncAlways, 10 * 112, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := installFaults(t)
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: tc.segment, Sync: tc.policy, SyncInterval: time.Millisecond}
			w := openWAL(t, opts)
			defer w.Close()
			const acked = 10
			for i := range acked {
				mustAppend(t, w, rec100(i))
			}

			gate := make(chan struct{})
			entered := make(chan struct{}, 1)
			fs.set(func(fs *faults) { fs.syncErr, fs.syncGate, fs.syncEntered = syscall.EIO, gate, entered })
			errs := make(chan error, 1+tc.waiters)
			appendAsync := func(i int) {
				go func() {
					_, err := w.Append(context.Background(), rec100(i))
					errs <- err
				}()
			}
			appendAsync(acked)
			<-entered // the failing fsync runs, and waits for the gate
			wrote := make(chan struct{}, tc.waiters)
			fs.set(func(fs *faults) { fs.wrote = wrote })
			for i := range tc.waiters {
				appendAsync(acked + 1 + i)
			}
			for range tc.waiters {
				<-wrote // written, not yet durable
			}
			fs.set(func(fs *faults) { fs.wrote = nil })
			close(gate)
			for range 1 + tc.waiters {
				err := <-errs
				if !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "fsync") {
					t.Fatalf("Append waiting on the failed fsync: %v, want ErrFailed wrapping the fsync's EIO", err)
				}
			}

			failure := w.Err()
			if !errors.Is(failure, ErrFailed) || !errors.Is(failure, syscall.EIO) || !strings.Contains(failure.Error(), segmentName(1)) {
				t.Fatalf("Err() = %v, want the fsync failure of %s", failure, segmentName(1))
			}
			writes := fs.writeCount()
			if _, err := w.Append(context.Background(), []byte("later")); err == nil || err.Error() != failure.Error() {
				t.Fatalf("Append after the failure: %v, want %v", err, failure)
			}
			if n := fs.writeCount(); n != writes {
				t.Fatalf("Append after the failure wrote %d times, want it to fail before writing", n-writes)
			}

			// What the WAL holds is still delivered, and Commit works.
			recs := mustRead(t, w, acked)
			for i, r := range recs {
				if !bytes.Equal(r.rec, rec100(i)) {
					t.Fatalf("record %d = %q", i, r.rec)
				}
			}
			const committed = 4
			if err := w.Commit(recs[committed-1].pos); err != nil {
				t.Fatalf("Commit after the failure: %v", err)
			}

			w.mu.Lock()
			syncedAtFailure := w.synced
			w.mu.Unlock()
			if err := w.Close(); !errors.Is(err, ErrFailed) {
				t.Fatalf("Close = %v, want the failure", err)
			}
			if n := fs.syncsAfterFail(); n != 0 {
				t.Fatalf("%d fsyncs of a file after its fsync failed", n)
			}
			// An Append that checks only now must not find its record
			// durable: Close counts nothing more as synced.
			w.mu.Lock()
			synced := w.synced
			w.mu.Unlock()
			if synced != syncedAtFailure {
				t.Fatalf("Close moved the synced bytes from %d to %d after the failure", syncedAtFailure, synced)
			}

			// The machine dies: only what fsyncs wrote is on disk. Every
			// acknowledged record not committed is there, and no other.
			fs.crash(t)
			w2 := openWAL(t, opts)
			defer w2.Close()
			if err := w2.Err(); err != nil {
				t.Fatalf("Err() after reopening: %v", err)
			}
			if st := w2.Stats(); st.UnreadRecords != acked-committed || st.Corrupt != 0 {
				t.Fatalf("reopened: %+v, want %d records and no damage", st, acked-committed)
			}
			for i, r := range mustRead(t, w2, acked-committed) {
				if want := rec100(committed + i); !bytes.Equal(r.rec, want) {
					t.Fatalf("record %d after reopening = %q, want %q", i, r.rec, want)
				}
			}
			mustAppend(t, w2, []byte("after"))
			if r := mustRead(t, w2, 1); string(r[0].rec) != "after" {
				t.Fatalf("Read = %q", r[0].rec)
			}
		})
	}
}

// TestWriteFailure: a write that finds the disk full is cut off again and
// refused as ErrFull, and the WAL takes records again once there is room;
// any other failed write, or one that cannot be cut off, fails the WAL.
func TestWriteFailure(t *testing.T) {
	const large = 100 << 10 // written as a header and a payload
	cases := []struct {
		name     string
		size     int // of the record that fails
		arm      func(fs *faults)
		errno    syscall.Errno
		full     bool // ErrFull, else ErrFailed
		damaged  uint64
		accepted bool // the record is appended once the fault is gone
	}{
		{"disk full", 100, func(fs *faults) { fs.space, fs.spaceErr = 50, syscall.ENOSPC }, syscall.ENOSPC, true, 0, true},
		{"quota full", 100, func(fs *faults) { fs.space, fs.spaceErr = 0, syscall.EDQUOT }, syscall.EDQUOT, true, 0, true},
		{"disk full in a payload", large, func(fs *faults) { fs.space, fs.spaceErr = headerSize+1000, syscall.ENOSPC }, syscall.ENOSPC, true, 0, true},
		{"I/O error", 100, func(fs *faults) { fs.writeErr = syscall.EIO }, syscall.EIO, false, 0, false},
		// The torn record stays behind the last one: Open cuts it off.
		{"disk full, cannot cut it off", 100, func(fs *faults) {
			fs.space, fs.spaceErr, fs.truncErr = 50, syscall.ENOSPC, syscall.EIO
		}, syscall.ENOSPC, false, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := installFaults(t)
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: 1 << 20, MaxRecordBytes: large, Sync: SyncAlways}
			w := openWAL(t, opts)
			defer w.Close()
			var want [][]byte
			for i := range 3 {
				want = append(want, rec100(i))
				mustAppend(t, w, want[i])
			}
			seg := filepath.Join(dir, segmentName(1))
			before := fileSize(t, seg)

			rec := bytes.Repeat([]byte{'y'}, tc.size)
			fs.set(tc.arm)
			_, err := w.Append(context.Background(), rec)
			if !errors.Is(err, tc.errno) {
				t.Fatalf("Append = %v, want %v", err, tc.errno)
			}
			fs.set(func(fs *faults) { fs.space, fs.writeErr, fs.truncErr = -1, nil, nil }) // room again
			if tc.full {
				if !errors.Is(err, ErrFull) || errors.Is(err, ErrFailed) || w.Err() != nil {
					t.Fatalf("Append = %v, Err() = %v; want ErrFull and a WAL not failed", err, w.Err())
				}
				if n := fileSize(t, seg); n != before {
					t.Fatalf("segment holds %d bytes after the failed write, want %d (cut back)", n, before)
				}
				if st := w.Stats(); st.NoSpace != 1 || st.Appends != 3 {
					t.Fatalf("Stats after the full disk: %+v", st)
				}
			} else {
				if !errors.Is(err, ErrFailed) || !errors.Is(w.Err(), ErrFailed) {
					t.Fatalf("Append = %v, Err() = %v; want ErrFailed", err, w.Err())
				}
			}
			_, err = w.Append(context.Background(), rec)
			if tc.accepted {
				if err != nil {
					t.Fatalf("Append once there is room: %v", err)
				}
				want = append(want, rec)
			} else if !errors.Is(err, ErrFailed) {
				t.Fatalf("Append after the failure: %v, want ErrFailed", err)
			}
			if err := w.Close(); (err != nil) != !tc.full {
				t.Fatalf("Close = %v", err)
			}

			w2 := openWAL(t, opts)
			defer w2.Close()
			if st := w2.Stats(); st.UnreadRecords != uint64(len(want)) || st.Corrupt != tc.damaged {
				t.Fatalf("reopened: %+v, want %d records, %d damaged regions", st, len(want), tc.damaged)
			}
			for i, r := range mustRead(t, w2, len(want)) {
				if !bytes.Equal(r.rec, want[i]) {
					t.Fatalf("record %d after reopening = %.20q…", i, r.rec)
				}
			}
		})
	}
}

// TestCreateSegmentFailure: no room for a new segment is ErrFull, and the
// WAL rolls once there is room; any other error creating it fails the WAL.
func TestCreateSegmentFailure(t *testing.T) {
	cases := []struct {
		errno syscall.Errno
		full  bool
	}{
		{syscall.ENOSPC, true},
		{syscall.EROFS, false},
	}
	for _, tc := range cases {
		t.Run(tc.errno.Error(), func(t *testing.T) {
			fs := installFaults(t)
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: 10 * 112, Sync: SyncAlways}
			w := openWAL(t, opts)
			defer w.Close()
			const n = 10 // a full segment
			for i := range n {
				mustAppend(t, w, rec100(i))
			}
			fs.set(func(fs *faults) { fs.createErr = tc.errno })
			_, err := w.Append(context.Background(), rec100(n))
			fs.set(func(fs *faults) { fs.createErr = nil })
			if !errors.Is(err, tc.errno) || errors.Is(err, ErrFull) != tc.full || errors.Is(err, ErrFailed) == tc.full {
				t.Fatalf("Append = %v; want %v, full %v", err, tc.errno, tc.full)
			}
			if tc.full != (w.Err() == nil) {
				t.Fatalf("Err() = %v", w.Err())
			}
			_, err = w.Append(context.Background(), rec100(n))
			switch {
			case tc.full && err != nil:
				t.Fatalf("Append once there is room: %v", err)
			case tc.full && w.Stats().Segments != 2:
				t.Fatalf("%d segments after the roll, want 2", w.Stats().Segments)
			case !tc.full && !errors.Is(err, ErrFailed):
				t.Fatalf("Append after the failure: %v", err)
			}
			w.Close()

			want := n
			if tc.full {
				want++
			}
			w2 := openWAL(t, opts)
			defer w2.Close()
			for i, r := range mustRead(t, w2, want) {
				if !bytes.Equal(r.rec, rec100(i)) {
					t.Fatalf("record %d after reopening = %q", i, r.rec)
				}
			}
			if st := w2.Stats(); st.UnreadRecords != 0 || st.Corrupt != 0 {
				t.Fatalf("reopened: %+v", st)
			}
		})
	}
}

// commitFaults is the commit file's seam: its writes fail while fail is
// set, and its fsyncs are counted.
type commitFaults struct {
	fail  atomic.Bool
	syncs atomic.Int64
	opens atomic.Int64
}

type commitFaultFile struct {
	segFile
	cf *commitFaults
}

func (f commitFaultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.cf.fail.Load() {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.EIO}
	}
	return f.segFile.WriteAt(p, off)
}

func (f commitFaultFile) Sync() error {
	f.cf.syncs.Add(1)
	return f.segFile.Sync()
}

func installCommitFaults(t *testing.T) *commitFaults {
	cf := &commitFaults{}
	orig := openCommitFile
	openCommitFile = func(name string, flag int, perm os.FileMode) (segFile, error) {
		f, err := orig(name, flag, perm)
		if err != nil {
			return nil, err
		}
		cf.opens.Add(1)
		return commitFaultFile{segFile: f, cf: cf}, nil
	}
	t.Cleanup(func() { openCommitFile = orig })
	return cf
}

// TestCommitFileUnwritable: a Commit that cannot write the commit file (a
// failing disk) still removes the delivered segments, so that a WAL that
// filled the disk frees it; a restart before the next Commit delivers
// again only what lies after the older position, and committing the same
// position again writes the file.
func TestCommitFileUnwritable(t *testing.T) {
	cf := installCommitFaults(t)
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 1024, Sync: SyncNever}
	w := openWAL(t, opts)
	defer w.Close()
	const n, delivered = 40, 30
	for i := range n {
		mustAppend(t, w, payload(i))
	}
	recs := mustRead(t, w, n)
	if err := w.Commit(recs[9].pos); err != nil {
		t.Fatal(err)
	}
	cf.fail.Store(true)
	p := recs[delivered-1].pos
	if err := w.Commit(p); err == nil {
		t.Fatal("Commit succeeded with the commit file's writes failing")
	}
	if st := w.Stats(); st.PendingRecords != n-delivered {
		t.Fatalf("after the failed commit: %+v, want %d records pending", st, n-delivered)
	}
	for _, f := range segmentFiles(t, dir) {
		if id, _ := parseSegmentName(filepath.Base(f)); id < p.Segment {
			t.Fatalf("segment %s behind the committed position %v not removed", f, p)
		}
	}

	// A restart now finds no commit file (it would find the older one):
	// everything left is delivered again, the records after p included.
	cf.fail.Store(false) // for the restart's own commit file
	crashed := t.TempDir()
	for _, f := range segmentFiles(t, dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w2 := openWAL(t, Options{Dir: crashed, SegmentBytes: 1024, Sync: SyncNever})
	replay := mustRead(t, w2, int(w2.Stats().UnreadRecords))
	w2.Close()
	if len(replay) < n-delivered {
		t.Fatalf("replayed %d records, want at least %d", len(replay), n-delivered)
	}
	for i, r := range replay[len(replay)-(n-delivered):] {
		if !bytes.Equal(r.rec, payload(delivered+i)) {
			t.Fatalf("replayed record %d = %.20q…", i, r.rec)
		}
	}

	// Once the file can be written, committing p again writes it (in the
	// file opened again).
	opens := cf.opens.Load()
	if err := w.Commit(p); err != nil {
		t.Fatal(err)
	}
	if cf.opens.Load() != opens+1 {
		t.Fatalf("the commit file opened %d times after the failed write, want once", cf.opens.Load()-opens)
	}
	w.Close()
	w = openWAL(t, opts)
	defer w.Close()
	if st := w.Stats(); st.UnreadRecords != n-delivered {
		t.Fatalf("reopened: %+v, want %d records", st, n-delivered)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
