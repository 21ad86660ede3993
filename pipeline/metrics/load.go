package metrics

import (
	"context"

	"github.com/shirou/gopsutil/v4/load"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// loadSet is the load average (system.load.1/5/15) and the same divided
// by the number of cores (system.load.norm.*).
type loadSet struct{ s *Sampler }

func (l *loadSet) collect(ctx context.Context, cy *cycle) error {
	a, err := load.AvgWithContext(ctx)
	if err != nil {
		return err
	}
	n := float64(l.s.cores)
	cy.emit("system.load", "", nil, map[string]*ferryv1.Value{
		"system.load.1":       event.Float(a.Load1),
		"system.load.5":       event.Float(a.Load5),
		"system.load.15":      event.Float(a.Load15),
		"system.load.norm.1":  event.Float(a.Load1 / n),
		"system.load.norm.5":  event.Float(a.Load5 / n),
		"system.load.norm.15": event.Float(a.Load15 / n),
		"system.load.cores":   event.Int(int64(l.s.cores)),
	})
	return nil
}
