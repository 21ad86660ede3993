package tail

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	"github.com/ferrylogs/ferry/pipeline/multiline"
	"github.com/ferrylogs/ferry/pipeline/parse"
)

// writeMixedCRIFile writes n CRI lines of a Java service: log lines of
// about 120 bytes, with a 12-line stack trace (on stderr, after an ERROR
// line) every 200 lines. It ends in a log line on stderr, so no group
// stays open.
func writeMixedCRIFile(b *testing.B, path string, n int) int64 {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	ts := "2024-05-01T12:00:00.123456789Z"
	for i := 0; i < n; {
		if i%200 == 199 && n-i > 20 {
			fmt.Fprintf(w, "%s stderr F 2024-05-01 12:00:00.123 ERROR 1 --- [exec-%d] c.e.OrderController : request failed\n", ts, i)
			fmt.Fprintf(w, "%s stderr F java.lang.IllegalStateException: order %d\n", ts, i)
			for k := 0; k < 8; k++ {
				fmt.Fprintf(w, "%s stderr F \tat com.example.shop.OrderService.step%d(OrderService.java:%d) ~[classes/:na]\n", ts, k, 80+k)
			}
			fmt.Fprintf(w, "%s stderr F Caused by: java.sql.SQLException: duplicate key\n", ts)
			fmt.Fprintf(w, "%s stderr F \t... 12 more\n", ts)
			i += 12
			continue
		}
		stream := "stdout"
		if i == n-1 {
			stream = "stderr" // ends the last trace's group
		}
		fmt.Fprintf(w, "%s %s F 2024-05-01 12:00:00.123  INFO 1 --- [exec-%d] c.e.OrderController : GET /api/v1/orders/%07d 200 1.23ms\n", ts, stream, i%16, i)
		i++
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

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTailMultiline reads one file of 200k CRI lines of a Java
// service (a stack trace every 200 lines) from a fresh start per
// iteration, with the multiline rule off and with rule java, and reports
// file lines per CPU-second of the whole process.
//
//	go test -run XXX -bench TailMultiline -benchtime 10x ./pipeline/tail/
func BenchmarkTailMultiline(b *testing.B) {
	const lines = 200_000
	dir := b.TempDir()
	size := writeMixedCRIFile(b, filepath.Join(dir, "x.log"), lines)
	for _, rule := range []string{multiline.RuleNone, multiline.RuleJava} {
		b.Run("rule="+rule, func(b *testing.B) {
			spec, err := multiline.Compile(multiline.Config{Rule: rule, MaxBytes: 256 << 10})
			if err != nil {
				b.Fatal(err)
			}
			in := Input{Name: "bench", Paths: []string{filepath.Join(dir, "*.log")}, Format: parse.FormatCRI,
				PollInterval: 20 * time.Millisecond, GlobInterval: time.Second, Multiline: spec}
			log := slog.New(slog.DiscardHandler)
			var cpu time.Duration
			var total, events int
			b.SetBytes(size)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				st, err := checkpoint.Open(filepath.Join(b.TempDir(), fmt.Sprint(i)))
				if err != nil {
					b.Fatal(err)
				}
				m := NewManager([]Input{in}, st, nil, log)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				c0 := cpuTime()
				go func() { done <- m.Run(ctx) }()
				for end := int64(0); end < size; {
					c := <-m.Chunks()
					events += len(c.Recs)
					end = c.End
					m.Commit(c.File, c.End, c.Final)
					c.Release()
				}
				cpu += cpuTime() - c0
				total += lines
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(total)/cpu.Seconds(), "lines/cpu-s")
			b.ReportMetric(float64(events)/float64(total), "events/line")
		})
	}
}
