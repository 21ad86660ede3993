package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferrylogs/ferry/test/geoipdb"
)

// GeoIPDBs are the GeoIP databases of an end-to-end test.
type GeoIPDBs struct {
	City, ASN string
	MaxMind   bool // MaxMind's test databases (else built with mmdbwriter)
}

// GeoIPDatabases returns a City and an ASN database answering as
// geoipdb.Places and geoipdb.ASNs say (81.2.69.142 → GB, 216.160.83.56 →
// US and AS 209, 2001:218:: → JP ...): MaxMind's test databases when they
// are beside the checkout, else ones built into dir. The City database is a
// copy in dir/GeoIP of the test's own, so the test may replace it
// (geoipdb.WriteCity renames over it, as geoipupdate does).
func GeoIPDatabases(tb testing.TB, dir string) GeoIPDBs {
	tb.Helper()
	city, asn, shared, err := geoipdb.Databases(".", dir)
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(city)
	if err != nil {
		tb.Fatal(err)
	}
	own := filepath.Join(dir, "GeoIP", "GeoLite2-City.mmdb")
	if err := os.MkdirAll(filepath.Dir(own), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(own, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return GeoIPDBs{City: own, ASN: asn, MaxMind: shared}
}

// YAML returns the aggregator's enrich.geoip block over d, looking up
// source.ip, to append to a configuration file.
func (d GeoIPDBs) YAML() string {
	return fmt.Sprintf("\nenrich:\n  geoip:\n    city_db: %s\n    asn_db: %s\n    fields: [source.ip]\n    cache_size: 100\n", d.City, d.ASN)
}

// GreatBritainBox is a geo_bounding_box query on field (a geo_point, such
// as source.geo.location) around Great Britain, and none of the other
// places of the test databases.
func GreatBritainBox(field string) map[string]any {
	return map[string]any{"geo_bounding_box": map[string]any{field: map[string]any{
		"top_left": map[string]any{"lat": 61.0, "lon": -8.7}, "bottom_right": map[string]any{"lat": 49.8, "lon": 1.8}}}}
}
