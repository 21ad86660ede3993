package metrics

import (
	"context"
	"path/filepath"
	"slices"

	"github.com/shirou/gopsutil/v4/disk"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// filesystemSet is the usage of each mounted filesystem, one event per
// mount point, leaving out the excluded types (pseudo and overlay
// filesystems by default). used = total − free; used.pct = used / total
// (Metricbeat's definition); available is what unprivileged users may
// still write.
type filesystemSet struct {
	s       *Sampler
	exclude []string
}

func (f *filesystemSet) collect(ctx context.Context, cy *cycle) error {
	parts, err := disk.PartitionsWithContext(ctx, true)
	if err != nil && len(parts) == 0 {
		return err
	}
	seen := make(map[string]bool, len(parts))
	for _, p := range parts {
		if slices.Contains(f.exclude, p.Fstype) || seen[p.Mountpoint] {
			continue
		}
		seen[p.Mountpoint] = true
		// Mount points are the host's: statfs them under the host root.
		u, err := disk.UsageWithContext(ctx, filepath.Join(f.s.cfg.HostRoot, p.Mountpoint))
		if err != nil || u.Total == 0 {
			continue // gone since, not ours to read, or no blocks (a pseudo filesystem)
		}
		used := u.Used
		free := u.Total - min(used, u.Total)
		cy.emit("system.filesystem", p.Mountpoint, nil, map[string]*ferryv1.Value{
			"system.filesystem.device_name": event.Str(p.Device),
			"system.filesystem.mount_point": event.Str(p.Mountpoint),
			"system.filesystem.type":        event.Str(p.Fstype),
			"system.filesystem.total":       event.Int(int64(u.Total)),
			"system.filesystem.free":        event.Int(int64(free)),
			"system.filesystem.available":   event.Int(int64(u.Free)),
			"system.filesystem.used.bytes":  event.Int(int64(used)),
			"system.filesystem.used.pct":    event.Float(frac(used, u.Total)),
			"system.filesystem.files":       event.Int(int64(u.InodesTotal)),
			"system.filesystem.free_files":  event.Int(int64(u.InodesFree)),
		})
	}
	return nil
}
