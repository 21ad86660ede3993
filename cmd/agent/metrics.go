package main

import (
	"log/slog"
	"time"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/pipeline/metrics"
)

// newSampler returns the metric sampler of cfg, or nil when metrics are
// off.
func newSampler(cfg *config.Agent, log *slog.Logger) (*metrics.Sampler, error) {
	m := cfg.Metrics
	if !m.Enabled {
		return nil, nil
	}
	return metrics.New(metrics.Config{
		Node:              cfg.Node,
		Interval:          time.Duration(m.Interval),
		HostRoot:          m.HostRoot,
		Sets:              m.Sets,
		CgroupRoot:        m.CgroupRoot,
		ExcludeMountTypes: m.ExcludeMountTypes,
		ExcludeInterfaces: m.ExcludeInterfaces,
		Environment:       m.Environment,
	}, log)
}
