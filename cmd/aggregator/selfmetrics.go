package main

import (
	"strings"

	"github.com/ferrylogs/ferry/ops"
	"github.com/ferrylogs/ferry/transport"
)

// addSelfMetrics adds to m, the aggregator's counter map, the series
// derived from its other counters: ferry_errors_total{stage,reason} and
// ferry_aggregator_events_dropped_total{reason,intentional} (the closed
// sets the README's metric table lists), and the ingest streams counted
// by streams. eventsDropped is what the receiver dropped (the sinks
// refused them for good, transport.Server.EventsDropped).
func addSelfMetrics(m map[string]uint64, eventsDropped uint64, streams *transport.StreamStats) {
	ops.AddErrors(m, aggregatorErrors(m))
	ops.AddDrops(m, "ferry_aggregator_events_dropped_total", []ops.Drops{
		{Reason: "rejected", N: eventsDropped},
		{Reason: "rejected_buffered", N: m["ferry_aggregator_buffer_events_dropped_total"]},
	})
	m["ferry_aggregator_streams_open"] = uint64(max(streams.Open(), 0))
	m["ferry_aggregator_streams_total"] = streams.Total()
}

// aggregatorErrors is the aggregator's closed set of ferry_errors_total:
// every pair, from the counter that counts it (0 where the part is not
// configured).
func aggregatorErrors(m map[string]uint64) []ops.Errors {
	var notifyFailed, notifyExpired uint64
	for k, v := range m {
		if !strings.HasPrefix(k, "ferry_aggregator_alert_notices_total{") {
			continue
		}
		switch {
		case strings.Contains(k, `result="retry"`), strings.Contains(k, `result="failed"`):
			notifyFailed += v
		case strings.Contains(k, `result="expired"`):
			notifyExpired += v
		}
	}
	return []ops.Errors{
		{Stage: "receive", Reason: "refused", N: m["ferry_aggregator_connections_refused_total"]},
		{Stage: "receive", Reason: "handshake_timeout", N: m["ferry_aggregator_handshake_timeouts_total"]},
		{Stage: "receive", Reason: "oversize", N: m["ferry_aggregator_oversize_messages_total"]},
		{Stage: "receive", Reason: "ack_timeout", N: m["ferry_aggregator_ack_timeouts_total"]},
		{Stage: "receive", Reason: "revoked", N: m["ferry_aggregator_streams_revoked_total"]},
		{Stage: "receive", Reason: "unavailable", N: m["ferry_aggregator_not_ready_streams_total"]},
		{Stage: "sink", Reason: "rejected", N: m["ferry_aggregator_batches_failed_total"]},
		{Stage: "buffer", Reason: "no_space", N: m["ferry_aggregator_buffer_no_space_total"]},
		{Stage: "enrich", Reason: "truncated", N: m["ferry_aggregator_events_metadata_truncated_total"]},
		{Stage: "geoip", Reason: "lookup_failed", N: m["ferry_aggregator_geoip_lookup_errors_total"]},
		{Stage: "geoip", Reason: "reload_failed", N: m["ferry_aggregator_geoip_reload_errors_total"]},
		{Stage: "alerting", Reason: "rule_failed", N: m["ferry_alerting_rule_errors_total"]},
		{Stage: "notify", Reason: "send_failed", N: notifyFailed},
		{Stage: "notify", Reason: "expired", N: notifyExpired},
	}
}
