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
// service (a stack trace every 200 lines) from a fresh start, with the
// multiline rule off and with rule java in turn within every iteration (so
// that a load changing on a shared machine weighs on both alike), and
// reports file lines per CPU-second of the whole process for each and
// their ratio.
//
//	go test -run XXX -bench TailMultiline -benchtime 10x -count 5 ./pipeline/tail/
func BenchmarkTailMultiline(b *testing.B) {
	const lines = 200_000
	dir := b.TempDir()
	size := writeMixedCRIFile(b, filepath.Join(dir, "x.log"), lines)
	log := slog.New(slog.DiscardHandler)
	rules := []string{multiline.RuleNone, multiline.RuleJava}
	inputs := make([]Input, len(rules))
	for i, rule := range rules {
		spec, err := multiline.Compile(multiline.Config{Rule: rule, MaxBytes: 256 << 10})
		if err != nil {
			b.Fatal(err)
		}
		inputs[i] = Input{Name: "bench", Paths: []string{filepath.Join(dir, "*.log")}, Format: parse.FormatCRI,
			PollInterval: 20 * time.Millisecond, GlobInterval: time.Second, Multiline: spec}
	}
	cpu := make([]time.Duration, len(rules))
	events := make([]int, len(rules))
	total := 0
	b.SetBytes(2 * size)
	for i := 0; b.Loop(); i++ {
		for r, in := range inputs {
			st, err := checkpoint.Open(filepath.Join(b.TempDir(), fmt.Sprint(i, r)))
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
				events[r] += len(c.Recs)
				end = c.End
				m.Commit(c.File, c.End, c.Final)
				c.Release()
			}
			cpu[r] += cpuTime() - c0
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
		total += lines
	}
	off, java := float64(total)/cpu[0].Seconds(), float64(total)/cpu[1].Seconds()
	b.ReportMetric(off, "lines/cpu-s(off)")
	b.ReportMetric(java, "lines/cpu-s(java)")
	b.ReportMetric(java/off, "java/off")
	b.ReportMetric(float64(events[1])/float64(total), "events/line(java)")
}
