package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferrylogs/ferry/internal/testlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newLogger() (*slog.Logger, *testlog.Buffer) {
	lb := &testlog.Buffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

func openWAL(t testing.TB, opts Options) *WAL {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// payload returns record i: its number, then filler of a size that varies
// with i.
func payload(i int) []byte {
	b := fmt.Appendf(nil, "record-%06d|", i)
	for n := 50 + (i*37)%500; len(b) < n; {
		b = append(b, byte('a'+i%26))
	}
	return b
}

func mustAppend(t testing.TB, w *WAL, rec []byte) Pos {
	t.Helper()
	p, err := w.Append(context.Background(), rec)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return p
}

type got struct {
	pos Pos
	rec []byte
}

func mustRead(t testing.TB, w *WAL, n int) []got {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make([]got, 0, n)
	for range n {
		p, rec, err := w.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d records: %v", len(out), err)
		}
		out = append(out, got{p, rec})
	}
	return out
}

// expectNoRecord checks that Read finds nothing more.
func expectNoRecord(t testing.TB, w *WAL) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if p, rec, err := w.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read = %v %q %v, want no record", p, rec, err)
	}
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// copyDir copies the files of dir as they are now: for the copy, the WAL
// process died at this instant (its writes are in the page cache, hence in
// the files, whether or not they were fsynced).
func copyDir(t testing.TB, dir string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestRoundTripAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, Options{Dir: dir, SegmentBytes: 4096, Sync: SyncNever})
	defer w.Close()
	const n = 300
	var appended []Pos
	for i := range n {
		appended = append(appended, mustAppend(t, w, payload(i)))
	}
	st := w.Stats()
	if st.Segments < 10 || st.PendingRecords != n || st.UnreadRecords != n || st.Appends != n {
		t.Fatalf("after %d appends: %+v", n, st)
	}
	if files := segmentFiles(t, dir); len(files) != st.Segments {
		t.Fatalf("%d segment files, Stats says %d", len(files), st.Segments)
	}
	recs := mustRead(t, w, n)
	for i, r := range recs {
		if !bytes.Equal(r.rec, payload(i)) {
			t.Fatalf("record %d = %.20q…, want %.20q…", i, r.rec, payload(i))
		}
		if r.pos != appended[i] || r.pos.Seq != uint64(i+1) {
			t.Fatalf("record %d: Read pos %v, Append pos %v", i, r.pos, appended[i])
		}
	}
	expectNoRecord(t, w)

	// Commit half: the segments before the committed record go.
	if err := w.Commit(recs[n/2-1].pos); err != nil {
		t.Fatal(err)
	}
	half := w.Stats()
	if half.PendingRecords != n/2 || half.UnreadRecords != 0 || half.DiskBytes >= st.DiskBytes || half.PendingBytes >= st.PendingBytes {
		t.Fatalf("after committing half: %+v (before: %+v)", half, st)
	}
	for _, f := range segmentFiles(t, dir) {
		id, _ := parseSegmentName(filepath.Base(f))
		if id < recs[n/2-1].pos.Segment {
			t.Fatalf("segment %s still on disk behind the committed position %v", f, recs[n/2-1].pos)
		}
	}
	if files := segmentFiles(t, dir); len(files) != half.Segments {
		t.Fatalf("%d segment files, Stats says %d", len(files), half.Segments)
	}
	// Commit all: only the active segment remains.
	if err := w.Commit(recs[n-1].pos); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.PendingRecords != 0 || st.PendingBytes != 0 || st.Segments != 1 {
		t.Fatalf("after committing all: %+v", st)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// Nothing is replayed after a clean reopen.
	w2 := openWAL(t, Options{Dir: dir, SegmentBytes: 4096, Sync: SyncNever})
	defer w2.Close()
	if st := w2.Stats(); st.PendingRecords != 0 || st.UnreadRecords != 0 {
		t.Fatalf("reopened: %+v", st)
	}
	expectNoRecord(t, w2)
	p := mustAppend(t, w2, []byte("next"))
	if p.Seq != n+1 {
		t.Fatalf("Seq after reopen = %d, want %d", p.Seq, n+1)
	}
	if r := mustRead(t, w2, 1); string(r[0].rec) != "next" || r[0].pos != p {
		t.Fatalf("Read = %v %q", r[0].pos, r[0].rec)
	}
}

