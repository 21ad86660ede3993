package metrics

import (
	"context"
	"regexp"

	"github.com/shirou/gopsutil/v4/net"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// networkSet is the traffic of each network interface not excluded, one
// event per interface: the kernel's cumulative counters under Metricbeat's
// names (system.network.in.bytes, ...) and, from the second sample on,
// their rates per second (system.network.in.bytes_per_sec, ...).
type networkSet struct {
	exclude []*regexp.Regexp
	c       counters
}

func (n *networkSet) excluded(name string) bool {
	for _, re := range n.exclude {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

func (n *networkSet) collect(ctx context.Context, cy *cycle) error {
	st, err := net.IOCountersWithContext(ctx, true)
	if err != nil {
		return err
	}
	n.c.begin()
	defer n.c.end()
	for _, s := range st {
		if n.excluded(s.Name) {
			continue
		}
		f := make(map[string]*ferryv1.Value, 20)
		f["system.network.name"] = event.Str(s.Name)
		for _, c := range []struct {
			field string
			v     uint64
		}{
			{"in.bytes", s.BytesRecv}, {"out.bytes", s.BytesSent},
			{"in.packets", s.PacketsRecv}, {"out.packets", s.PacketsSent},
			{"in.errors", s.Errin}, {"out.errors", s.Errout},
			{"in.dropped", s.Dropin}, {"out.dropped", s.Dropout},
		} {
			f["system.network."+c.field] = event.Int(int64(c.v))
			if r, ok := n.c.rate(s.Name+"\x00"+c.field, c.v, cy.t); ok {
				f["system.network."+c.field+"_per_sec"] = event.Float(r)
			}
		}
		cy.emit("system.network", s.Name, nil, f)
	}
	return nil
}
