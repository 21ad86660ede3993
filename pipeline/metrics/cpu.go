package metrics

import (
	"context"
	"errors"
	"strconv"

	"github.com/shirou/gopsutil/v4/cpu"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// cpuSet is the node's CPU time by state, as fractions of the interval
// (system.cpu.*.pct: over all cores, up to the number of cores;
// *.norm.pct: divided by it, 0–1). The first sample only sets the base.
type cpuSet struct {
	s    *Sampler
	prev *cpu.TimesStat
}

func cpuCount(ctx context.Context) (int, error) { return cpu.CountsWithContext(ctx, true) }

func (c *cpuSet) collect(ctx context.Context, cy *cycle) error {
	ts, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return err
	}
	if len(ts) == 0 {
		return errors.New("cpu: no totals")
	}
	cur := ts[0]
	prev := c.prev
	c.prev = &cur
	if prev == nil {
		return nil
	}
	f, ok := cpuFractions(prev, &cur)
	if !ok {
		return nil // a counter went down: no value for this interval
	}
	cores := float64(c.s.cores)
	fields := make(map[string]*ferryv1.Value, 2*len(f)+3)
	fields["system.cpu.cores"] = event.Int(int64(c.s.cores))
	for _, st := range f {
		fields["system.cpu."+st.name+".pct"] = event.Float(st.frac * cores)
		fields["system.cpu."+st.name+".norm.pct"] = event.Float(st.frac)
	}
	cy.emit("system.cpu", "", nil, fields)
	return nil
}

// coreSet is the CPU time of each core (system.core.<state>.pct, 0–1),
// one event per core. Not sampled by default.
type coreSet struct {
	s    *Sampler
	prev map[string]cpu.TimesStat
}

func (c *coreSet) collect(ctx context.Context, cy *cycle) error {
	ts, err := cpu.TimesWithContext(ctx, true)
	if err != nil {
		return err
	}
	prev := c.prev
	c.prev = make(map[string]cpu.TimesStat, len(ts))
	for i := range ts {
		cur := &ts[i]
		c.prev[cur.CPU] = *cur
		p, seen := prev[cur.CPU]
		if !seen {
			continue
		}
		f, ok := cpuFractions(&p, cur)
		if !ok {
			continue
		}
		id, _ := strconv.Atoi(cur.CPU[len("cpu"):])
		fields := make(map[string]*ferryv1.Value, 2*len(f)+3)
		fields["system.core.id"] = event.Int(int64(id))
		for _, st := range f {
			fields["system.core."+st.name+".pct"] = event.Float(st.frac)
			fields["system.core."+st.name+".norm.pct"] = event.Float(st.frac)
		}
		cy.emit("system.core", cur.CPU, nil, fields)
	}
	return nil
}

type stateFrac struct {
	name string
	frac float64
}

// cpuFractions returns each state's share of the time between two
// readings, and "total": what is neither idle nor iowait (Metricbeat's
// definition). ok is false if a counter went down or no time passed.
func cpuFractions(a, b *cpu.TimesStat) ([]stateFrac, bool) {
	d := []stateFrac{
		{"user", b.User - a.User},
		{"system", b.System - a.System},
		{"idle", b.Idle - a.Idle},
		{"iowait", b.Iowait - a.Iowait},
		{"irq", b.Irq - a.Irq},
		{"softirq", b.Softirq - a.Softirq},
		{"steal", b.Steal - a.Steal},
		{"nice", b.Nice - a.Nice},
	}
	var total float64
	for _, s := range d {
		if s.frac < 0 {
			return nil, false
		}
		total += s.frac
	}
	if total <= 0 {
		return nil, false
	}
	idle := d[2].frac + d[3].frac
	for i := range d {
		d[i].frac /= total
	}
	return append(d, stateFrac{"total", (total - idle) / total}), true
}