func TestFullUntilCommit(t *testing.T) {
	const recSize = 500 // 512 bytes on disk
	w := openWAL(t, Options{SegmentBytes: 4 * 512, MaxBytes: 16 * 512, MaxRecordBytes: 1024, Sync: SyncNever})
	defer w.Close()
	rec := bytes.Repeat([]byte{'x'}, recSize)
	fill := func() int {
		for n := 0; ; n++ {
			_, err := w.Append(context.Background(), rec)
			if errors.Is(err, ErrFull) {
				return n
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := fill(); n != 16 {
		t.Fatalf("appended %d records before ErrFull, want 16", n)
	}
	if st := w.Stats(); st.PendingBytes != 16*512 || st.Segments != 4 {
		t.Fatalf("full: %+v", st)
	}
	recs := mustRead(t, w, 5)
	if err := w.Commit(recs[4].pos); err != nil {
		t.Fatal(err)
	}
	// The first segment (records 1-4) is gone; record 5 shares the second
	// with records not yet committed.
	if st := w.Stats(); st.PendingBytes != 11*512 || st.Segments != 3 || st.DiskBytes != 12*512 {
		t.Fatalf("after commit: %+v", st)
	}
	if n := fill(); n != 5 {
		t.Fatalf("appended %d records after the commit, want 5", n)
	}
	if _, err := w.Append(context.Background(), make([]byte, 1025)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append of 1025 bytes: %v, want ErrTooLarge", err)
	}
}

func TestCrashRecovery(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: 2048, Sync: policy, SyncInterval: time.Millisecond}
			w := openWAL(t, opts)
			const n, committedN, readN = 100, 40, 70
			for i := range n {
				mustAppend(t, w, payload(i))
			}
			recs := mustRead(t, w, readN)
			if err := w.Commit(recs[committedN-1].pos); err != nil {
				t.Fatal(err)
			}
			// The process dies here: nothing more reaches the files.
			crashed := copyDir(t, dir)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			// A crash during a Commit leaves its temporary file.
			if err := os.WriteFile(filepath.Join(crashed, "."+commitName+".tmp123"), []byte("half"), 0o644); err != nil {
				t.Fatal(err)
			}

			log, lb := newLogger()
			opts.Dir, opts.Logger = crashed, log
			w2 := openWAL(t, opts)
			defer w2.Close()
			if st := w2.Stats(); st.PendingRecords != n-committedN || st.UnreadRecords != n-committedN || st.Corrupt != 0 {
				t.Fatalf("after the crash: %+v", st)
			}
			for i, r := range mustRead(t, w2, n-committedN) {
				want := committedN + i
				if !bytes.Equal(r.rec, payload(want)) || r.pos.Seq != uint64(want+1) {
					t.Fatalf("record %d after the crash = %v %.20q…, want record %d", i, r.pos, r.rec, want)
				}
			}
			expectNoRecord(t, w2)
			if p := mustAppend(t, w2, []byte("after")); p.Seq != n+1 {
				t.Fatalf("Seq after the crash = %d, want %d", p.Seq, n+1)
			}
			if r := mustRead(t, w2, 1); string(r[0].rec) != "after" {
				t.Fatalf("Read = %q", r[0].rec)
			}
			if _, err := os.Stat(filepath.Join(crashed, "."+commitName+".tmp123")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("stale temporary commit file not removed: %v", err)
			}
			if ws := lb.Lines("level=WARN"); len(ws) != 0 {
				t.Fatalf("warnings after a clean crash: %q", ws)
			}
		})
	}
}

