package main

import (
	"errors"
	"fmt"

	"github.com/ferrylogs/ferry/sinks/buffer"
)

// diskBuffer is the disk buffer of one sink, named after the sink.
type diskBuffer struct {
	name     string
	buf      *buffer.Sink
	capacity int64 // the buffer's max_bytes
}

// readiness is the aggregator's /readyz check: ready while the server takes
// batches (it stops when draining) and every disk buffer can make batches
// durable. A buffer whose disk failed stays failed until the process
// restarts, so the replica stays out of the Service: agents connecting anew
// go to another replica, and the streams of those connected are ended (see
// buffersHealth). A buffer whose disk is full refuses batches until the
// ones it holds are delivered and free their space (wal.Stats.DiskFull):
// the replica is not ready meanwhile, but the streams stay open (agents
// retry and keep their offsets). The error names each reason.
func readiness(accepting func() bool, bufs []diskBuffer) func() error {
	return func() error {
		var errs []error
		if !accepting() {
			errs = append(errs, errors.New("draining: the aggregator is shutting down"))
		}
		if err := buffersHealth(bufs)(); err != nil {
			errs = append(errs, err)
		}
		for _, b := range bufs {
			if b.buf.Stats().DiskFull && b.buf.Err() == nil {
				errs = append(errs, fmt.Errorf("buffer full: buffer %s has no room on its disk; batches are refused until the ones it holds are delivered", b.name))
			}
		}
		return errors.Join(errs...)
	}
}

// liveness is the aggregator's /healthz check: a disk buffer that failed
// only recovers when the process restarts (replay then keeps what is on
// disk, checksummed), but until it has delivered what it holds it is better
// left running; once a failed buffer is empty, the process asks to be
// restarted.
func liveness(bufs []diskBuffer) func() error {
	return func() error {
		var errs []error
		for _, b := range bufs {
			if err := b.buf.Err(); err != nil && b.buf.Stats().PendingRecords == 0 {
				errs = append(errs, fmt.Errorf("buffer %s failed and holds nothing more to deliver: restart to recover: %w", b.name, err))
			}
		}
		return errors.Join(errs...)
	}
}

// buffersHealth is the receiver's health: nil while every disk buffer can
// make batches durable, else the failed buffers. While it fails, agents'
// streams are ended so that they go to another replica.
func buffersHealth(bufs []diskBuffer) func() error {
	return func() error {
		var errs []error
		for _, b := range bufs {
			if err := b.buf.Err(); err != nil {
				errs = append(errs, fmt.Errorf("buffer %s: %w", b.name, err))
			}
		}
		return errors.Join(errs...)
	}
}

// addBufferStats adds the disk buffers' health to the /stats counters:
// the number of failed buffers (0 when all are healthy), of buffers whose
// disk is full now, and the batches refused because a buffer's disk was
// full; and per buffer (label sink) the bytes it holds not yet delivered
// and its capacity (max_bytes), whose ratio the chart alerts on.
func addBufferStats(m map[string]uint64, bufs []diskBuffer) {
	var failed, full, noSpace, dropped uint64
	for _, b := range bufs {
		if b.buf.Err() != nil {
			failed++
		}
		st := b.buf.Stats()
		if st.DiskFull {
			full++
		}
		noSpace += st.NoSpace
		dropped += b.buf.Dropped()
		m[`ferry_aggregator_buffer_bytes{sink="`+b.name+`"}`] = uint64(max(st.PendingBytes, 0))
		m[`ferry_aggregator_buffer_capacity_bytes{sink="`+b.name+`"}`] = uint64(max(b.capacity, 0))
	}
	m["ferry_aggregator_buffers_full"] = full
	m["ferry_aggregator_buffer_events_dropped_total"] = dropped
	m["ferry_aggregator_buffers_failed"] = failed
	m["ferry_aggregator_buffer_no_space_total"] = noSpace
}
