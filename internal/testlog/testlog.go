// Package testlog keeps what a test's components log, safe for concurrent
// writers, so that the test can look at it and show it when it fails.
package testlog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Buffer collects log output; writes may come from any goroutine, also
// after the test ended.
type Buffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	from int // Lines and Count look at buf[from:]
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Reset makes Lines and Count look only at what is written after it; String
// (and the log shown when the test fails) still has everything.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.from = b.buf.Len()
}

// Lines returns the lines written so far (since the last Reset) that contain sub.
func (b *Buffer) Lines(sub string) []string {
	b.mu.Lock()
	text := b.buf.String()[b.from:]
	b.mu.Unlock()
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return out
}

// Count returns how many lines written so far contain sub.
func (b *Buffer) Count(sub string) int { return len(b.Lines(sub)) }

// New returns a debug-level text logger writing to a new Buffer, which is
// printed, headed by name, if t fails.
func New(t testing.TB, name string) (*slog.Logger, *Buffer) {
	b := &Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}
