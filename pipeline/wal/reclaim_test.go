package wal

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ferrylogs/ferry/internal/testlog"
)

// Issue 19, case 6: with the default segment size the active segment never
// rolls while appends are refused for a full disk, so it must be reclaimed
// once delivered, or the disk never gets room back.
func TestFullDiskReclaimsDeliveredActiveSegment(t *testing.T) {
	for _, sync := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(sync.String(), func(t *testing.T) {
			fs := installFaults(t)
			dir := t.TempDir()
			opts := Options{Dir: dir, Sync: sync} // SegmentBytes: the default 64 MiB
			w := openWAL(t, opts)
			defer w.Close()
			const fits = 10
			fs.set(func(fs *faults) { fs.capacity = fits * (headerSize + 100) })

			var want [][]byte
			for i := range fits {
				want = append(want, rec100(i))
				mustAppend(t, w, want[i])
			}
			_, err := w.Append(context.Background(), rec100(fits))
			if !errors.Is(err, ErrFull) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Append on a full disk = %v, want ErrFull", err)
			}
			if st := w.Stats(); !st.DiskFull || st.NoSpace != 1 {
				t.Fatalf("Stats on a full disk: %+v, want DiskFull", st)
			}

			// Deliver half: the disk stays full (the segment holds
			// undelivered records), then the rest.
			got := mustRead(t, w, fits)
			if err := w.Commit(got[fits/2-1].pos); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Append(context.Background(), rec100(fits)); !errors.Is(err, ErrFull) {
				t.Fatalf("Append with half delivered = %v, want ErrFull", err)
			}
			if err := w.Commit(got[fits-1].pos); err != nil {
				t.Fatal(err)
			}
			st := w.Stats()
			if st.DiskFull || st.DiskBytes != 0 || st.PendingBytes != 0 {
				t.Fatalf("Stats once everything is delivered: %+v, want the space back and DiskFull cleared", st)
			}
			if segs := segmentFiles(t, dir); len(segs) != 1 {
				t.Fatalf("segment files %v, want the one new active segment", segs)
			}
			for i := fits; i < 2*fits; i++ { // room for as many again
				want = append(want, rec100(i))
				mustAppend(t, w, rec100(i))
			}
			for i, r := range mustRead(t, w, fits) {
				if !bytes.Equal(r.rec, want[fits+i]) {
					t.Fatalf("record %d after the reclaim = %.20q", fits+i, r.rec)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			// A restart delivers exactly the records not committed.
			w2 := openWAL(t, opts)
			defer w2.Close()
			if st := w2.Stats(); st.UnreadRecords != fits || st.Corrupt != 0 {
				t.Fatalf("reopened: %+v, want %d records", st, fits)
			}
			for i, r := range mustRead(t, w2, fits) {
				if !bytes.Equal(r.rec, want[fits+i]) {
					t.Fatalf("record %d after reopening = %.20q", fits+i, r.rec)
				}
			}
		})
	}
}

// The disk fills while every record is delivered (another process filled
// it): the Append that finds it full is refused, and the next one reclaims
// the delivered active segment and succeeds.
func TestFullDiskWhileIdleReclaimsOnAppend(t *testing.T) {
	fs := installFaults(t)
	log, logs := testlog.New(t, "wal")
	w := openWAL(t, Options{Dir: t.TempDir(), Sync: SyncAlways, Logger: log})
	defer w.Close()
	for i := range 5 {
		mustAppend(t, w, rec100(i))
	}
	got := mustRead(t, w, 5)
	if err := w.Commit(got[4].pos); err != nil {
		t.Fatal(err)
	}
	fs.set(func(fs *faults) { fs.capacity = 5 * (headerSize + 100) }) // full now
	if _, err := w.Append(context.Background(), rec100(5)); !errors.Is(err, ErrFull) {
		t.Fatalf("Append on a full disk = %v, want ErrFull", err)
	}
	mustAppend(t, w, rec100(5))
	if r := mustRead(t, w, 1); !bytes.Equal(r[0].rec, rec100(5)) {
		t.Fatalf("Read = %.20q", r[0].rec)
	}
	if st := w.Stats(); st.DiskFull || st.DiskBytes != headerSize+100 {
		t.Fatalf("Stats: %+v", st)
	}
	if logs.Count("started a new one and removed it") != 1 || logs.Count("has room again") != 1 {
		t.Errorf("want one reclaim line and one room-again line:\n%s", logs.String())
	}
}

// EFBIG (RLIMIT_FSIZE, or the filesystem's largest file) is a full disk:
// the file cannot grow, and room comes back as segments are reclaimed.
func TestNoSpaceErrors(t *testing.T) {
	for _, err := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG, &os.PathError{Op: "write", Path: "x", Err: syscall.EFBIG}} {
		if !noSpace(err) {
			t.Errorf("noSpace(%v) = false", err)
		}
	}
	if noSpace(syscall.EIO) {
		t.Error("noSpace(EIO) = true")
	}
}

// Issue 19, case 14: errors name each file once.
func TestErrorsNamePathOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(file, "wal")
	_, err := Open(Options{Dir: dir})
	if err == nil || strings.Count(err.Error(), file) != 1 {
		t.Errorf("Open under a file: %v, want an error naming %s once", err, dir)
	}

	fs := installFaults(t)
	w := openWAL(t, Options{Dir: t.TempDir(), Sync: SyncAlways})
	defer w.Close()
	fs.set(func(fs *faults) { fs.space, fs.spaceErr = 0, syscall.ENOSPC })
	_, err = w.Append(context.Background(), rec100(0))
	seg := filepath.Join(w.opts.Dir, segmentName(1))
	if err == nil || strings.Count(err.Error(), seg) != 1 || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("Append on a full disk: %v, want an error naming %s once", err, seg)
	}
}
