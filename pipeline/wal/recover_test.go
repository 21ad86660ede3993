package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// written describes one record as it lies in its segment file.
type written struct {
	i          int
	pos        Pos
	path       string
	start, end int64
}

func (r written) size() int64 { return r.end - r.start }

func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patch(t, path, off, []byte{b[off] ^ 0x20})
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// TestDamage damages the segments of a closed WAL in the ways a crash or a
// bad disk does, and checks that Open repairs them without help: one
// warning naming the segment, offset and size of the damage, every intact
// record delivered in order, appends working, and a later Open quiet.
func TestDamage(t *testing.T) {
	// damage returns the index of the lost record (-1: none), and the
	// offset and size of the damaged region.
	type damage func(t *testing.T, recs []written) (lost int, r written, off, n int64)
	last := func(recs []written) written { return recs[len(recs)-1] }
	// middle is a record followed by another in the same segment, not in
	// the first segment.
	middle := func(recs []written) written {
		for i := 1; i < len(recs)-1; i++ {
			if recs[i].pos.Segment != recs[0].pos.Segment && recs[i+1].pos.Segment == recs[i].pos.Segment {
				return recs[i]
			}
		}
		panic("no record in the middle of a segment")
	}
	// endOfFirst is the last record of the first segment.
	endOfFirst := func(recs []written) written {
		for i := range recs {
			if recs[i+1].pos.Segment != recs[0].pos.Segment {
				return recs[i]
			}
		}
		panic("one segment only")
	}
	cases := []struct {
		name   string
		damage damage
	}{
		{"torn payload at the end", func(t *testing.T, recs []written) (int, written, int64, int64) {
			r := last(recs)
			truncate(t, r.path, r.start+headerSize+(r.size()-headerSize)/2)
			return r.i, r, r.start, headerSize + (r.size()-headerSize)/2
		}},
		{"torn header at the end", func(t *testing.T, recs []written) (int, written, int64, int64) {
			r := last(recs)
			truncate(t, r.path, r.start+5)
			return r.i, r, r.start, 5
		}},
		{"garbage appended", func(t *testing.T, recs []written) (int, written, int64, int64) {
			r := last(recs)
			appendBytes(t, r.path, bytes.Repeat([]byte("garbage!"), 20))
			return -1, r, r.end, 160
		}},
		{"zeros appended", func(t *testing.T, recs []written) (int, written, int64, int64) {
			r := last(recs)
			appendBytes(t, r.path, make([]byte, 4096))
			return -1, r, r.end, 4096
		}},
		{"flipped byte in the last payload", func(t *testing.T, recs []written) (int, written, int64, int64) {
			r := last(recs)
			flip(t, r.path, r.end-3)
			return r.i, r, r.start, r.size()
		}},
		{"flipped byte in a payload in the middle", func(t *testing.T, recs []written) (int, written, int64, int64) {
			r := middle(recs)
			flip(t, r.path, r.start+headerSize+1)
			return r.i, r, r.start, r.size()
		}},
		{"bad magic in the middle", func(t *testing.T, recs []written) (int, written, int64, int64) {
			r := middle(recs)
			flip(t, r.path, r.start)
			return r.i, r, r.start, r.size()
		}},
		{"huge length in the middle", func(t *testing.T, recs []written) (int, written, int64, int64) {
			r := middle(recs)
			patch(t, r.path, r.start+4, binary.LittleEndian.AppendUint32(nil, 0xfffffff0))
			return r.i, r, r.start, r.size()
		}},
		{"short length in the middle", func(t *testing.T, recs []written) (int, written, int64, int64) {
			r := middle(recs)
			patch(t, r.path, r.start+4, binary.LittleEndian.AppendUint32(nil, uint32(r.size()-headerSize-1)))
			return r.i, r, r.start, r.size()
		}},
		{"flipped checksum at the end of an earlier segment", func(t *testing.T, recs []written) (int, written, int64, int64) {
			r := endOfFirst(recs)
			flip(t, r.path, r.start+9)
			return r.i, r, r.start, r.size()
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, SegmentBytes: 1024, Sync: SyncNever}
			w := openWAL(t, opts)
			var recs []written
			for i := range 14 {
				p := mustAppend(t, w, payload(i))
				recs = append(recs, written{i: i, pos: p, path: filepath.Join(dir, segmentName(p.Segment)),
					start: p.Offset - headerSize - int64(len(payload(i))), end: p.Offset})
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if recs[0].pos.Segment == last(recs).pos.Segment {
				t.Fatal("the records must span several segments")
			}

			lost, r, off, n := c.damage(t, recs)
			log, lb := newLogger()
			opts.Logger = log
			w = openWAL(t, opts)
			ws := lb.Lines("level=WARN")
			if len(ws) != 1 {
				t.Fatalf("warnings = %q, want one", ws)
			}
			for _, want := range []string{r.path, fmt.Sprintf("offset=%d ", off), fmt.Sprintf("bytes=%d ", n)} {
				if !strings.Contains(ws[0], want) {
					t.Errorf("warning %q does not say %q", ws[0], want)
				}
			}
			if st := w.Stats(); st.Corrupt != 1 || st.CorruptBytes != n {
				t.Errorf("Stats = %+v, want one damaged region of %d bytes", st, n)
			}
			var want []int
			for i := range recs {
				if i != lost {
					want = append(want, i)
				}
			}
			if st := w.Stats(); st.UnreadRecords != uint64(len(want)) {
				t.Errorf("Stats.UnreadRecords = %d, want %d", st.UnreadRecords, len(want))
			}
			got := mustRead(t, w, len(want))
			for k, g := range got {
				if !bytes.Equal(g.rec, payload(want[k])) {
					t.Fatalf("record %d = %.20q…, want record %d", k, g.rec, want[k])
				}
			}
			expectNoRecord(t, w)
			if n := len(lb.Lines("level=WARN")); n != 1 {
				t.Fatalf("Read warned again about the damage Open reported (%d warnings)", n)
			}

			// Appending goes on; once everything is committed a reopen is
			// quiet and empty.
			mustAppend(t, w, []byte("after"))
			g := mustRead(t, w, 1)[0]
			if string(g.rec) != "after" {
				t.Fatalf("Read = %q", g.rec)
			}
			if err := w.Commit(g.pos); err != nil {
				t.Fatal(err)
			}
			w.Close()
			log, lb = newLogger()
			opts.Logger = log
			w = openWAL(t, opts)
			defer w.Close()
			if ws := lb.Lines("level=WARN"); len(ws) != 0 {
				t.Fatalf("warnings on the next Open: %q", ws)
			}
			expectNoRecord(t, w)
		})
	}
}

