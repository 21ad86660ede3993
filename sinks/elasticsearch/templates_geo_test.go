package elasticsearch

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/ferrylogs/ferry/pipeline/enrich"
	"github.com/ferrylogs/ferry/test/geoipdb"
)

// geoType returns the type the properties of m give the dotted name, or "".
func geoType(m obj, name string) string {
	at := m
	for _, p := range strings.Split(name, ".") {
		props, _ := at["properties"].(obj)
		if at, _ = props[p].(obj); at == nil {
			return ""
		}
	}
	typ, _ := at["type"].(string)
	return typ
}

// TestGeoMappings: every field GeoIP writes, under each ECS address object,
// is typed by ferry-ecs-mappings (which every Ferry index template is
// composed of): location geo_point, as.number long, names keyword; and by
// dynamic templates under other objects.
func TestGeoMappings(t *testing.T) {
	city, asn, err := geoipdb.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fields := []string{"source.ip", "destination.ip", "client.ip", "server.ip"}
	g, err := enrich.NewGeoIP(context.Background(), enrich.GeoIPConfig{CityDB: city, ASNDB: asn, Fields: fields, CacheSize: 1},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	m := ecsMappings()
	for _, f := range fields {
		members, err := g.Lookup(f, "89.160.20.115") // every field known
		if err != nil || len(members) == 0 {
			t.Fatalf("%s: %s %v", f, members, err)
		}
		var doc map[string]map[string]any
		if err := json.Unmarshal(append(append([]byte("{"), members[1:]...), '}'), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc) != 2 {
			t.Fatalf("%s: want geo and as: %s", f, members)
		}
		if typ := geoType(m, f); typ != "ip" {
			t.Errorf("%s mapped %q, want ip", f, typ)
		}
		for object, v := range doc {
			for _, leaf := range leaves(object, v) {
				want := "keyword"
				switch {
				case strings.HasSuffix(leaf, ".geo.location"):
					want = "geo_point"
				case strings.HasSuffix(leaf, ".as.number"):
					want = "long"
				}
				if typ := geoType(m, leaf); typ != want {
					t.Errorf("%s mapped %q, want %q", leaf, typ, want)
				}
			}
		}
	}
	dyn, _ := json.Marshal(m["dynamic_templates"])
	for _, want := range []string{`"path_match":"*.geo.location"`, `"type":"geo_point"`, `"path_match":"*.as.number"`} {
		if !strings.Contains(string(dyn), want) {
			t.Errorf("dynamic templates lack %s: %s", want, dyn)
		}
	}
}

// leaves returns the dotted names of the values in v under prefix; a
// location ({lat, lon}) is one value.
func leaves(prefix string, v map[string]any) []string {
	var out []string
	for k, x := range v {
		name := prefix + "." + k
		if sub, ok := x.(map[string]any); ok && k != "location" {
			out = append(out, leaves(name, sub)...)
			continue
		}
		out = append(out, name)
	}
	return out
}
