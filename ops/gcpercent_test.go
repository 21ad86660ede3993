package ops

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

// restoreGC puts the collector's percentage and soft limit back as they
// were when the test ends.
func restoreGC(t *testing.T) {
	t.Helper()
	percent := debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

func TestApplyGCPercent(t *testing.T) {
	cases := []struct {
		name, gogc string
		want       int // the runtime's percentage afterwards, -2: unchanged
		wantFrom   string
		wantResult int
	}{
		{"default", "", 300, "default", 300},
		{"GOGC wins", "150", -2, "GOGC", 150},
		{"GOGC off", "off", -2, "GOGC", -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			restoreGC(t)
			t.Setenv("GOGC", c.gogc)
			before := debug.SetGCPercent(77)
			debug.SetGCPercent(before)
			got, from := ApplyGCPercent(300)
			if got != c.wantResult || from != c.wantFrom {
				t.Errorf("ApplyGCPercent = %d, %q; want %d, %q", got, from, c.wantResult, c.wantFrom)
			}
			now := debug.SetGCPercent(before)
			want := c.want
			if want == -2 {
				want = before
			}
			if now != want {
				t.Errorf("runtime's GC percentage %d after ApplyGCPercent, want %d", now, want)
			}
		})
	}
}

// heapGoal is the heap size at which the next collection starts.
func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestMemoryLimitBoundsHeapWithHighGCPercent: with the aggregator's
// settings applied (soft limit 80% of memory_limit, GC percentage 300) and
// 24 MiB live, the percentage alone would let the heap grow to 96 MiB
// before collecting; the soft limit from a 64 MiB memory_limit keeps the
// heap's goal under 64 MiB.
func TestMemoryLimitBoundsHeapWithHighGCPercent(t *testing.T) {
	restoreGC(t)
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	const budget = 64 << 20
	ml, err := ApplyMemoryLimit(budget, t.TempDir())
	if err != nil || ml.Runtime != budget*8/10 {
		t.Fatalf("ApplyMemoryLimit = %+v, %v", ml, err)
	}
	if p, _ := ApplyGCPercent(300); p != 300 {
		t.Fatalf("ApplyGCPercent = %d", p)
	}
	live := make([][]byte, 24)
	for i := range live {
		live[i] = make([]byte, 1<<20)
		for j := range live[i] {
			live[i][j] = byte(j)
		}
	}
	var sink []byte
	for range 200 { // garbage, so that the collector runs and sets its goal
		sink = make([]byte, 256<<10)
		sink[0] = 1
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if goal := heapGoal(); goal > budget || goal >= ms.HeapAlloc*4 {
		t.Fatalf("heap goal %d MiB with %d MiB allocated: the soft limit from memory_limit %d MiB does not bound it",
			goal>>20, ms.HeapAlloc>>20, budget>>20)
	}
	runtime.KeepAlive(live)
	runtime.KeepAlive(sink)

	// Without the soft limit, the same heap's goal is past the budget:
	// the check above is the limit's doing.
	debug.SetMemoryLimit(1 << 62)
	runtime.GC()
	if goal := heapGoal(); goal <= budget {
		t.Fatalf("heap goal %d MiB without a soft limit, want above %d MiB (24 MiB live, GC percentage 300)", goal>>20, budget>>20)
	}
	runtime.KeepAlive(live)
}
