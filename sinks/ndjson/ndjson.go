// Package ndjson is the file and stdout sink: one JSON document (the same
// one Elasticsearch gets) per line, written with one write call per batch.
//
// The file holds complete lines only, as far as the sink can see to it: a
// write that fails part way (a full disk writes what fits, then fails) is
// cut back off the file, to the end of the last batch written whole, so the
// retry of that batch writes each of its documents once, after a complete
// line. When the file cannot be cut, the sink refuses every batch until it
// can. Opening the file drops a torn last line (no newline at its end: the
// process died in the middle of a write; that batch was not acknowledged
// and comes again). The file belongs to the sink: another writer appending
// to it could see its bytes cut off after a failed write.
package ndjson

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/sinks"
)

// Sink appends documents to a writer.
type Sink struct {
	mu     sync.Mutex
	w      io.Writer
	f      *os.File // nil for stdout
	name   string
	buf    []byte
	closed bool
	// size is where the next batch starts: the end of the last batch
	// written whole. Valid when cut is set.
	size int64
	// cut: f is a regular file, which a failed write is cut back to size.
	cut bool
	// torn: a failed write left bytes after size that could not be cut
	// off yet; the next Write cuts them first, and fails if it cannot.
	torn bool
}

// NewFile opens (creating, appending) the file at path. A batch is written
// with one write call before it is acknowledged, so an acknowledged batch
// survives a crash of the aggregator. A torn last line left by an earlier
// crash is cut off, with a warning to log (nil: slog.Default()).
func NewFile(path string, log *slog.Logger) (*Sink, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("file sink: %w", err) // "mkdir DIR: …"
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err) // "open PATH: …"
	}
	s := &Sink{w: f, f: f, name: path}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file sink: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return s, nil // /dev/null, a pipe: nothing to cut
	}
	end, err := lastLineEnd(path, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file sink: %w", err)
	}
	if end < fi.Size() {
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("file sink: cut the torn last line: %w", err)
		}
		log.Warn("file sink: cut off a torn last line (a write cut short by a crash; its batch was not acknowledged and is sent again)",
			"path", path, "offset", end, "bytes", fi.Size()-end)
	}
	s.size, s.cut = end, true
	return s, nil
}

// lastLineEnd returns the offset just past the last newline among the
// first size bytes of the file at path (0 if there is none).
func lastLineEnd(path string, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	r, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		n := min(int64(len(buf)), end)
		if _, err := r.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

// NewWriter writes to w (stdout).
func NewWriter(name string, w io.Writer) *Sink { return &Sink{w: w, name: name} }

// Write implements sinks.Sink.
func (s *Sink) Write(ctx context.Context, b *event.Batch) (sinks.Result, error) {
	if err := ctx.Err(); err != nil {
		return sinks.Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sinks.Result{}, fmt.Errorf("%s: sink closed", s.name)
	}
	if s.torn {
		if err := s.cutBack(); err != nil {
			return sinks.Result{}, err
		}
	}
	enc := event.NewDocumentEncoder(b, time.Now())
	buf := s.buf[:0]
	for i := range b.Events {
		buf = enc.Append(buf, i)
		buf = append(buf, '\n')
	}
	if cap(buf) <= 8<<20 {
		s.buf = buf
	}
	if _, err := s.w.Write(buf); err != nil {
		err = fmt.Errorf("file sink: %w", pathError("write", s.name, err))
		if s.cut {
			s.torn = true
			if cerr := s.cutBack(); cerr != nil {
				return sinks.Result{}, errors.Join(err, cerr)
			}
		}
		return sinks.Result{}, err
	}
	s.size += int64(len(buf))
	return sinks.Result{Delivered: len(b.Events)}, nil
}

// cutBack cuts what a failed write left after the last batch written whole.
// Called with mu held.
func (s *Sink) cutBack() error {
	if err := s.f.Truncate(s.size); err != nil {
		return fmt.Errorf("file sink: cut a partly written batch off the end: %w (batches are refused until it can be cut)", err)
	}
	s.torn = false
	return nil
}

// pathError returns err naming op and path once: as it is when it is an
// *fs.PathError of path already ("write /out/e.ndjson: no space left on
// device"), else wrapped with them.
func pathError(op, path string, err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) && pe.Path == path {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// Close syncs and closes the file; it is safe to call twice.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.f == nil {
		s.closed = true
		return nil
	}
	s.closed = true
	if fi, err := s.f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return s.f.Close() // /dev/null, a pipe: nothing to fsync
	}
	if err := s.f.Sync(); err != nil {
		s.f.Close()
		return fmt.Errorf("file sink: %w", err) // "sync PATH: …"
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	return nil
}
