package main

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/ops"
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

// positionErrors counts failed saves of positions.json (logged at ERROR
// where they happen); positionsDamaged the problems found loading it.
var positionErrors, positionsDamaged atomic.Uint64

// addSelfMetrics adds to m, the agent's counter map, the series derived
// from its other counters: ferry_errors_total{stage,reason} and
// ferry_agent_events_dropped_total{reason,intentional} (the closed sets the
// README's metric table lists), and ferry_agent_streams_open.
func addSelfMetrics(m map[string]uint64, streamOpen bool) {
	ops.AddErrors(m, agentErrors(m))
	ops.AddDrops(m, "ferry_agent_events_dropped_total", agentDrops(m))
	m["ferry_agent_streams_open"] = 0
	if streamOpen {
		m["ferry_agent_streams_open"] = 1
	}
}

// agentErrors is the agent's closed set of ferry_errors_total: every pair,
// from the counter that counts it (0 where the part is not configured).
func agentErrors(m map[string]uint64) []ops.Errors {
	return []ops.Errors{
		{Stage: "tail", Reason: "unreadable", N: m["ferry_agent_files_unreadable_total"]},
		{Stage: "checkpoint", Reason: "write_failed", N: positionErrors.Load()},
		{Stage: "checkpoint", Reason: "corrupt", N: positionsDamaged.Load()},
		{Stage: "syslog", Reason: "spool_full", N: m["ferry_agent_syslog_spool_full_total"]},
		{Stage: "syslog", Reason: "oversize", N: m["ferry_agent_syslog_truncated_total"]},
		{Stage: "metrics", Reason: "read_failed", N: m["ferry_agent_metric_errors_total"]},
		{Stage: "kube", Reason: "watch_failed", N: m["ferry_agent_kube_watch_errors_total"]},
		{Stage: "transport", Reason: "rejected", N: m["ferry_agent_batches_rejected_total"]},
	}
}

// agentDrops is the agent's closed set of drop reasons.
func agentDrops(m map[string]uint64) []ops.Drops {
	return []ops.Drops{
		// UDP datagrams the full spool could not take, and messages a
		// failed spool write lost: the sender was not held back.
		{Reason: "syslog_overflow", N: m["ferry_agent_syslog_dropped_total"]},
		// The metric queue's documented bound: the oldest sampling
		// cycles go when the aggregator is away for longer than it holds
		// (counts cycles, not documents).
		{Reason: "metric_cycles_expired", Intentional: true, N: m["ferry_agent_metric_samples_dropped_total"]},
	}
}
