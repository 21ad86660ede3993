package ops

// helpTexts are the HELP texts of Ferry's own metrics, by metric name
// (without labels): what /metrics says about each series the binaries
// export from their counter maps. It is kept next to the README's metric
// list (Operations → Metrics); TestHelpTexts fails for a ferry_ name used
// in the code that has no entry here, and the e2e scrape test for a
// served ferry_ family whose HELP is the generic fallback.
var helpTexts = map[string]string{
	// Both binaries.
	ErrorsName: "Errors by stage and reason (a closed set per binary, see the README); each series exists from the start at 0.",

	// Agent: shipping.
	"ferry_agent_events_acked_total":     "Events the aggregator acknowledged; their files' offsets then advance.",
	"ferry_agent_batches_acked_total":    "Batches the aggregator acknowledged.",
	"ferry_agent_batches_rejected_total": "Batches the aggregator refused for good; their events are dropped and not sent again.",
	"ferry_agent_resends_total":          "Batches sent again, after a retry answer or on a new stream (retries, not drops).",
	"ferry_agent_reconnects_total":       "Streams to the aggregator opened after the first one (a broken stream, a replica going away, max connection age).",
	"ferry_agent_batches_in_flight":      "Batches sealed and not acknowledged yet (at most aggregator.max_inflight_batches).",
	"ferry_agent_streams_open":           "1 while the agent's stream to an aggregator is open, else 0.",
	"ferry_agent_ack_latency_seconds":    "Seconds from sending a batch to the aggregator to its acknowledgement.",
	"ferry_agent_events_dropped_total":   "Events the agent dropped, by reason; intentional=\"false\" are lines or samples it was meant to deliver and lost.",

	// Agent: files.
	"ferry_agent_files_tailed":           "Files followed now.",
	"ferry_agent_file_lag_bytes":         "Over the followed files, bytes past the acknowledged offset (file size minus committed offset).",
	"ferry_agent_files_unreadable":       "Files matched by an input that cannot be opened now.",
	"ferry_agent_files_unreadable_total": "Times a matched file was found unreadable (permission denied, vanished between list and open).",

	// Agent: memory.
	"ferry_agent_read_budget_bytes":      "Bytes of lines read ahead and not yet batched that the agent allows (a quarter of its memory limit).",
	"ferry_agent_read_budget_used_bytes": "Bytes of the read-ahead budget in use now.",
	"ferry_agent_read_budget_peak_bytes": "Highest use of the read-ahead budget since the start, in bytes.",
	"ferry_agent_memory_limit_bytes":     "The agent's memory budget in bytes (memory_limit, else the container's limit).",

	// Agent: syslog inputs (summed over them).
	"ferry_agent_syslog_received_total":       "Syslog messages received and queued for the spool.",
	"ferry_agent_syslog_received_bytes_total": "Bytes of syslog messages received and queued for the spool.",
	"ferry_agent_syslog_dropped_total":        "Syslog messages lost: UDP datagrams not queued while the spool was full, and messages lost to a failed spool write.",
	"ferry_agent_syslog_truncated_total":      "Syslog messages cut to the input's max_line_bytes.",
	"ferry_agent_syslog_spool_full_total":     "Times a spool write found the spool at spool_max_bytes (TCP senders are held back, UDP messages dropped).",
	"ferry_agent_syslog_spool_pending_bytes":  "Bytes the syslog spools hold that are not acknowledged yet.",

	// Agent: host and container metrics.
	"ferry_agent_metric_cycles_total":          "Metric sampling cycles run.",
	"ferry_agent_metric_cycles_skipped_total":  "Metric sampling cycles skipped because the previous one ran late.",
	"ferry_agent_metric_errors_total":          "Failures to read a metric source (a /proc or /sys file, a cgroup) during sampling.",
	"ferry_agent_metric_samples_dropped_total": "Metric sampling cycles dropped, oldest first, from their queue (DefaultQueueCycles) while the aggregator was behind or away.",
	"ferry_agent_metric_samples_queued":        "Metric sampling cycles waiting to be shipped.",
	"ferry_agent_metric_cycle_micros":          "Duration of the last metric sampling cycle, in microseconds.",

	// Agent: Kubernetes metadata.
	"ferry_agent_kube_pods_cached":          "Pods in the agent's metadata cache.",
	"ferry_agent_kube_pods_deleted_kept":    "Deleted pods whose metadata is kept a while for their last lines.",
	"ferry_agent_kube_namespaces_cached":    "Namespaces in the agent's metadata cache.",
	"ferry_agent_kube_lookups_total":        "Pod metadata lookups.",
	"ferry_agent_kube_lookups_missed_total": "Pod metadata lookups that found no pod (its lines ship without pod metadata).",
	"ferry_agent_kube_waits_total":          "Lookups that waited for the pod watch to catch up.",
	"ferry_agent_kube_watch_errors_total":   "Failed lists or watches of pods or namespaces (retried with backoff).",

	// Aggregator: receiving.
	"ferry_aggregator_batches_acked_total":               "Batches the sinks (or their disk buffers) took and acknowledged to agents.",
	"ferry_aggregator_events_acked_total":                "Events the sinks (or their disk buffers) took and acknowledged to agents.",
	"ferry_aggregator_batches_retry_total":               "Batches answered with retry (a sink failed, not ready, draining); the agent sends them again.",
	"ferry_aggregator_batches_failed_total":              "Batches refused for good (malformed, or a sink refused the whole batch); the agent drops them.",
	"ferry_aggregator_events_dropped_total":              "Events the aggregator dropped, by reason; intentional=\"false\" are events it was meant to deliver and lost.",
	"ferry_aggregator_bytes_in_flight":                   "Bytes of batches received and not yet written.",
	"ferry_aggregator_bytes_in_flight_max":               "Bound of ferry_aggregator_bytes_in_flight (a quarter of the memory budget).",
	"ferry_aggregator_budget_waits_total":                "Batches that waited for memory of the in-flight budget.",
	"ferry_aggregator_ack_timeouts_total":                "Streams ended because their agent did not read acknowledgements for ack_timeout.",
	"ferry_aggregator_not_ready_streams_total":           "Streams ended because the aggregator was not ready (a disk buffer failed), so that agents move.",
	"ferry_aggregator_memory_limit_bytes":                "The aggregator's memory budget in bytes (memory_limit, else the container's limit).",
	"ferry_aggregator_connections_open":                  "Agent connections open now.",
	"ferry_aggregator_connections_max":                   "Most agent connections accepted at once (max_connections).",
	"ferry_aggregator_connections_refused_total":         "Connections reset at once because max_connections were open.",
	"ferry_aggregator_handshake_timeouts_total":          "Connections closed because their TLS and HTTP/2 handshakes did not finish within handshake_timeout.",
	"ferry_aggregator_oversize_messages_total":           "Messages refused for exceeding max_recv_message_bytes.",
	"ferry_aggregator_streams_revoked_total":             "Streams ended because their bearer token or client certificate stopped passing.",
	"ferry_aggregator_streams_open":                      "Agent ingest streams open now.",
	"ferry_aggregator_elasticsearch_items_total":         "Bulk items Elasticsearch answered, per sink and result: created, duplicate (409 on create: already indexed, counts as delivered), retried (429/5xx/401/403 on the item), dead_lettered (stored in the dead-letter data stream), dropped (given up for good).",
	"ferry_aggregator_streams_total":                     "Agent ingest streams begun (including ones then refused by authentication).",
	"ferry_aggregator_event_latency_seconds":             "Seconds from an event's time (the line's own, or when the agent read it) to its sink (or the sink's disk buffer) accepting it.",
	"ferry_aggregator_events_metadata_truncated_total":   "Events whose pod metadata was cut to its size bound (counted per sink write).",
	"ferry_aggregator_events_without_pod_metadata_total": "Events that named a pod the batch carried no metadata for (counted per sink write).",

	// Aggregator: disk buffers.
	"ferry_aggregator_buffer_bytes":                "Bytes a sink's disk buffer holds not yet delivered.",
	"ferry_aggregator_buffer_capacity_bytes":       "A sink's disk buffer's max_bytes.",
	"ferry_aggregator_buffers_full":                "Disk buffers whose disk is full now (agents are told to retry).",
	"ferry_aggregator_buffers_failed":              "Disk buffers that failed (a failed fsync or write); the aggregator is not ready.",
	"ferry_aggregator_buffer_no_space_total":       "Writes to a disk buffer refused for a full disk.",
	"ferry_aggregator_buffer_events_dropped_total": "Events a buffered sink refused for good (neither delivered nor dead-lettered).",

	// Aggregator: GeoIP.
	"ferry_aggregator_geoip_cache_hits_total":    "GeoIP lookups answered from the cache.",
	"ferry_aggregator_geoip_cache_misses_total":  "GeoIP lookups that read the databases.",
	"ferry_aggregator_geoip_skipped_total":       "Addresses not looked up (private, loopback, not an address).",
	"ferry_aggregator_geoip_lookup_errors_total": "GeoIP lookups that failed.",
	"ferry_aggregator_geoip_reloads_total":       "GeoIP databases opened again after they changed.",
	"ferry_aggregator_geoip_reload_errors_total": "Changed GeoIP databases that could not be opened (the previous ones stay in use).",

	// Aggregator: alerting.
	"ferry_aggregator_alert_notices_total":  "Alert notifications by receiver and result (sent, retry: a failed attempt repeated later, failed: given up, expired).",
	"ferry_aggregator_alert_outbox_pending": "Alert notifications waiting in the outbox.",
	"ferry_alerting_evaluations_total":      "Alerting rule evaluations.",
	"ferry_alerting_rule_errors_total":      "Alerting rule evaluations that failed.",
	"ferry_alerting_alerts_notified_total":  "Alerts handed to the notifier.",
	"ferry_alerting_alerts_firing":          "Alerts firing now.",
	"ferry_alerting_rules":                  "Alerting rules loaded.",
}

// Help returns the HELP text of Ferry's metric name, and whether the
// table has one.
func Help(name string) (string, bool) {
	h, ok := helpTexts[name]
	return h, ok
}

// HelpNames returns the names the table has a HELP text for.
func HelpNames() []string {
	names := make([]string, 0, len(helpTexts))
	for n := range helpTexts {
		names = append(names, n)
	}
	return names
}
