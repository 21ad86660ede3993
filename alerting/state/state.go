// Package state keeps the evaluator's alert state in an Elasticsearch index
// of Ferry's own (default ferry-alerting-state): one document per active
// alert (pending or firing, keyed by its fingerprint) and one per rule with
// its last evaluation time, so that a restarted evaluator or a new leader
// neither notifies twice nor forgets a firing alert.
package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
	"github.com/ferrylogs/ferry/alerting/esq"
)

// Entry is one active alert of a rule.
type Entry struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	State       alert.State       `json:"state"` // pending or firing
	Value       float64           `json:"value"`
	// ActiveAt is when the condition became true (pending since).
	ActiveAt time.Time `json:"active_at"`
	// FiredAt is when the alert went firing (StartsAt of its notices).
	FiredAt time.Time `json:"fired_at,omitzero"`
	// LastTrueAt is the last evaluation the condition held (keep_firing_for).
	LastTrueAt time.Time `json:"last_true_at"`
	// Notified: the firing notice was handed to the dispatcher.
	Notified     bool           `json:"notified"`
	GeneratorURL string         `json:"generator_url,omitempty"`
	Evidence     alert.Evidence `json:"evidence,omitzero"`
}

// Store reads and writes the state index.
type Store struct {
	c     *esq.Client
	index string
}

// mapping keeps the state documents out of dynamic mapping.
var mapping = map[string]any{
	"settings": map[string]any{"index": map[string]any{"number_of_shards": 1, "auto_expand_replicas": "0-1", "hidden": true}},
	"mappings": map[string]any{
		"dynamic": false,
		"properties": map[string]any{
			"kind": map[string]any{"type": "keyword"},
			"rule": map[string]any{"type": "keyword"},
		},
	},
}

// Open returns the store of index, creating the index when missing.
func Open(ctx context.Context, c *esq.Client, index string) (*Store, error) {
	s := &Store{c: c, index: index}
	err := c.Do(ctx, http.MethodPut, "/"+url.PathEscape(index), mapping, nil)
	var se *esq.StatusError
	if err != nil && !(errors.As(err, &se) && se.Type == "resource_already_exists_exception") {
		return nil, fmt.Errorf("create state index %s: %w", index, err)
	}
	return s, nil
}

type doc struct {
	Kind     string    `json:"kind"` // alert | rule
	Rule     string    `json:"rule"`
	Alert    *Entry    `json:"alert,omitempty"`
	LastEval time.Time `json:"last_eval,omitzero"`
}

// Load returns every active alert and the last evaluation time of every
// rule.
func (s *Store) Load(ctx context.Context) ([]Entry, map[string]time.Time, error) {
	var res struct {
		Hits struct {
			Hits []struct {
				Source doc `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	body := map[string]any{"size": 10000, "query": map[string]any{"match_all": map[string]any{}}}
	if err := s.c.Do(ctx, http.MethodPost, "/"+url.PathEscape(s.index)+"/_search", body, &res); err != nil {
		return nil, nil, fmt.Errorf("load alert state from %s: %w", s.index, err)
	}
	var entries []Entry
	last := map[string]time.Time{}
	for _, h := range res.Hits.Hits {
		switch d := h.Source; d.Kind {
		case "alert":
			if d.Alert != nil {
				entries = append(entries, *d.Alert)
			}
		case "rule":
			last[d.Rule] = d.LastEval
		}
	}
	return entries, last, nil
}

// Save writes puts, deletes the alerts of fingerprints dels and records
// lastEval per rule, in one bulk request, visible to Load when it returns.
func (s *Store) Save(ctx context.Context, puts []Entry, dels []string, lastEval map[string]time.Time) error {
	var b bytes.Buffer
	line := func(v any) {
		j, _ := json.Marshal(v)
		b.Write(j)
		b.WriteByte('\n')
	}
	for i := range puts {
		line(map[string]any{"index": map[string]any{"_id": "alert:" + puts[i].Fingerprint}})
		line(doc{Kind: "alert", Rule: puts[i].Rule, Alert: &puts[i]})
	}
	for _, fp := range dels {
		line(map[string]any{"delete": map[string]any{"_id": "alert:" + fp}})
	}
	for r, t := range lastEval {
		line(map[string]any{"index": map[string]any{"_id": "rule:" + r}})
		line(doc{Kind: "rule", Rule: r, LastEval: t})
	}
	if b.Len() == 0 {
		return nil
	}
	var res struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int             `json:"status"`
			Error  json.RawMessage `json:"error"`
		} `json:"items"`
	}
	if err := s.c.Do(ctx, http.MethodPost, "/"+url.PathEscape(s.index)+"/_bulk?refresh=true", b.Bytes(), &res); err != nil {
		return fmt.Errorf("save alert state to %s: %w", s.index, err)
	}
	if res.Errors {
		for _, it := range res.Items {
			for op, r := range it {
				if r.Error != nil && !(op == "delete" && r.Status == http.StatusNotFound) {
					return fmt.Errorf("save alert state to %s: %s: %s", s.index, op, r.Error)
				}
			}
		}
	}
	return nil
}
