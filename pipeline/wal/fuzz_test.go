package wal

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzSegmentReader opens a WAL whose only segment holds arbitrary bytes,
// behind a valid commit file at its start. Open must succeed, every record
// read must be one that lies whole in those bytes with a matching checksum,
// in order, and the WAL must go on working.
func FuzzSegmentReader(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeRecords([]byte("one record")))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segmentName(1)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, commitName), encodeCommit(committed{segment: 1}), 0o644); err != nil {
			t.Fatal(err)
		}
		opts := Options{Dir: dir, Sync: SyncNever, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		w, err := Open(opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer w.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		n := w.Stats().UnreadRecords
		prevEnd := int64(0)
		for i := range n {
			p, rec, err := w.Read(ctx)
			if err != nil {
				t.Fatalf("Read %d of %d: %v", i+1, n, err)
			}
			start := p.Offset - headerSize - int64(len(rec))
			if p.Segment != 1 || p.Seq != i+1 || start < prevEnd || p.Offset > int64(len(data)) {
				t.Fatalf("record %d at %v (%d bytes) after offset %d, in %d bytes of data", i, p, len(rec), prevEnd, len(data))
			}
			h := data[start : start+headerSize]
			if binary.LittleEndian.Uint32(h) != recordMagic ||
				binary.LittleEndian.Uint32(h[4:]) != uint32(len(rec)) ||
				binary.LittleEndian.Uint32(h[8:]) != checksum(rec) ||
				string(data[start+headerSize:p.Offset]) != string(rec) {
				t.Fatalf("record %d at %v is not a valid record of the data", i, p)
			}
			prevEnd = p.Offset
		}
		if st := w.Stats(); st.UnreadRecords != 0 {
			t.Fatalf("after reading the %d records Open counted: %+v", n, st)
		}

		p, err := w.Append(ctx, []byte("after"))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		q, rec, err := w.Read(ctx)
		if err != nil || q != p || string(rec) != "after" {
			t.Fatalf("Read = %v %q %v, want %v", q, rec, err, p)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}

		// Recovery is stable: a second Open finds the same records, plus
		// the one appended, and no new damage.
		first := w.Stats()
		w2, err := Open(opts)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		defer w2.Close()
		if st := w2.Stats(); st.UnreadRecords != n+1 || st.CorruptBytes > first.CorruptBytes {
			t.Fatalf("second Open: %+v, first: %+v", st, first)
		}
	})
}

// encodeRecords returns the bytes of a segment holding payloads.
func encodeRecords(payloads ...[]byte) []byte {
	var b []byte
	for _, p := range payloads {
		h := make([]byte, headerSize)
		putHeader(h, p)
		b = append(append(b, h...), p...)
	}
	return b
}
