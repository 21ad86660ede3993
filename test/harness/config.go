package harness

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// AgentConfig is the configuration file of an agent tailing the container
// logs of a node root (see NodeRoot) and shipping to one aggregator, with
// the short batch timeout and backoffs the tests use. Empty fields other
// than Extra must be set unless a default is given.
type AgentConfig struct {
	Node    string // node name (host.name)
	Root    string // tails Root/containers/*.log; state_dir is Root/state
	HTTP    string // the agent's http address (/healthz, /stats)
	Address string // the aggregator's address
	// Addresses, if set, lists aggregator replicas instead of Address.
	Addresses []string

	PollInterval string // default 50ms
	GlobInterval string // default 200ms
	// Extra holds more lines of the aggregator: section, each indented by
	// two spaces and ending in a newline.
	Extra string
}

// YAML returns the configuration file's text.
func (c AgentConfig) YAML() string {
	if c.PollInterval == "" {
		c.PollInterval = "50ms"
	}
	if c.GlobInterval == "" {
		c.GlobInterval = "200ms"
	}
	address := "address: " + c.Address
	if len(c.Addresses) > 0 {
		address = `addresses: ["` + strings.Join(c.Addresses, `", "`) + `"]`
	}
	return fmt.Sprintf(`
node: %s
state_dir: %s
http: %s
aggregator:
  %s
  batch_timeout: 100ms
  backoff_initial: 50ms
  backoff_max: 1s
%sinputs:
  - type: container
    paths: ["%s/containers/*.log"]
    poll_interval: %s
    glob_interval: %s
`, c.Node, filepath.Join(c.Root, "state"), c.HTTP, address, c.Extra, c.Root, c.PollInterval, c.GlobInterval)
}

// Write writes the configuration file to path; the test fails if it cannot.
func (c AgentConfig) Write(tb testing.TB, path string) {
	tb.Helper()
	WriteFile(tb, path, c.YAML())
}

// ESAggregatorConfig is the configuration file of an aggregator with one
// Elasticsearch sink, flushing every 200 ms. Empty fields must be set
// unless a default is given.
type ESAggregatorConfig struct {
	Listen string // gRPC address for the agents
	HTTP   string // the aggregator's http address (/healthz, /stats)
	URL    string // Elasticsearch's

	BufferDir          string // the buffer's dir (used by a disk buffer)
	BufferMaxBytes     string // e.g. 1GiB; empty: the aggregator's default
	BufferSegmentBytes string // e.g. 4MiB; empty: the aggregator's default
	// SinkBuffer is the sink's buffer: "memory" (the default here: the
	// aggregator acks only what Elasticsearch took) or "disk" (it acks once
	// durable in BufferDir).
	SinkBuffer string

	RetryInitial          string // default 100ms
	RetryMax              string // default 2s
	FlushEvents           int    // 0: the aggregator's default
	MaxConcurrentRequests int    // 0: the aggregator's default
	WriteTimeout          string // the aggregator's write_timeout; empty: its default (60s)
}

// YAML returns the configuration file's text.
func (c ESAggregatorConfig) YAML() string {
	if c.SinkBuffer == "" {
		c.SinkBuffer = "memory"
	}
	if c.RetryInitial == "" {
		c.RetryInitial = "100ms"
	}
	if c.RetryMax == "" {
		c.RetryMax = "2s"
	}
	buffer := "dir: " + c.BufferDir
	if c.BufferMaxBytes != "" {
		buffer += ", max_bytes: " + c.BufferMaxBytes
	}
	if c.BufferSegmentBytes != "" {
		buffer += ", segment_bytes: " + c.BufferSegmentBytes
	}
	extra := ""
	if c.FlushEvents > 0 {
		extra += fmt.Sprintf("    flush_events: %d\n", c.FlushEvents)
	}
	if c.MaxConcurrentRequests > 0 {
		extra += fmt.Sprintf("    max_concurrent_requests: %d\n", c.MaxConcurrentRequests)
	}
	top := ""
	if c.WriteTimeout != "" {
		top = "write_timeout: " + c.WriteTimeout + "\n"
	}
	return top + fmt.Sprintf(`
listen: %s
http: %s
buffer: {%s}
sinks:
  - type: elasticsearch
    buffer: %s
    urls: ["%s"]
    flush_interval: 200ms
    retry_initial: %s
    retry_max: %s
%s`, c.Listen, c.HTTP, buffer, c.SinkBuffer, c.URL, c.RetryInitial, c.RetryMax, extra)
}

// Write writes the configuration file to path; the test fails if it cannot.
func (c ESAggregatorConfig) Write(tb testing.TB, path string) {
	tb.Helper()
	WriteFile(tb, path, c.YAML())
}
