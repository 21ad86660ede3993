package esq

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferrylogs/ferry/config"
)

// A search whose pre-filter phase fails on mixed date and date_nanos
// mappings is sent again without it; other errors are not retried.
func TestSearchRetriesWithoutCanMatch(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		switch {
		case strings.Contains(r.URL.Path, "other"):
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"type":"parsing_exception"}}`)
		case r.URL.Query().Get("pre_filter_shard_size") == "":
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"root_cause":[],"type":"search_phase_execution_exception","reason":"start","phase":"can_match","caused_by":{"type":"illegal_argument_exception","reason":"date[-9999-01-01T00:00:00Z] is before the epoch in 1970 and cannot be stored in nanosecond resolution"}},"status":400}`)
		default:
			io.WriteString(w, `{"hits":{"total":{"value":7}}}`)
		}
	}))
	defer srv.Close()
	c, err := New(config.AlertingElasticsearch{URLs: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Hits struct {
			Total struct{ Value int } `json:"total"`
		} `json:"hits"`
	}
	if err := c.Search(context.Background(), "logs-*,metrics-*", map[string]any{}, &res); err != nil || res.Hits.Total.Value != 7 || calls.Load() != 2 {
		t.Fatalf("err %v, total %d, calls %d", err, res.Hits.Total.Value, calls.Load())
	}
	calls.Store(0)
	if err := c.Search(context.Background(), "other", map[string]any{}, &res); err == nil || calls.Load() != 1 {
		t.Fatalf("err %v, calls %d: want one failed call", err, calls.Load())
	}
}
