package wal

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestMemoryTailSameRecords reads the same records and positions with and
// without the memory tail, for a reader that follows the appends and for
// one that falls behind by more than the tail holds, across segments.
func TestMemoryTailSameRecords(t *testing.T) {
	for _, tc := range []struct {
		name   string
		memory int64
		lag    int // records appended before each read
	}{
		{"follows", 1 << 20, 1},
		{"behind", 2000, 40}, // a few records fit: the rest comes from the file
		{"tiny", 10, 3},      // nothing fits
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := openWAL(t, Options{SegmentBytes: 4 << 10, Sync: SyncNever})
			defer plain.Close()
			mem := openWAL(t, Options{SegmentBytes: 4 << 10, Sync: SyncNever, MemoryBytes: tc.memory})
			defer mem.Close()
			next := 0
			for i := range 300 {
				rec := payload(i)
				pp := mustAppend(t, plain, rec)
				mp := mustAppend(t, mem, bytes.Clone(rec))
				if pp.Segment != mp.Segment || pp.Offset != mp.Offset {
					t.Fatalf("record %d appended at %v and %v", i, pp, mp)
				}
				if (i+1)%tc.lag != 0 && i != 299 {
					continue
				}
				for ; next <= i; next++ {
					a, b := mustRead(t, plain, 1)[0], mustRead(t, mem, 1)[0]
					if a.pos != b.pos || !bytes.Equal(a.rec, b.rec) || !bytes.Equal(b.rec, payload(next)) {
						t.Fatalf("record %d: read %v %q from the file, %v %q with the memory tail", next, a.pos, a.rec, b.pos, b.rec)
					}
					if next%50 == 0 {
						if err := mem.Commit(b.pos); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if mem.memBytes != 0 || len(mem.mem) != 0 {
				t.Fatalf("memory tail holds %d records (%d bytes) after every record was read", len(mem.mem), mem.memBytes)
			}
		})
	}
}

// TestMemoryTailServesReads proves that Read returns a record from memory:
// the record's bytes in the file are damaged after the append, and Read
// still returns it whole. After a restart the memory is gone and the file
// is what counts: the damaged record is skipped, the others replayed.
func TestMemoryTailServesReads(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, Options{Dir: dir, MemoryBytes: 1 << 20})
	var pos []Pos
	for i := range 3 {
		pos = append(pos, mustAppend(t, w, payload(i)))
	}
	// Damage the middle record's payload on disk.
	seg := filepath.Join(dir, segmentName(pos[1].Segment))
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XXXX"), pos[0].Offset+headerSize+2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for i, g := range mustRead(t, w, 3) {
		if g.pos != pos[i] || !bytes.Equal(g.rec, payload(i)) {
			t.Fatalf("record %d: read %v %q, want %v %q", i, g.pos, g.rec, pos[i], payload(i))
		}
	}
	if err := w.Commit(pos[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// A crash or restart: what was not committed comes from the file.
	w = openWAL(t, Options{Dir: dir, MemoryBytes: 1 << 20})
	defer w.Close()
	if st := w.Stats(); st.Corrupt != 1 {
		t.Fatalf("reopened WAL reports %d damaged regions, want the 1 damaged record", st.Corrupt)
	}
	g := mustRead(t, w, 1)[0]
	if !bytes.Equal(g.rec, payload(2)) {
		t.Fatalf("after the restart read %q, want record 2 (record 1 is damaged on disk)", g.rec)
	}
}

// TestMemoryTailKeeps: what AppendKept keeps with a record comes back from
// ReadKept while the record is read from memory, and counts against
// MemoryBytes; what does not fit is dropped and the record kept alone (or
// not at all); a record read from its file, as after a restart, comes
// without it.
func TestMemoryTailKeeps(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := openWAL(t, Options{Dir: dir, Sync: SyncNever, MemoryBytes: 1000})
	type rec struct {
		data      []byte
		kept      any
		keptBytes int64
		want      any   // what ReadKept returns with it
		free      int64 // MemoryFree after the append
	}
	recs := []rec{
		{data: bytes.Repeat([]byte("a"), 100), kept: "first", keptBytes: 200, want: "first", free: 700},
		{data: bytes.Repeat([]byte("b"), 100), kept: "too big", keptBytes: 700, want: nil, free: 600}, // kept alone
		{data: bytes.Repeat([]byte("c"), 100), kept: 3, keptBytes: 500, want: 3, free: 0},
		{data: bytes.Repeat([]byte("d"), 10), kept: "no room", keptBytes: 1, want: nil, free: 0}, // from the file
	}
	for i, r := range recs {
		if _, err := w.AppendKept(ctx, r.data, r.kept, r.keptBytes); err != nil {
			t.Fatal(err)
		}
		if got := w.MemoryFree(); got != r.free {
			t.Fatalf("record %d: MemoryFree %d after the append, want %d", i, got, r.free)
		}
	}
	for i, r := range recs {
		_, data, kept, err := w.ReadKept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, r.data) || kept != r.want {
			t.Fatalf("record %d: read %q with %v, want %q with %v", i, data, kept, r.data, r.want)
		}
	}
	if got := w.MemoryFree(); got != 1000 || w.memBytes != 0 {
		t.Fatalf("MemoryFree %d (memBytes %d) once every record is read, want 1000", got, w.memBytes)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openWAL(t, Options{Dir: dir, Sync: SyncNever, MemoryBytes: 1000})
	defer w.Close()
	for i, r := range recs {
		_, data, kept, err := w.ReadKept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, r.data) || kept != nil {
			t.Fatalf("after a restart, record %d: read %q with %v, want %q alone", i, data, kept, r.data)
		}
	}
}

// TestMemoryTailCopiesBorrowed: a record appended with AppendBorrowed may
// be reused by the caller once Append returns: the memory tail keeps a
// copy, and Read returns the bytes appended.
func TestMemoryTailCopiesBorrowed(t *testing.T) {
	w := openWAL(t, Options{Sync: SyncNever, MemoryBytes: 1 << 20})
	defer w.Close()
	rec := bytes.Repeat([]byte("a"), 100)
	if _, err := w.AppendBorrowed(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if w.MemoryFree() != 1<<20-100 {
		t.Fatalf("MemoryFree %d: the record is not in the memory tail", w.MemoryFree())
	}
	copy(rec, "reused")
	if got := mustRead(t, w, 1)[0].rec; !bytes.Equal(got, bytes.Repeat([]byte("a"), 100)) {
		t.Fatalf("read %q, want the bytes appended", got)
	}
}
