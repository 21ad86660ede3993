package tail

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	"github.com/ferrylogs/ferry/pipeline/parse"
)

// writeCRIFile writes n CRI events of about 120 bytes each, every tenth
// split into a P and an F line, and returns the file's size.
func writeCRIFile(b *testing.B, path string, n int) int64 {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	ts := "2024-05-01T12:00:00.123456789Z"
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf(`level=info caller=handler.go:87 msg="GET /api/v1/orders/%07d 200" dur=1.23ms`, i)
		if i%10 == 0 {
			half := len(msg) / 2
			fmt.Fprintf(w, "%s stdout P %s\n%s stdout F %s\n", ts, msg[:half], ts, msg[half:])
		} else {
			fmt.Fprintf(w, "%s stdout F %s\n", ts, msg)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	return fi.Size()
}

// BenchmarkTailCRI reads one file of 200k CRI lines from a fresh start per
// iteration, with a consumer that commits and releases every chunk.
func BenchmarkTailCRI(b *testing.B) {
	const lines = 200_000
	dir := b.TempDir()
	size := writeCRIFile(b, filepath.Join(dir, "x.log"), lines)
	log := slog.New(slog.DiscardHandler)
	in := Input{Name: "bench", Paths: []string{filepath.Join(dir, "*.log")}, Format: parse.FormatCRI,
		PollInterval: 20 * time.Millisecond, GlobInterval: time.Second}

	var total int
	var elapsed time.Duration
	var ms0, ms1 runtime.MemStats
	b.SetBytes(size)
	b.ReportAllocs()
	runtime.ReadMemStats(&ms0)
	for i := 0; b.Loop(); i++ {
		st, err := checkpoint.Open(filepath.Join(b.TempDir(), fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		m := NewManager([]Input{in}, st, nil, log)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- m.Run(ctx) }()
		got := 0
		for got < lines {
			c := <-m.Chunks()
			got += len(c.Recs)
			m.Commit(c.File, c.End, c.Final)
			c.Release()
		}
		elapsed += time.Since(start)
		total += got
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if got != lines {
			b.Fatalf("%d events, want %d", got, lines)
		}
	}
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(total), "allocs/line")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(total), "B/line")
}

// BenchmarkTailBackpressure reads 20 files of 20k CRI lines at once into a
// consumer slower than the followers (one goroutine that commits every
// chunk and copies its messages, as the shipper does), so that followers
// wait for it with chunks full: what they hold and allocate meanwhile
// shows in B/line and allocs/line (see follower.rewind and readWant).
func BenchmarkTailBackpressure(b *testing.B) {
	const files, lines = 20, 20_000
	dir := b.TempDir()
	var size int64
	for i := range files {
		size += writeCRIFile(b, filepath.Join(dir, fmt.Sprintf("x%02d.log", i)), lines)
	}
	log := slog.New(slog.DiscardHandler)
	in := Input{Name: "bench", Paths: []string{filepath.Join(dir, "*.log")}, Format: parse.FormatCRI,
		PollInterval: 20 * time.Millisecond, GlobInterval: time.Second}

	var total int
	var elapsed time.Duration
	var ms0, ms1 runtime.MemStats
	b.SetBytes(size)
	b.ReportAllocs()
	runtime.ReadMemStats(&ms0)
	copied := make([]byte, 0, 1<<20)
	for i := 0; b.Loop(); i++ {
		st, err := checkpoint.Open(filepath.Join(b.TempDir(), fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		m := NewManager([]Input{in}, st, nil, log)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- m.Run(ctx) }()
		got := 0
		for got < files*lines {
			c := <-m.Chunks()
			got += len(c.Recs)
			for j := range c.Recs {
				if len(copied)+len(c.Message(&c.Recs[j])) > cap(copied) {
					copied = copied[:0]
				}
				copied = append(copied, c.Message(&c.Recs[j])...)
			}
			m.Commit(c.File, c.End, c.Final)
			c.Release()
		}
		elapsed += time.Since(start)
		total += got
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if got != files*lines {
			b.Fatalf("%d events, want %d", got, files*lines)
		}
	}
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(total), "allocs/line")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(total), "B/line")
}
