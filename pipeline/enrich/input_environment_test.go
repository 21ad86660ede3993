package enrich

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// TestInputEnvironmentWithoutPod: an event an agent input sent with its
// own environment (a syslog or file input's environment: key, as the
// fields service.environment and data_stream.namespace) and no
// Kubernetes pod keeps that environment through enrichment, though the
// aggregator's rules have a default: its data stream is
// logs-haproxy.log-<environment> and its document says
// service.environment once. A container event is enriched by the rules.
func TestInputEnvironmentWithoutPod(t *testing.T) {
	env, err := NewEnvironment("", "", nil, "dflt")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]*ferryv1.Value{
		"data_stream.dataset": event.Str("haproxy.log"), "service.environment": event.Str("prod"),
		"data_stream.namespace": event.Str("prod"), "source.ip": event.Str("81.2.69.142"),
	}
	b := &event.Batch{Node: "lb1", Events: []*ferryv1.Event{
		{Id: make([]byte, 16), Message: []byte("haproxy line"), Fields: fields, Kind: ferryv1.Kind_KIND_LOG, Source: &ferryv1.Source{Input: "haproxy"}},
		{Id: make([]byte, 16), Message: []byte("container line"), Kind: ferryv1.Kind_KIND_LOG,
			Kubernetes: &ferryv1.Kubernetes{Namespace: "shop", Pod: "web-1", Container: "app"}},
	}}
	out := New(env).Enrich(context.Background(), b)
	if got := out.DataStream(0); got != "logs-haproxy.log-prod" {
		t.Errorf("syslog event's data stream %s, want logs-haproxy.log-prod", got)
	}
	if got := out.DataStream(1); got != "logs-kubernetes.container-dflt" {
		t.Errorf("container event's data stream %s, want logs-kubernetes.container-dflt", got)
	}
	for i, want := range []string{"prod", "dflt"} {
		var doc map[string]any
		raw := out.AppendDocument(nil, i, time.Unix(0, 0))
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, raw)
		}
		got := doc["service.environment"]
		if s, ok := doc["service"].(map[string]any); ok {
			if got != nil {
				t.Errorf("document %d has service.environment twice: %s", i, raw)
			}
			got = s["environment"]
		}
		if got != want {
			t.Errorf("document %d: service.environment %v, want %s\n%s", i, got, want, raw)
		}
	}
}
