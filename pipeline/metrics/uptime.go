package metrics

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// uptimeSet is the time since the node booted (system.uptime.duration.ms),
// from the host's /proc/uptime.
type uptimeSet struct{ s *Sampler }

func (u uptimeSet) collect(_ context.Context, cy *cycle) error {
	p := u.s.proc("uptime")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	fs := strings.Fields(string(b))
	if len(fs) == 0 {
		return fmt.Errorf("%s: empty", p)
	}
	secs, err := strconv.ParseFloat(fs[0], 64)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	cy.emit("system.uptime", "", nil, map[string]*ferryv1.Value{
		"system.uptime.duration.ms": event.Int(int64(secs * 1000)),
	})
	return nil
}
