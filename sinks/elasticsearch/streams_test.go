package elasticsearch

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/internal/testlog"
	"github.com/ferrylogs/ferry/pipeline/event"
)

// esStatus returns the HTTP status of a request to the test Elasticsearch.
func esStatus(t *testing.T, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, esURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestTemplateConflict (issue 19, case 10b): a user's index template that
// outranks Ferry's without a data_stream would make Ferry write into a
// plain index (here it covers logs-kubernetes.container-<this test's
// namespace>* only, so that other tests are not affected). With template_conflict: error the events of that data
// stream are refused (retryably) with an error naming the template, and no
// index is created; with warn they are written after a warning naming it.
// A dataset no template matches (an input's own dataset:) gets a Ferry
// template of its own and becomes a data stream.
func TestTemplateConflict(t *testing.T) {
	ns := uniqueNS(t)
	stream := "logs-kubernetes.container-" + ns
	tmpl := "ferry-test-user-" + ns
	esDo(t, http.MethodPut, "/_index_template/"+tmpl,
		`{"index_patterns":["`+stream+`*"],"priority":500,"template":{"mappings":{"properties":{"@timestamp":{"type":"date"}}}}}`)
	t.Cleanup(func() { esStatus(t, http.MethodDelete, "/_index_template/"+tmpl, "") })
	batch := func(dataset string) *event.Batch {
		b := makeBatch(ns, 0, 5)
		for _, ev := range b.Events {
			event.SetField(ev, "data_stream.dataset", event.Str(dataset))
		}
		return b
	}

	t.Run("error", func(t *testing.T) {
		log, logs := testlog.New(t, "sink")
		s, err := New(context.Background(), testConfig(), log)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := s.Write(ctx, makeBatch(ns, 0, 5))
		if err != nil || res.Delivered != 0 || len(res.Failed) != 5 || !res.Retryable() {
			t.Fatalf("Write = %+v, %v; want every event failed, retryable", res, err)
		}
		msg := res.Failed[0].Err.Error()
		for _, want := range []string{stream, `index template "` + tmpl + `"`, "priority 500", "outranks Ferry's", "no data_stream", "plain index"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
		if logs.Count("level=ERROR") != 1 || logs.Count(tmpl) == 0 {
			t.Errorf("want one error line naming the template:\n%s", logs.String())
		}
		if code := esStatus(t, http.MethodGet, "/"+stream, ""); code != http.StatusNotFound {
			t.Errorf("GET /%s: HTTP %d, want 404 (nothing written)", stream, code)
		}
		// The other data streams are written.
		checkResult(t, write(t, s, makeBatch(uniqueNS(t), 100, 3)), 3, 0)
	})

	t.Run("warn", func(t *testing.T) {
		log, logs := testlog.New(t, "sink")
		cfg := testConfig()
		cfg.TemplateConflict = ConflictWarn
		s, err := New(context.Background(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		checkResult(t, write(t, s, makeBatch(ns, 0, 5)), 5, 0)
		t.Cleanup(func() { esStatus(t, http.MethodDelete, "/"+stream, "") })
		if w := logs.Lines("level=WARN"); len(w) != 1 || !strings.Contains(w[0], tmpl) {
			t.Errorf("want one warning naming the template, got %q", w)
		}
	})

	t.Run("own dataset", func(t *testing.T) {
		own := "owndataset" + ns
		log, logs := testlog.New(t, "sink")
		s, err := New(context.Background(), testConfig(), log)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		checkResult(t, write(t, s, batch(own)), 5, 0)
		// A data stream (backing index .ds-…) with Ferry's mappings.
		for name, idx := range esDo(t, http.MethodGet, "/logs-"+own+"-"+ns, "") {
			if !strings.HasPrefix(name, ".ds-") {
				t.Errorf("index %s: not a data stream's backing index", name)
			}
			if got := dig(idx, "mappings", "properties", "@timestamp", "type"); got != "date_nanos" {
				t.Errorf("index %s: @timestamp is %v, want date_nanos (Ferry's mappings)", name, got)
			}
		}
		if code := esStatus(t, http.MethodGet, "/_index_template/ferry-logs-"+own, ""); code != http.StatusOK {
			t.Errorf("template ferry-logs-%s: HTTP %d", own, code)
		}
		if logs.Count("installed an index template") != 1 {
			t.Errorf("want one line saying the template was installed:\n%s", logs.String())
		}
	})
}
