package metrics

import (
	"context"
	"sort"

	"github.com/shirou/gopsutil/v4/disk"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// diskioSet is the I/O of each block device, one event per device that has
// done any: the kernel's cumulative counters under Metricbeat's names
// (system.diskio.read.bytes, ...) and, from the second sample on, their
// rates under Metricbeat's iostat names (system.diskio.iostat.*).
type diskioSet struct{ c counters }

func (d *diskioSet) collect(ctx context.Context, cy *cycle) error {
	st, err := disk.IOCountersWithContext(ctx)
	if err != nil {
		return err
	}
	d.c.begin()
	defer d.c.end()
	names := make([]string, 0, len(st))
	for n := range st {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		s := st[name]
		if s.ReadCount == 0 && s.WriteCount == 0 && s.IoTime == 0 {
			continue // never used (an unused loop or ram device)
		}
		f := map[string]*ferryv1.Value{
			"system.diskio.name":        event.Str(name),
			"system.diskio.read.count":  event.Int(int64(s.ReadCount)),
			"system.diskio.write.count": event.Int(int64(s.WriteCount)),
			"system.diskio.read.bytes":  event.Int(int64(s.ReadBytes)),
			"system.diskio.write.bytes": event.Int(int64(s.WriteBytes)),
			"system.diskio.read.time":   event.Int(int64(s.ReadTime)),
			"system.diskio.write.time":  event.Int(int64(s.WriteTime)),
			"system.diskio.io.time":     event.Int(int64(s.IoTime)),
		}
		rate := func(field, key string, v uint64) {
			if r, ok := d.c.rate(name+"\x00"+key, v, cy.t); ok {
				f[field] = event.Float(r)
			}
		}
		rate("system.diskio.iostat.read.per_sec.bytes", "rb", s.ReadBytes)
		rate("system.diskio.iostat.write.per_sec.bytes", "wb", s.WriteBytes)
		rate("system.diskio.iostat.read.request.per_sec", "rc", s.ReadCount)
		rate("system.diskio.iostat.write.request.per_sec", "wc", s.WriteCount)
		// io.time is in milliseconds: per second of wall time, divided by
		// 1000, is the fraction of the time the device was busy.
		if r, ok := d.c.rate(name+"\x00io", s.IoTime, cy.t); ok {
			f["system.diskio.iostat.busy"] = event.Float(min(r/1000, 1))
		}
		cy.emit("system.diskio", name, nil, f)
	}
	return nil
}
