package wal

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkAppend appends 64 KiB records while a reader drains and commits
// them, as the aggregator's sink loop would, so that the directory stays
// bounded. MB/s and appends/s count appends only.
func BenchmarkAppend(b *testing.B) {
	rec := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rec {
		rec[i] = byte(r.UintN(256))
	}
	for _, c := range []struct {
		name     string
		sync     SyncPolicy
		parallel bool
	}{
		{"SyncNever", SyncNever, false},
		{"SyncInterval/parallel", SyncInterval, true},
		{"SyncAlways", SyncAlways, false},
		{"SyncAlways/parallel", SyncAlways, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			w := openWAL(b, Options{Sync: c.sync})
			defer w.Close()
			stop := drain(w)
			defer stop()
			b.SetBytes(int64(len(rec)))
			b.ResetTimer()
			start := time.Now()
			if c.parallel {
				b.SetParallelism(16) // 16 goroutines per CPU: many agents' batches in flight
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						appendRetry(b, w, rec)
					}
				})
			} else {
				for range b.N {
					appendRetry(b, w, rec)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
			b.ReportMetric(float64(w.Stats().Syncs)/float64(b.N), "fsyncs/append")
			b.StopTimer()
		})
	}
}

func appendRetry(b *testing.B, w *WAL, rec []byte) {
	for {
		_, err := w.Append(context.Background(), rec)
		if !errors.Is(err, ErrFull) {
			if err != nil {
				b.Error(err)
			}
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// drain reads and commits every 64th record until stop is called.
func drain(w *WAL) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			p, _, err := w.Read(ctx)
			if err != nil {
				return
			}
			if n%64 == 0 {
				w.Commit(p)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// BenchmarkRead reads back 256 KiB records (a batch of about 2,000 events)
// right after their Append, as the buffer's delivery loop does: from the
// memory tail, or from the file (pread, a new buffer, the CRC). One op is
// one record appended and read: the difference between the two is the
// read.
func BenchmarkRead(b *testing.B) {
	rec := make([]byte, 256<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rec {
		rec[i] = byte(r.UintN(256))
	}
	for _, c := range []struct {
		name   string
		memory int64
	}{{"memory", 8 << 20}, {"file", 0}} {
		b.Run(c.name, func(b *testing.B) {
			w := openWAL(b, Options{Sync: SyncNever, MemoryBytes: c.memory})
			defer w.Close()
			ctx := context.Background()
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if _, err := w.Append(ctx, rec); err != nil {
					b.Fatal(err)
				}
				p, _, err := w.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if n++; n%64 == 0 {
					if err := w.Commit(p); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
