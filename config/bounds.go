package config

import "time"

// Lower bounds of the durations that pace a loop or a wait. Below them a
// value is more likely a typo (1ns for 1s) than a wish, and a loop that turns
// that often burns CPU for nothing: validation refuses them, naming the field.
const (
	// MinPollInterval bounds inputs[].poll_interval: each open file is
	// looked at (stat, read) once per interval.
	MinPollInterval = Duration(10 * time.Millisecond)
	// MaxReadDelay bounds inputs[].read_delay: every line waits up to that
	// long before it is read, and lines must be searchable within seconds.
	MaxReadDelay = Duration(time.Second)
	// DefaultReadDelay is inputs[].read_delay when not set: far below the
	// time to searchable, long enough that a file written line by line
	// is read a window at a time.
	DefaultReadDelay = Duration(100 * time.Millisecond)
	// MinGlobInterval bounds inputs[].glob_interval: every glob is expanded
	// (directory reads, a stat per match) once per interval.
	MinGlobInterval = Duration(100 * time.Millisecond)
	// MinPartialFlushAfter and MaxPartialFlushAfter bound
	// inputs[].partial_flush_after: shorter would split records a runtime
	// writes in quick succession; longer holds a file's offset back for
	// longer than anyone waits for a line.
	MinPartialFlushAfter = Duration(100 * time.Millisecond)
	MaxPartialFlushAfter = Duration(time.Hour)
	// MinBatchTimeout bounds aggregator.batch_timeout, how long a batch
	// that is not full waits for more events.
	MinBatchTimeout = Duration(time.Millisecond)
	// MinBackoff bounds the first delay of a retry schedule:
	// aggregator.backoff_initial and sinks[].retry_initial, and with them
	// backoff_max and retry_max.
	MinBackoff = Duration(10 * time.Millisecond)
	// MinShutdownTimeout bounds shutdown_timeout (both processes): less
	// than a round trip to the other side leaves nothing to wait for.
	MinShutdownTimeout = Duration(100 * time.Millisecond)
	// MinAckTimeout bounds the aggregator's ack_timeout: an agent must have
	// time to read an acknowledgement before its stream is ended.
	MinAckTimeout = Duration(time.Second)
	// MinWriteTimeout bounds the aggregator's write_timeout: a sink must
	// have time for one request before its batch is retried.
	MinWriteTimeout = Duration(time.Second)
	// MinSyncInterval bounds buffer.sync_interval, the disk buffer's group
	// commit window.
	MinSyncInterval = Duration(time.Millisecond)
	// MinFlushInterval bounds sinks[].flush_interval, how often an
	// Elasticsearch sink sends a bulk request that is not full.
	MinFlushInterval = Duration(10 * time.Millisecond)
)
