package main

import (
	"log/slog"
	"time"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/pipeline/metrics"
)

// newSampler returns the metric sampler of cfg, or nil when metrics are
// off. pods (the agent's Kubernetes metadata; nil: none) names the pods of
// container metrics; pass an untyped nil, not a nil pointer, for none.
func newSampler(cfg *config.Agent, pods metrics.PodNamer, log *slog.Logger) (*metrics.Sampler, error) {
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
		Pods:              pods,
	}, log)
}
