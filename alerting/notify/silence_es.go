package notify

import (
	"context"
	"fmt"
	"net/url"
)

// DefaultSilenceIndex is the index of Ferry's own that keeps silences.
const DefaultSilenceIndex = "ferry-alerting-silences"

// Doer sends one JSON request to Elasticsearch and decodes the answer into
// out (alerting/esq.Client is one).
type Doer interface {
	Do(ctx context.Context, method, path string, body, out any) error
}

// ESStore keeps silences in an Elasticsearch index, one document per
// silence with its ID as the document's _id; writes wait for a refresh so
// that a silence added by `aggregator silence add` is seen by the next read.
type ESStore struct {
	ES    Doer
	Index string // default DefaultSilenceIndex
}

func (s *ESStore) index() string {
	if s.Index == "" {
		return DefaultSilenceIndex
	}
	return s.Index
}

func (s *ESStore) Where() string { return "elasticsearch index " + s.index() }

// maxSilences is how many silences List reads: expired ones stay, so this
// bounds the history kept in view, newest first.
const maxSilences = 10000

func (s *ESStore) List(ctx context.Context) ([]Silence, error) {
	var res struct {
		Hits struct {
			Hits []struct {
				Source Silence `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	q := map[string]any{"size": maxSilences, "sort": []any{map[string]any{"starts_at": "desc"}}, "query": map[string]any{"match_all": map[string]any{}}}
	// ignore_unavailable: before the first silence the index does not exist.
	if err := s.ES.Do(ctx, "POST", "/"+url.PathEscape(s.index())+"/_search?ignore_unavailable=true", q, &res); err != nil {
		return nil, fmt.Errorf("silences: %w", err)
	}
	out := make([]Silence, 0, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		out = append(out, h.Source)
	}
	return out, nil
}

func (s *ESStore) Put(ctx context.Context, sil Silence) error {
	path := "/" + url.PathEscape(s.index()) + "/_doc/" + url.PathEscape(sil.ID) + "?refresh=wait_for"
	if err := s.ES.Do(ctx, "PUT", path, sil, nil); err != nil {
		return fmt.Errorf("silence %s: %w", sil.ID, err)
	}
	return nil
}