func TestCommitOrder(t *testing.T) {
	w := openWAL(t, Options{Sync: SyncNever})
	for i := range 5 {
		mustAppend(t, w, payload(i))
	}
	recs := mustRead(t, w, 3)
	if err := w.Commit(recs[1].pos); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(recs[1].pos); err != nil {
		t.Fatalf("committing the committed position again: %v", err)
	}
	if err := w.Commit(recs[0].pos); err == nil || !strings.Contains(err.Error(), "behind") {
		t.Fatalf("Commit behind the committed position: %v", err)
	}
	beyond := recs[2].pos
	beyond.Offset += 100
	if err := w.Commit(beyond); err == nil || !strings.Contains(err.Error(), "past the last record read") {
		t.Fatalf("Commit past the last record read: %v", err)
	}
	if err := w.Commit(recs[2].pos); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(recs[2].pos); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Close: %v", err)
	}
}

// TestCommitPastLostData: with SyncNever the machine may crash after the
// commit file reached the disk but before the segment data did. New records
// must not land behind the committed offset, where they would count as
// delivered.
func TestCommitPastLostData(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Sync: SyncNever}
	w := openWAL(t, opts)
	for i := range 10 {
		mustAppend(t, w, payload(i))
	}
	recs := mustRead(t, w, 10)
	if err := w.Commit(recs[9].pos); err != nil {
		t.Fatal(err)
	}
	w.Close()
	seg := filepath.Join(dir, segmentName(recs[9].pos.Segment))
	if err := os.Truncate(seg, recs[9].pos.Offset/2); err != nil {
		t.Fatal(err)
	}

	w = openWAL(t, opts)
	expectNoRecord(t, w)
	for i := range 3 {
		mustAppend(t, w, payload(100+i))
	}
	w.Close()
	w = openWAL(t, opts)
	defer w.Close()
	for i, r := range mustRead(t, w, 3) {
		if !bytes.Equal(r.rec, payload(100+i)) {
			t.Fatalf("record %d = %.20q…", i, r.rec)
		}
	}
}

func TestDamagedCommitFileReplaysAll(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, Options{Dir: dir, Sync: SyncNever})
	for i := range 5 {
		mustAppend(t, w, payload(i))
	}
	recs := mustRead(t, w, 5)
	if err := w.Commit(recs[2].pos); err != nil {
		t.Fatal(err)
	}
	w.Close()
	path := filepath.Join(dir, commitName)
	b, _ := os.ReadFile(path)
	b[10] ^= 0x40
	os.WriteFile(path, b, 0o644)

	log, lb := newLogger()
	w = openWAL(t, Options{Dir: dir, Sync: SyncNever, Logger: log})
	defer w.Close()
	if ws := lb.Lines("level=WARN"); len(ws) != 1 || !strings.Contains(ws[0], path) {
		t.Fatalf("warnings = %q, want one naming %s", ws, path)
	}
	for i, r := range mustRead(t, w, 5) {
		if !bytes.Equal(r.rec, payload(i)) {
			t.Fatalf("record %d = %.20q…", i, r.rec)
		}
	}
}

