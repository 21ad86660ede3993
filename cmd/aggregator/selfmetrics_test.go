package main

import (
	"testing"

	"github.com/ferrylogs/ferry/transport"
)

// TestAggregatorSelfMetrics: each counter the aggregator keeps lands in
// its (stage, reason) of ferry_errors_total or its reason of
// ferry_aggregator_events_dropped_total; the closed set is there at 0 when
// nothing happened; failed notification attempts of every receiver add up.
func TestAggregatorSelfMetrics(t *testing.T) {
	var ss transport.StreamStats
	empty := map[string]uint64{}
	addSelfMetrics(empty, 0, &ss)
	if n, want := len(empty), len(aggregatorErrors(nil))+2+2; n != want {
		t.Errorf("no counters: %d derived series, want the whole closed set (%d): %v", n, want, empty)
	}
	cases := []struct {
		from, series string
	}{
		{"ferry_aggregator_connections_refused_total", `ferry_errors_total{stage="receive",reason="refused"}`},
		{"ferry_aggregator_handshake_timeouts_total", `ferry_errors_total{stage="receive",reason="handshake_timeout"}`},
		{"ferry_aggregator_oversize_messages_total", `ferry_errors_total{stage="receive",reason="oversize"}`},
		{"ferry_aggregator_ack_timeouts_total", `ferry_errors_total{stage="receive",reason="ack_timeout"}`},
		{"ferry_aggregator_streams_revoked_total", `ferry_errors_total{stage="receive",reason="revoked"}`},
		{"ferry_aggregator_not_ready_streams_total", `ferry_errors_total{stage="receive",reason="unavailable"}`},
		{"ferry_aggregator_batches_failed_total", `ferry_errors_total{stage="sink",reason="rejected"}`},
		{"ferry_aggregator_buffer_no_space_total", `ferry_errors_total{stage="buffer",reason="no_space"}`},
		{"ferry_aggregator_events_metadata_truncated_total", `ferry_errors_total{stage="enrich",reason="truncated"}`},
		{"ferry_aggregator_geoip_lookup_errors_total", `ferry_errors_total{stage="geoip",reason="lookup_failed"}`},
		{"ferry_aggregator_geoip_reload_errors_total", `ferry_errors_total{stage="geoip",reason="reload_failed"}`},
		{"ferry_alerting_rule_errors_total", `ferry_errors_total{stage="alerting",reason="rule_failed"}`},
		{`ferry_aggregator_alert_notices_total{receiver="ops",result="expired"}`, `ferry_errors_total{stage="notify",reason="expired"}`},
		{"ferry_aggregator_buffer_events_dropped_total", `ferry_aggregator_events_dropped_total{reason="rejected_buffered",intentional="false"}`},
	}
	for i, c := range cases {
		m := map[string]uint64{c.from: uint64(i + 5)}
		addSelfMetrics(m, 0, &ss)
		if m[c.series] != uint64(i+5) {
			t.Errorf("%s = %d: %s = %d", c.from, i+5, c.series, m[c.series])
		}
	}
	m := map[string]uint64{
		`ferry_aggregator_alert_notices_total{receiver="ops",result="retry"}`:  2,
		`ferry_aggregator_alert_notices_total{receiver="ops",result="failed"}`: 1,
		`ferry_aggregator_alert_notices_total{receiver="mail",result="retry"}`: 4,
		`ferry_aggregator_alert_notices_total{receiver="mail",result="sent"}`:  9,
	}
	addSelfMetrics(m, 3, &ss)
	if got := m[`ferry_errors_total{stage="notify",reason="send_failed"}`]; got != 7 {
		t.Errorf("notify send_failed = %d, want 7 (retry and failed attempts of every receiver)", got)
	}
	if got := m[`ferry_aggregator_events_dropped_total{reason="rejected",intentional="false"}`]; got != 3 {
		t.Errorf("events dropped rejected = %d, want 3", got)
	}
}
