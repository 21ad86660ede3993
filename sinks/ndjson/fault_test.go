package ndjson

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/internal/testlog"
	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// diskFull writes to f until room bytes are used up, then fails with
// ENOSPC, having written what fitted (as write(2) does on a full disk).
type diskFull struct {
	f    *os.File
	room int
}

func (d *diskFull) Write(p []byte) (int, error) {
	if len(p) <= d.room {
		n, err := d.f.Write(p)
		d.room -= n
		return n, err
	}
	n, err := d.f.Write(p[:d.room])
	d.room -= n
	if err != nil {
		return n, err
	}
	return n, &fs.PathError{Op: "write", Path: d.f.Name(), Err: syscall.ENOSPC}
}

func batch(first, n int) *event.Batch {
	b := &event.Batch{Node: "node-f"}
	for i := first; i < first+n; i++ {
		b.Events = append(b.Events, &ferryv1.Event{
			Id:           event.ID(nil, "node-f", "f1", int64(i)),
			TimeUnixNano: time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC).UnixNano(),
			Message:      []byte(fmt.Sprintf("line %d", i)),
			Source:       &ferryv1.Source{Path: "/var/log/app.log", Offset: int64(i), Input: "files"},
			Kind:         ferryv1.Kind_KIND_LOG,
		})
	}
	return b
}

// checkLines checks that the file holds the messages "line 0" … "line
// n-1", each once, in order, every line a complete JSON document.
func checkLines(t *testing.T, path string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("file ends in a torn line: %q", data[max(0, len(data)-60):])
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	i := 0
	for sc.Scan() {
		var doc struct{ Message string }
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatalf("line %d is not a JSON document: %v: %.80q", i+1, err, sc.Text())
		}
		if want := fmt.Sprintf("line %d", i); doc.Message != want {
			t.Fatalf("line %d: message %q, want %q (a document written twice or lost)", i+1, doc.Message, want)
		}
		i++
	}
	if i != n {
		t.Errorf("%d lines, want %d", i, n)
	}
}

// Issue 19, case 5: a write that fails part way through a batch (a full
// disk) is cut back off the file, so the batch's retry writes each of its
// documents once, after a complete line.
func TestFailedWriteIsCutOff(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "out.ndjson")
	s, err := NewFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.Write(ctx, batch(0, 10)); err != nil {
		t.Fatal(err)
	}
	// The next batch finds room for two and a half documents of its 20.
	one, _ := os.Stat(path)
	full := &diskFull{f: s.f, room: int(one.Size()) / 10 * 5 / 2}
	s.w = full
	for range 2 { // the second attempt finds no room at all
		_, err = s.Write(ctx, batch(10, 20))
		if err == nil {
			t.Fatal("Write on a full disk succeeded")
		}
		if !strings.Contains(err.Error(), "no space left on device") || strings.Count(err.Error(), path) != 1 {
			t.Errorf("error %q: want one naming %s once and the cause", err, path)
		}
		checkLines(t, path, 10)
	}
	full.room = 1 << 30 // room again
	if _, err := s.Write(ctx, batch(10, 20)); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if _, err := s.Write(ctx, batch(30, 5)); err != nil {
		t.Fatal(err)
	}
	checkLines(t, path, 35)
}

// A torn last line left by a crash is cut off when the sink opens the
// file, with a warning; the documents before it stay.
func TestTornLastLineCutAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "out.ndjson")
	s, err := NewFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(ctx, batch(0, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"@timestamp":"202`) // the crash
	f.Close()

	logs := &testlog.Buffer{}
	s, err = NewFile(path, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(ctx, batch(3, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkLines(t, path, 5)
	if out := logs.String(); !strings.Contains(out, "torn last line") || !strings.Contains(out, "bytes=18") {
		t.Errorf("no warning naming the 18 bytes cut off:\n%s", out)
	}

	// A file of one torn line only is emptied.
	os.WriteFile(path, []byte(`{"a":`), 0o644)
	s, err = NewFile(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Errorf("size %d after cutting the only, torn, line", fi.Size())
	}
}
