// Package alert is the one alert that the evaluator (alerting/eval) produces
// and the dispatcher (alerting/notify) routes, groups and delivers: its
// labels, annotations, state and the evidence gathered in the window that
// fired it. It holds data only.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"time"
)

// State is where an alert stands in its lifecycle.
type State string

const (
	Inactive State = "inactive"
	Pending  State = "pending"
	Firing   State = "firing"
	Resolved State = "resolved"
)

// Alert is one rule's verdict for one group (one set of group_by values).
// Labels always hold "alertname" (the rule's name) and the group's values
// under their field names (e.g. "host.name"), plus the rule's labels
// ("severity", ...). Annotations are the rule's annotation templates,
// rendered.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       State             `json:"state"`
	// Value is the value that was compared (a count, an average, a ratio...).
	Value float64 `json:"value"`
	// StartsAt is when the alert started firing; EndsAt when it resolved
	// (zero while firing).
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at,omitzero"`
	// GeneratorURL links to Kibana Discover for the window and group, when
	// alerting.kibana_url is set.
	GeneratorURL string `json:"generator_url,omitempty"`
	// Evidence is what the window showed, for the reader of the notice.
	Evidence Evidence `json:"evidence,omitzero"`
}

// Evidence is gathered in the same query round as the alert's value.
type Evidence struct {
	// TopMessages: the most frequent matching messages (frequency rules).
	TopMessages []Count `json:"top_messages,omitempty"`
	// TopContributors: e.g. the pods that contributed most on a node.
	TopContributors []Count `json:"top_contributors,omitempty"`
	// ErrorLines counts error-level log lines of the group in the window,
	// -1 when unknown.
	ErrorLines int64 `json:"error_lines"`
}

// Count is one entry of a top list.
type Count struct {
	Key   string  `json:"key"`
	Count int64   `json:"count"`
	Value float64 `json:"value,omitempty"`
}

// Fingerprint identifies an alert by its labels, stable across restarts
// and replicas (the hex of a SHA-256 over the sorted label pairs).
func (a *Alert) Fingerprint() string { return Fingerprint(a.Labels) }

// Fingerprint of a label set.
func Fingerprint(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
