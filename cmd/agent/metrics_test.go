package main

import (
	"testing"
)

// TestAgentSelfMetrics: each counter the agent keeps lands in its
// (stage, reason) of ferry_errors_total or its reason of
// ferry_agent_events_dropped_total, with the intentional label; the whole
// closed set is there at 0 when nothing happened; streams_open follows the
// stream.
func TestAgentSelfMetrics(t *testing.T) {
	empty := map[string]uint64{}
	addSelfMetrics(empty, false)
	if n := len(empty); n != len(agentErrors(nil))+len(agentDrops(nil))+1 {
		t.Errorf("an agent with no counters exports %d derived series, want the whole closed set (%d): %v", n, len(agentErrors(nil))+len(agentDrops(nil))+1, empty)
	}
	for k, v := range empty {
		if v != 0 {
			t.Errorf("%s = %d with no counters, want 0", k, v)
		}
	}
	cases := []struct {
		from, series string
	}{
		{"ferry_agent_files_unreadable_total", `ferry_errors_total{stage="tail",reason="unreadable"}`},
		{"ferry_agent_syslog_spool_full_total", `ferry_errors_total{stage="syslog",reason="spool_full"}`},
		{"ferry_agent_syslog_truncated_total", `ferry_errors_total{stage="syslog",reason="oversize"}`},
		{"ferry_agent_metric_errors_total", `ferry_errors_total{stage="metrics",reason="read_failed"}`},
		{"ferry_agent_kube_watch_errors_total", `ferry_errors_total{stage="kube",reason="watch_failed"}`},
		{"ferry_agent_batches_rejected_total", `ferry_errors_total{stage="transport",reason="rejected"}`},
		{"ferry_agent_syslog_dropped_total", `ferry_agent_events_dropped_total{reason="syslog_overflow",intentional="false"}`},
		{"ferry_agent_metric_samples_dropped_total", `ferry_agent_events_dropped_total{reason="metric_cycles_expired",intentional="true"}`},
	}
	for i, c := range cases {
		m := map[string]uint64{c.from: uint64(i + 5)}
		addSelfMetrics(m, true)
		if m[c.series] != uint64(i+5) {
			t.Errorf("%s = %d: %s = %d", c.from, i+5, c.series, m[c.series])
		}
		if m["ferry_agent_streams_open"] != 1 {
			t.Errorf("ferry_agent_streams_open = %d with the stream open, want 1", m["ferry_agent_streams_open"])
		}
	}
	positionErrors.Add(2)
	defer positionErrors.Store(0)
	m := map[string]uint64{}
	addSelfMetrics(m, false)
	if got := m[`ferry_errors_total{stage="checkpoint",reason="write_failed"}`]; got != 2 {
		t.Errorf("checkpoint write_failed = %d after 2 failed saves, want 2", got)
	}
}
