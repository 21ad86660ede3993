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
	"sync/atomic"
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
