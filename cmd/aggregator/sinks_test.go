package main

import (
	"context"
	"log/slog"
	"testing"

	"github.com/ferrylogs/ferry/config"
)

// TestElasticsearchStats: buildSinks hands back each Elasticsearch sink
// (behind enrichment and its disk buffer) under its configured name, and
// its item counters reach the stats map as one series per result.
func TestElasticsearchStats(t *testing.T) {
	ctx := context.Background()
	off := false
	cfgs := []config.Sink{
		{Name: "es-a", Type: "elasticsearch", URLs: []string{"http://127.0.0.1:1"}, SetupTemplates: &off, Buffer: "disk"},
		{Name: "file-0", Type: "file", Path: t.TempDir() + "/out.ndjson"},
	}
	sink, _, ess, err := buildSinks(ctx, cfgs, config.Buffer{Dir: t.TempDir(), Sync: "never", MaxBytes: 1 << 20, SegmentBytes: 1 << 16, Concurrency: 1}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(ctx)
	if len(ess) != 1 || ess[0].name != "es-a" {
		t.Fatalf("elasticsearch sinks %+v, want es-a", ess)
	}
	m := map[string]uint64{}
	addElasticsearchStats(m, ess)
	for _, r := range []string{"created", "duplicate", "retried", "dead_lettered", "dropped"} {
		k := `ferry_aggregator_elasticsearch_items_total{sink="es-a",result="` + r + `"}`
		if v, ok := m[k]; !ok || v != 0 {
			t.Errorf("%s = %d (present %v), want 0", k, v, ok)
		}
	}
	if len(m) != 5 {
		t.Errorf("%d series, want 5: %v", len(m), m)
	}
}
