package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// TestAddition: an event's addition is written after its typed fields;
// typed fields in (or above) the addition's objects are left out, so no key
// is written twice and the addition wins; the others stay; events without
// one are unchanged.
func TestAddition(t *testing.T) {
	b := enrichedBatch()
	ev := b.Events[0]
	ev.Fields = map[string]*ferryv1.Value{
		"source.ip":            Str("81.2.69.142"),
		"source.geo":           Str("EVIL"), // the object itself
		"source.geo.city_name": Str("EVIL"), // inside it
		"source.as.number":     Int(1),      // inside the other
		"source":               Str("EVIL"), // above both
		"source.port":          Int(443),
	}
	geo := NewAddition([]string{"source.geo"}, []byte(`,"source.geo":{"country_iso_code":"GB"}`))
	as := NewAddition([]string{"source.as"}, []byte(`,"source.as":{"number":209}`))
	b.Added = []*Addition{geo.Join(nil).Join(as)}
	doc := b.AppendDocument(nil, 0, time.Unix(0, 0))
	if k, err := duplicateKey(doc); err != nil || k != "" {
		t.Fatalf("duplicate key %q (err %v):\n%s", k, err, doc)
	}
	if strings.Contains(string(doc), "EVIL") || strings.Contains(string(doc), `"number":1`) {
		t.Errorf("a typed field in the addition's objects was written:\n%s", doc)
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	if m["source.ip"] != "81.2.69.142" || m["source.port"] != 443.0 {
		t.Errorf("typed fields beside the addition were left out:\n%s", doc)
	}
	if g, _ := m["source.geo"].(map[string]any); g["country_iso_code"] != "GB" {
		t.Errorf("source.geo: %s", doc)
	}
	if a, _ := m["source.as"].(map[string]any); a["number"] != 209.0 {
		t.Errorf("source.as: %s", doc)
	}
	if lookup(t, doc, "message") != "hello" || lookup(t, doc, "service/name") != "web" {
		t.Errorf("fixed or enriched fields changed:\n%s", doc)
	}
	b.Added = []*Addition{nil}
	if doc := string(b.AppendDocument(nil, 0, time.Unix(0, 0))); !strings.Contains(doc, `"source.geo":"EVIL"`) {
		t.Errorf("without an addition the event's own fields are written:\n%s", doc)
	}
	if geo.Join(nil) != geo || (*Addition)(nil).Join(as) != as || (*Addition)(nil).Members() != nil {
		t.Error("Join with nil must return the other")
	}
	for name, fixed := range map[string]bool{"message.geo": true, "host.name.geo": true, "service.name.geo": true, "service.geo": false, "source.geo": false, "host.geo": false} {
		if FixedField(name) != fixed {
			t.Errorf("FixedField(%q) = %v", name, !fixed)
		}
	}
}