func TestConcurrentAppends(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncInterval, SyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			const writers, each = 16, 100
			w := openWAL(t, Options{SegmentBytes: 16 << 10, Sync: policy, SyncInterval: 2 * time.Millisecond})
			defer w.Close()

			// A reader follows the writers in the same segments.
			readerDone := make(chan map[string]int)
			go func() {
				seen := map[string]int{}
				last := make([]int, writers)
				for i := range last {
					last[i] = -1
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				for range writers * each {
					_, rec, err := w.Read(ctx)
					if err != nil {
						t.Errorf("Read: %v", err)
						break
					}
					seen[string(rec)]++
					var g, i int
					fmt.Sscanf(string(rec), "w%d-%d", &g, &i)
					if i <= last[g] {
						t.Errorf("writer %d: record %d read after %d", g, i, last[g])
					}
					last[g] = i
				}
				readerDone <- seen
			}()

			var wg sync.WaitGroup
			for g := range writers {
				wg.Go(func() {
					for i := range each {
						if _, err := w.Append(context.Background(), fmt.Appendf(nil, "w%d-%d", g, i)); err != nil {
							t.Errorf("Append: %v", err)
							return
						}
					}
				})
			}
			wg.Wait()
			seen := <-readerDone
			if len(seen) != writers*each {
				t.Fatalf("read %d distinct records, want %d", len(seen), writers*each)
			}
			for rec, n := range seen {
				if n != 1 {
					t.Fatalf("%s read %d times", rec, n)
				}
			}
			st := w.Stats()
			t.Logf("%s: %d appends, %d fsyncs, %d segments", policy, st.Appends, st.Syncs, st.Segments)
			if st.Appends != writers*each {
				t.Fatalf("Stats.Appends = %d", st.Appends)
			}
			if policy == SyncInterval && st.Syncs > st.Appends/4 {
				t.Fatalf("%d fsyncs for %d appends: group commit does not group", st.Syncs, st.Appends)
			}
			if st.Syncs > st.Appends+uint64(st.Segments) {
				t.Fatalf("%d fsyncs for %d appends", st.Syncs, st.Appends)
			}
		})
	}
}

func TestReadBlocksUntilAppend(t *testing.T) {
	w := openWAL(t, Options{Sync: SyncNever})
	defer w.Close()
	type result struct {
		rec []byte
		err error
	}
	res := make(chan result)
	go func() {
		_, rec, err := w.Read(context.Background())
		res <- result{rec, err}
	}()
	select {
	case r := <-res:
		t.Fatalf("Read returned %q %v on an empty WAL", r.rec, r.err)
	case <-time.After(30 * time.Millisecond):
	}
	mustAppend(t, w, []byte("hello"))
	if r := <-res; r.err != nil || string(r.rec) != "hello" {
		t.Fatalf("Read = %q %v", r.rec, r.err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _, err := w.Read(ctx)
		res <- result{err: err}
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if r := <-res; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Read after cancel: %v", r.err)
	}
}

func TestCloseUnblocks(t *testing.T) {
	// An hour-long group commit window: the first Append gets its fsync at
	// once, the next one waits until Close fsyncs.
	w := openWAL(t, Options{Sync: SyncInterval, SyncInterval: time.Hour})
	mustAppend(t, w, []byte("first"))
	readErr := make(chan error)
	go func() {
		for {
			if _, _, err := w.Read(context.Background()); err != nil {
				readErr <- err
				return
			}
		}
	}()
	appendErr := make(chan error)
	go func() {
		_, err := w.Append(context.Background(), []byte("waits for fsync"))
		appendErr <- err
	}()
	for w.Stats().Appends < 2 {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-appendErr:
		t.Fatalf("Append returned %v before any fsync", err)
	case <-time.After(30 * time.Millisecond):
	}

	// A cancelled Append returns, though its record is written.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := w.Append(ctx, []byte("cancelled")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append with a short ctx: %v", err)
	}

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-appendErr; err != nil {
		t.Fatalf("Append waiting during Close: %v, want nil (Close fsyncs)", err)
	}
	if err := <-readErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read during Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Append(context.Background(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, _, err := w.Read(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	w := openWAL(t, Options{Sync: SyncNever})
	res := make(chan error)
	go func() {
		_, _, err := w.Read(context.Background())
		res <- err
	}()
	time.Sleep(10 * time.Millisecond)
	w.Close()
	if err := <-res; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read during Close: %v", err)
	}
}

func TestOneProcessPerDir(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, Options{Dir: dir})
	if w2, err := Open(Options{Dir: dir}); err == nil {
		w2.Close()
		t.Fatal("second Open of a directory in use succeeded")
	}
	w.Close()
	openWAL(t, Options{Dir: dir}).Close()
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Dir: "x", SegmentBytes: -1},
		{Dir: "x", MaxBytes: 100},
		{Dir: "x", Sync: 7},
		{Dir: "x", SyncInterval: -time.Second},
	} {
		if _, err := Open(o); err == nil {
			t.Errorf("Open(%+v) succeeded", o)
		}
	}
}
