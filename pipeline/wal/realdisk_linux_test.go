package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it
// at the end of the test. It needs root (CI runs as root); elsewhere the
// test is skipped, saying why.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs (a real full disk) needs root")
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("mount tmpfs on %s: %v (a container without CAP_SYS_ADMIN)", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// freeBytes returns the bytes an unprivileged writer could still use on the
// filesystem of dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// recKB is record i of about 1 KB.
func recKB(i int) []byte {
	return fmt.Appendf(nil, "record-%05d-%s", i, strings.Repeat("k", 1000))
}

// TestRealFullDisk runs the WAL on a real filesystem that fills up (a 1 MiB
// tmpfs), not through the fault seams: Append is refused with ErrFull
// (ENOSPC) and loses nothing appended before; with the disk then filled to
// the last byte by another file, Commit and Close still succeed (the commit
// file is written in place, in room it has had since Open), and a reopened
// WAL delivers exactly the records after the commit, with no damaged region.
// Once the other file is gone, Appends succeed again.
func TestRealFullDisk(t *testing.T) {
	for _, sync := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(sync.String(), func(t *testing.T) {
			dir := mountTmpfs(t, 1<<20)
			// SyncInterval 1ms: each Append waits for its group commit.
			opts := Options{Dir: dir, Sync: sync, SyncInterval: time.Millisecond, SegmentBytes: 128 << 10}
			w := openWAL(t, opts)
			defer w.Close()

			var want [][]byte
			var err error
			for i := 0; ; i++ {
				if i > 2000 {
					t.Fatal("2000 records of 1 KB appended to a 1 MiB filesystem")
				}
				rec := recKB(i)
				if _, err = w.Append(context.Background(), rec); err != nil {
					break
				}
				want = append(want, rec)
			}
			if !errors.Is(err, ErrFull) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Append on the full tmpfs = %v, want ErrFull wrapping ENOSPC", err)
			}
			n := len(want)
			if n < 500 {
				t.Fatalf("only %d records of 1 KB fit in 1 MiB", n)
			}
			if st := w.Stats(); !st.DiskFull || st.NoSpace != 1 {
				t.Fatalf("Stats on the full tmpfs: %+v, want DiskFull and one refusal", st)
			}

			// Whatever room the refused Append left (less than a record),
			// another file takes.
			filler, err := os.Create(filepath.Join(dir, "filler"))
			if err != nil {
				t.Fatal(err)
			}
			page := make([]byte, 512)
			for {
				if _, err := filler.Write(page); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("filling the tmpfs: %v", err)
					}
					break
				}
			}
			filler.Close()
			if free := freeBytes(t, dir); free != 0 {
				t.Fatalf("%d bytes free after filling the tmpfs", free)
			}

			got := mustRead(t, w, n)
			for i, g := range got {
				if !bytes.Equal(g.rec, want[i]) {
					t.Fatalf("record %d read back = %.20q, want %.20q", i, g.rec, want[i])
				}
			}
			// Commit a position inside the last segment: nothing can be
			// reclaimed before the commit is written, on a disk with no
			// free byte.
			at := n - 3
			if err := w.Commit(got[at].pos); err != nil {
				t.Fatalf("Commit on a full disk: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close on a full disk: %v", err)
			}

			w2 := openWAL(t, opts)
			defer w2.Close()
			if st := w2.Stats(); st.UnreadRecords != uint64(n-at-1) || st.Corrupt != 0 {
				t.Fatalf("reopened: %+v, want %d records and nothing damaged", st, n-at-1)
			}
			for i, g := range mustRead(t, w2, n-at-1) {
				if !bytes.Equal(g.rec, want[at+1+i]) {
					t.Fatalf("reopened: record %d = %.20q, want %.20q", i, g.rec, want[at+1+i])
				}
			}
			if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
				t.Fatal(err)
			}
			for i := n; i < n+100; i++ {
				mustAppend(t, w2, recKB(i))
			}
			for i, g := range mustRead(t, w2, 100) {
				if !bytes.Equal(g.rec, recKB(n+i)) {
					t.Fatalf("after room came back: record %d = %.20q", n+i, g.rec)
				}
			}
		})
	}
}
