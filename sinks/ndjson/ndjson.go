// Package ndjson is the file and stdout sink: one JSON document (the same
// one Elasticsearch gets) per line, written with one write call per batch.
package ndjson

import (
	"context"
	"fmt"
	"io"
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
}

// NewFile opens (creating, appending) the file at path. A batch is written
// with one write call before it is acknowledged, so an acknowledged batch
// survives a crash of the aggregator.
func NewFile(path string) (*Sink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("file sink: create dir of %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file sink: open %s: %w", path, err)
	}
	return &Sink{w: f, f: f, name: path}, nil
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
	now := time.Now()
	buf := s.buf[:0]
	for _, e := range b.Events {
		buf = event.AppendDocument(buf, b.Node, e, now)
		buf = append(buf, '\n')
	}
	if cap(buf) <= 8<<20 {
		s.buf = buf
	}
	if _, err := s.w.Write(buf); err != nil {
		return sinks.Result{}, fmt.Errorf("write %s: %w", s.name, err)
	}
	return sinks.Result{Delivered: len(b.Events)}, nil
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
		return fmt.Errorf("fsync %s: %w", s.name, err)
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.name, err)
	}
	return nil
}
