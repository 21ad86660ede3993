package metrics

import (
	"context"

	"github.com/shirou/gopsutil/v4/mem"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// memorySet is the node's memory, with Metricbeat's definitions: used =
// total − free; actual.used = total − available (what the kernel could not
// hand out without swapping).
type memorySet struct{}

func (memorySet) collect(ctx context.Context, cy *cycle) error {
	m, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return err
	}
	used := m.Total - min(m.Free, m.Total)
	actual := m.Total - min(m.Available, m.Total)
	cy.emit("system.memory", "", nil, map[string]*ferryv1.Value{
		"system.memory.total":             event.Int(int64(m.Total)),
		"system.memory.free":              event.Int(int64(m.Free)),
		"system.memory.used.bytes":        event.Int(int64(used)),
		"system.memory.used.pct":          event.Float(frac(used, m.Total)),
		"system.memory.actual.free":       event.Int(int64(m.Available)),
		"system.memory.actual.used.bytes": event.Int(int64(actual)),
		"system.memory.actual.used.pct":   event.Float(frac(actual, m.Total)),
		"system.memory.cached":            event.Int(int64(m.Cached)),
	})
	return nil
}

// swapSet is the node's swap space (Metricbeat's system.memory.swap.*).
type swapSet struct{}

func (swapSet) collect(ctx context.Context, cy *cycle) error {
	m, err := mem.SwapMemoryWithContext(ctx)
	if err != nil {
		return err
	}
	cy.emit("system.swap", "", nil, map[string]*ferryv1.Value{
		"system.memory.swap.total":      event.Int(int64(m.Total)),
		"system.memory.swap.free":       event.Int(int64(m.Free)),
		"system.memory.swap.used.bytes": event.Int(int64(m.Used)),
		"system.memory.swap.used.pct":   event.Float(frac(m.Used, m.Total)),
	})
	return nil
}

// frac is a/b, 0 when b is 0.
func frac(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
