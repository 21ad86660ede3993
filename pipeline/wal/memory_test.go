package wal

import (
	"bytes"
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
