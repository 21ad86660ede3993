package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/ops"
	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/wal"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
	"github.com/ferrylogs/ferry/sinks/buffer"
)

// accept is the sink behind the buffers: it takes everything.
type accept struct{}

func (accept) Write(_ context.Context, b *event.Batch) (sinks.Result, error) {
	return sinks.Result{Delivered: len(b.Events)}, nil
}
func (accept) Close(context.Context) error { return nil }

func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestReadyzReportsFailedBuffer: the aggregator's /readyz, served by the
// real health server over HTTP, turns 503 with the reason once a sink's
// disk buffer fails (a real fault: its directory is removed, so its next
// segment cannot be created), names only the failed buffer, and reports
// draining as well; /stats counts the failed buffers.
func TestReadyzReportsFailedBuffer(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := t.TempDir()
	bc := config.Buffer{Dir: base, SegmentBytes: 64 << 10, Sync: "always"}
	var bufs []diskBuffer
	for _, name := range []string{"es", "archive"} {
		s, err := withBuffer(accept{}, config.Sink{Name: name, Buffer: "disk"}, bc, log)
		if err != nil {
			t.Fatal(err)
		}
		buf := s.(*buffer.Sink)
		defer buf.Close(context.Background())
		bufs = append(bufs, diskBuffer{name: name, buf: buf})
	}
	var draining atomic.Bool
	h, err := ops.StartHealth("127.0.0.1:0", ops.Checks{Live: liveness(bufs), Ready: readiness(func() bool { return !draining.Load() }, bufs)}, func() map[string]uint64 {
		m := map[string]uint64{}
		addBufferStats(m, bufs)
		return m
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())

	failES := func(t *testing.T) {
		if err := os.RemoveAll(filepath.Join(base, "es")); err != nil {
			t.Fatal(err)
		}
		b := &event.Batch{Node: "n1"}
		for i := range 20 {
			b.Events = append(b.Events, &ferryv1.Event{Id: event.ID(nil, "n1", "f", int64(i)), Message: bytes.Repeat([]byte("x"), 1000)})
		}
		var err error
		for seq := uint64(1); seq < 1000 && err == nil; seq++ {
			b.Seq = seq
			_, err = bufs[0].buf.Write(context.Background(), b)
		}
		if !errors.Is(err, wal.ErrFailed) {
			t.Fatalf("Write to the buffer without a directory: %v, want wal.ErrFailed", err)
		}
	}
	failure := fmt.Sprintf("buffer es: wal: failed: create segment: open %s: no such file or directory",
		filepath.Join(base, "es", "0000000000000002.seg"))

	if code, body := httpGet(t, h.Addr(), "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d %q before any failure", code, body)
	}
	// Steps, in order: a failed buffer stays failed.
	steps := []struct {
		name       string
		do         func(t *testing.T)
		wantCode   int
		wantBody   string
		wantFailed string // the ferry_aggregator_buffers_failed line of /stats
	}{
		{"healthy", func(*testing.T) {}, http.StatusOK, "ready\n", "ferry_aggregator_buffers_failed 0\n"},
		{"buffer es failed", failES, http.StatusServiceUnavailable, "not ready: " + failure + "\n", "ferry_aggregator_buffers_failed 1\n"},
		{"and draining", func(*testing.T) { draining.Store(true) }, http.StatusServiceUnavailable,
			"not ready: draining: the aggregator is shutting down\n" + failure + "\n", "ferry_aggregator_buffers_failed 1\n"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			if code, body := httpGet(t, h.Addr(), "/readyz"); code != st.wantCode || body != st.wantBody {
				t.Fatalf("/readyz = %d %q, want %d %q", code, body, st.wantCode, st.wantBody)
			}
			if _, body := httpGet(t, h.Addr(), "/stats"); !strings.Contains(body, st.wantFailed) {
				t.Fatalf("/stats = %q, want %q", body, st.wantFailed)
			}
		})
	}
	// The failed buffer delivers what it holds (the sink takes everything);
	// then /healthz asks for a restart, naming it. The healthy one does not.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := httpGet(t, h.Addr(), "/healthz")
		if code == http.StatusServiceUnavailable {
			want := "unhealthy: buffer es failed and holds nothing more to deliver: restart to recover: " + strings.TrimPrefix(failure, "buffer es: ") + "\n"
			if body != want {
				t.Fatalf("/healthz = %q, want %q", body, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still %d %q with the failed buffer drained (pending %d)", code, body, bufs[0].buf.Stats().PendingRecords)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gated is a sink that takes nothing until open is closed.
type gated struct{ open chan struct{} }

func (g gated) Write(ctx context.Context, b *event.Batch) (sinks.Result, error) {
	select {
	case <-g.open:
		return sinks.Result{Delivered: len(b.Events)}, nil
	case <-ctx.Done():
		return sinks.Result{}, ctx.Err()
	}
}
func (gated) Close(context.Context) error { return nil }

// TestReadyzReportsFullBuffer (issue 19, case 6): while a disk buffer
// refuses batches for lack of room, /readyz says "buffer full", naming it;
// once the batches it holds are delivered, its segment (the default 64 MiB,
// so it never rolled) is reclaimed and it is ready again and takes batches.
// The disk is full for real: RLIMIT_FSIZE makes the segment's writes past
// 256 KiB fail with EFBIG (the Go runtime ignores SIGXFSZ).
func TestReadyzReportsFullBuffer(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := make(chan struct{})
	s, err := withBuffer(gated{open}, config.Sink{Name: "es", Buffer: "disk"}, config.Buffer{Dir: t.TempDir(), Sync: "always"}, log)
	if err != nil {
		t.Fatal(err)
	}
	buf := s.(*buffer.Sink)
	var once sync.Once
	release := func() { once.Do(func() { close(open) }) }
	defer func() {
		release() // Close delivers what the buffer holds
		buf.Close(context.Background())
	}()
	bufs := []diskBuffer{{name: "es", buf: buf}}
	h, err := ops.StartHealth("127.0.0.1:0", ops.Checks{Live: liveness(bufs), Ready: readiness(func() bool { return true }, bufs)}, func() map[string]uint64 {
		m := map[string]uint64{}
		addBufferStats(m, bufs)
		return m
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 256 << 10, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)

	b := &event.Batch{Node: "n1"}
	for i := range 10 {
		b.Events = append(b.Events, &ferryv1.Event{Id: event.ID(nil, "n1", "f", int64(i)), Message: bytes.Repeat([]byte("x"), 1000)})
	}
	written := 0
	for ; written < 1000; written++ {
		b.Seq = uint64(written + 1)
		if _, err = buf.Write(context.Background(), b); err != nil {
			break
		}
	}
	if !errors.Is(err, buffer.ErrFull) || !strings.Contains(err.Error(), "file too large") {
		t.Fatalf("Write past RLIMIT_FSIZE: %v, want buffer.ErrFull (EFBIG)", err)
	}
	want := "not ready: buffer full: buffer es has no room on its disk; batches are refused until the ones it holds are delivered\n"
	if code, body := httpGet(t, h.Addr(), "/readyz"); code != http.StatusServiceUnavailable || body != want {
		t.Fatalf("/readyz = %d %q, want 503 %q", code, body, want)
	}
	if _, body := httpGet(t, h.Addr(), "/stats"); !strings.Contains(body, "ferry_aggregator_buffers_full 1\n") {
		t.Fatalf("/stats = %q, want ferry_aggregator_buffers_full 1", body)
	}
	if code, body := httpGet(t, h.Addr(), "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d %q: a full disk is no reason to restart", code, body)
	}

	release() // the sink takes the batches: their space comes back
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := httpGet(t, h.Addr(), "/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %q after the buffer delivered everything: %+v", code, body, buf.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range written { // as many again: the space is back
		b.Seq = uint64(written + 1 + i)
		if _, err := buf.Write(context.Background(), b); err != nil {
			t.Fatalf("Write %d of %d after the reclaim: %v", i+1, written, err)
		}
	}
}
