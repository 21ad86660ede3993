package metrics

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCycle is one sampling cycle of the default sets on this machine
// (its /proc, /sys and cgroups): CPU time and allocations per cycle.
//
//	go test -run '^$' -bench BenchmarkCycle -benchtime 200x -benchmem ./pipeline/metrics
func BenchmarkCycle(b *testing.B) {
	s, err := New(Config{Node: "bench"}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	t := time.Now()
	s.Collect(ctx, t) // the first sample only sets the counters' base
	events := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := range b.N {
		events = len(s.Collect(ctx, t.Add(time.Duration(i+1)*10*time.Second)))
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(events), "events/cycle")
}

// BenchmarkCycleContainers is the containers set alone over the fixture
// tree of two pods and three containers (cgroup v2, systemd driver).
func BenchmarkCycleContainers(b *testing.B) {
	s, err := New(Config{Node: "bench", Sets: []string{"containers"}, CgroupRoot: "testdata/cgroup/v2-systemd/t0"}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for i := range b.N {
		s.Collect(ctx, time.Unix(int64(i)*10, 0))
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}