// TestTailTruncatedOnce: Open cuts a torn tail off, so the next Open does
// not report it again.
func TestTailTruncatedOnce(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Sync: SyncNever}
	w := openWAL(t, opts)
	for i := range 3 {
		mustAppend(t, w, payload(i))
	}
	w.Close()
	seg := segmentFiles(t, dir)[0]
	appendBytes(t, seg, []byte("torn"))
	for round := range 2 {
		log, lb := newLogger()
		opts.Logger = log
		w := openWAL(t, opts)
		if n := len(lb.Lines("level=WARN")); n != 1-round {
			t.Fatalf("round %d: %d warnings", round, n)
		}
		for i, g := range mustRead(t, w, 3) {
			if !bytes.Equal(g.rec, payload(i)) {
				t.Fatalf("round %d: record %d = %.20q…", round, i, g.rec)
			}
		}
		w.Close()
	}
}

func TestSegmentNames(t *testing.T) {
	for _, c := range []struct {
		name string
		id   uint64
		ok   bool
	}{
		{segmentName(1), 1, true},
		{segmentName(1<<64 - 1), 1<<64 - 1, true},
		{"000000000000000A.seg", 0, false},
		{"0000000000000001.seg.tmp", 0, false},
		{"1.seg", 0, false},
		{commitName, 0, false},
	} {
		id, ok := parseSegmentName(c.name)
		if id != c.id || ok != c.ok {
			t.Errorf("parseSegmentName(%q) = %d %v", c.name, id, ok)
		}
	}
	names := []string{segmentName(10), segmentName(2), segmentName(0xff)}
	slices.Sort(names)
	if names[0] != segmentName(2) || names[2] != segmentName(0xff) {
		t.Errorf("segment names do not sort by number: %v", names)
	}
}
