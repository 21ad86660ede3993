package enrich

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/proto/ferry/v1/wire"
	"github.com/ferrylogs/ferry/test/geoipdb"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// dbSources are the databases the lookup tests run against: always ones
// built with mmdbwriter, and MaxMind's test databases when they are beside
// the checkout.
func dbSources(t testing.TB) map[string][2]string {
	t.Helper()
	city, asn, err := geoipdb.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]string{"built": {city, asn}}
	if s := geoipdb.Shared("."); s != "" {
		out["maxmind"] = [2]string{filepath.Join(s, "GeoLite2-City-Test.mmdb"), filepath.Join(s, "GeoLite2-ASN-Test.mmdb")}
	}
	return out
}

func newGeoIP(t testing.TB, cfg GeoIPConfig) *GeoIP {
	t.Helper()
	if cfg.Fields == nil {
		cfg.Fields = []string{"source.ip"}
	}
	g, err := NewGeoIP(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// geoDoc enriches one event whose typed fields are fields and returns its
// document, decoded.
func geoDoc(t testing.TB, e *Enricher, fields map[string]string) map[string]any {
	t.Helper()
	ev := &ferryv1.Event{Id: event.ID(nil, "n", "f", 1), Message: []byte("x"), Fields: map[string]*ferryv1.Value{}}
	for k, v := range fields {
		ev.Fields[k] = event.Str(v)
	}
	b := e.Enrich(context.Background(), &event.Batch{Node: "n", Events: []*ferryv1.Event{ev}})
	var doc map[string]any
	raw := b.AppendDocument(nil, 0, time.Unix(0, 0))
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return doc
}

// want returns the geo object MaxMind's test City database has for the
// network of geoipdb.Places holding iso.
func wantGeo(iso string) map[string]any {
	for _, p := range geoipdb.Places {
		if p.ISO != iso {
			continue
		}
		g := map[string]any{"location": map[string]any{"lat": p.Lat, "lon": p.Lon},
			"country_iso_code": p.ISO, "country_name": p.Country, "continent_name": p.Continent}
		if p.Region != "" {
			g["region_name"] = p.Region
		}
		if p.City != "" {
			g["city_name"] = p.City
		}
		return g
	}
	panic(iso)
}

func TestGeoIPLookups(t *testing.T) {
	as209 := map[string]any{"number": 209.0}
	bredband := map[string]any{"number": 29518.0, "organization": map[string]any{"name": "Bredband2 AB"}}
	cases := []struct {
		name, ip string
		geo      map[string]any // nil: no source.geo
		as       map[string]any // nil: no source.as
		skipped  bool           // counted as not looked up
	}{
		{name: "public v4, no ASN known", ip: "81.2.69.142", geo: wantGeo("GB")},
		{name: "public v4 with ASN number only", ip: "216.160.83.56", geo: wantGeo("US"), as: as209},
		{name: "public v4 with ASN and organization", ip: "89.160.20.115", geo: wantGeo("SE"), as: bredband},
		{name: "public v6", ip: "2001:218::1", geo: wantGeo("JP")},
		{name: "v4-mapped v6", ip: "::ffff:81.2.69.142", geo: wantGeo("GB")},
		{name: "with port", ip: "[2001:218::1]:443", geo: wantGeo("JP")},
		{name: "x-forwarded-for list: the client", ip: "81.2.69.142, 10.0.0.1", geo: wantGeo("GB")},
		{name: "public, unknown to both", ip: "8.8.8.8"},
		{name: "private 10/8", ip: "10.1.2.3", skipped: true},
		{name: "private 192.168/16", ip: "192.168.1.1", skipped: true},
		{name: "private fc00::/7", ip: "fd00::1", skipped: true},
		{name: "loopback v4", ip: "127.0.0.1", skipped: true},
		{name: "loopback v6", ip: "::1", skipped: true},
		{name: "link-local v4", ip: "169.254.1.1", skipped: true},
		{name: "link-local v6", ip: "fe80::1", skipped: true},
		{name: "link-local v6 with zone", ip: "fe80::1%eth0", skipped: true},
		{name: "unspecified v4", ip: "0.0.0.0", skipped: true},
		{name: "unspecified v6", ip: "::", skipped: true},
		{name: "multicast", ip: "224.0.0.1", skipped: true},
		{name: "invalid", ip: "not-an-address", skipped: true},
		{name: "invalid octet", ip: "999.1.1.1", skipped: true},
		{name: "empty", ip: "", skipped: true},
	}
	for src, dbs := range dbSources(t) {
		t.Run(src, func(t *testing.T) {
			g := newGeoIP(t, GeoIPConfig{CityDB: dbs[0], ASNDB: dbs[1], CacheSize: 100})
			e := New().PerEvent(g)
			for _, c := range cases {
				skipped := g.Skipped.Load()
				doc := geoDoc(t, e, map[string]string{"source.ip": c.ip, "source.port": "1"})
				if got, _ := doc["source.geo"].(map[string]any); !reflect.DeepEqual(got, c.geo) {
					t.Errorf("%s (%s): source.geo = %v, want %v", c.name, c.ip, got, c.geo)
				}
				if got, _ := doc["source.as"].(map[string]any); !reflect.DeepEqual(got, c.as) {
					t.Errorf("%s (%s): source.as = %v, want %v", c.name, c.ip, got, c.as)
				}
				for k := range doc {
					if strings.HasPrefix(k, "source.") && k != "source.ip" && k != "source.port" && k != "source.geo" && k != "source.as" {
						t.Errorf("%s: unexpected field %s", c.name, k)
					}
				}
				if doc["source.ip"] != c.ip {
					t.Errorf("%s: source.ip = %v, want it kept", c.name, doc["source.ip"])
				}
				if got := g.Skipped.Load() - skipped; got != map[bool]uint64{true: 1}[c.skipped] {
					t.Errorf("%s: skipped counted %d", c.name, got)
				}
			}
			if n := g.Errors.Load(); n != 0 {
				t.Errorf("%d lookups failed", n)
			}
		})
	}
}

// TestGeoIPFields: each configured field's results go beside it
// (destination.ip → destination.geo), an event gets both, and an event
// without the field or with a non-string value gets none.
func TestGeoIPFields(t *testing.T) {
	dbs := dbSources(t)["built"]
	g := newGeoIP(t, GeoIPConfig{CityDB: dbs[0], ASNDB: dbs[1], Fields: []string{"source.ip", "destination.ip", "client.address", `we"ird.ip`}, CacheSize: 10})
	e := New().PerEvent(g)
	doc := geoDoc(t, e, map[string]string{"source.ip": "81.2.69.142", "destination.ip": "216.160.83.56", "client.address": "2001:218::5", `we"ird.ip`: "81.2.69.142"})
	if geo, _ := doc[`we"ird.geo`].(map[string]any); geo["country_iso_code"] != "GB" {
		t.Errorf("a field name needing escapes: %v", doc)
	}
	if geo, _ := doc["source.geo"].(map[string]any); geo["country_iso_code"] != "GB" {
		t.Errorf("source.geo = %v", doc["source.geo"])
	}
	if geo, _ := doc["destination.geo"].(map[string]any); geo["country_iso_code"] != "US" {
		t.Errorf("destination.geo = %v", doc["destination.geo"])
	}
	if as, _ := doc["destination.as"].(map[string]any); as["number"] != 209.0 {
		t.Errorf("destination.as = %v", doc["destination.as"])
	}
	if geo, _ := doc["client.geo"].(map[string]any); geo["country_iso_code"] != "JP" {
		t.Errorf("client.geo = %v", doc["client.geo"])
	}
	doc = geoDoc(t, e, map[string]string{"url.path": "/"})
	for k := range doc {
		if strings.HasSuffix(k, ".geo") || strings.HasSuffix(k, ".as") {
			t.Errorf("an event without the fields got %s", k)
		}
	}
	ev := &ferryv1.Event{Id: event.ID(nil, "n", "f", 1), Fields: map[string]*ferryv1.Value{"source.ip": event.Int(5)}}
	if b := e.Enrich(context.Background(), &event.Batch{Events: []*ferryv1.Event{ev}}); b.Added != nil {
		t.Errorf("a number was looked up: %v", b.Added)
	}
	misses := g.Misses.Load() + g.Hits.Load() + g.Skipped.Load()
	plain := &ferryv1.Event{Id: event.ID(nil, "n", "f", 2), Message: []byte("no typed fields")}
	if b := e.Enrich(context.Background(), &event.Batch{Events: []*ferryv1.Event{plain, plain}}); b.Added != nil ||
		g.Misses.Load()+g.Hits.Load()+g.Skipped.Load() != misses {
		t.Errorf("a batch without typed fields went through GeoIP: %v", b.Added)
	}
}

func TestGeoIPTarget(t *testing.T) {
	for field, want := range map[string]string{"source.ip": "source", "destination.ip": "destination", "client.address": "client", "haproxy.client.ip": "haproxy.client"} {
		if got, err := GeoIPTarget(field); err != nil || got != want {
			t.Errorf("GeoIPTarget(%q) = %q, %v; want %q", field, got, err, want)
		}
	}
	for _, field := range []string{"ip", "source.", ".ip", "", "message.ip", "host.name.ip", "kubernetes.labels.ip"} {
		if got, err := GeoIPTarget(field); err == nil {
			t.Errorf("GeoIPTarget(%q) = %q, want an error", field, got)
		}
	}
}

// TestGeoIPCache: results (also "nothing known") are cached up to
// CacheSize entries, least recently used out first; the counters say so.
func TestGeoIPCache(t *testing.T) {
	dbs := dbSources(t)["built"]
	g := newGeoIP(t, GeoIPConfig{CityDB: dbs[0], ASNDB: dbs[1], CacheSize: 2})
	steps := []struct {
		ip  string
		hit bool
	}{
		{"81.2.69.142", false}, {"81.2.69.142", true}, // cached
		{"8.8.8.8", false}, {"8.8.8.8", true}, // nothing known, cached too
		{"81.2.69.142", true},     // now the most recent
		{"216.160.83.56", false},  // evicts 8.8.8.8, the least recent
		{"81.2.69.142", true},     // still there
		{"8.8.8.8", false},        // gone
		{"10.0.0.1", false},       // private: neither hit nor miss
		{"2001:218::1", false},    // v6
		{"2001:218::1", true},     //
		{"[2001:218::1]:1", true}, // the same address
	}
	for i, s := range steps {
		hits, misses := g.Hits.Load(), g.Misses.Load()
		if _, err := g.Lookup("source.ip", s.ip); err != nil {
			t.Fatal(err)
		}
		dh, dm := g.Hits.Load()-hits, g.Misses.Load()-misses
		private := s.ip == "10.0.0.1"
		if private && dh+dm != 0 || !private && (dh == 1) != s.hit || !private && dh+dm != 1 {
			t.Errorf("step %d (%s): hits +%d, misses +%d; want hit %v", i, s.ip, dh, dm, s.hit)
		}
	}
	st := g.acquire()
	defer st.release()
	if n := st.cache.len(); n != 2 {
		t.Errorf("cache holds %d entries, want its size 2", n)
	}
	off := newGeoIP(t, GeoIPConfig{CityDB: dbs[0], CacheSize: 0})
	for range 3 {
		if _, err := off.Lookup("source.ip", "81.2.69.142"); err != nil {
			t.Fatal(err)
		}
	}
	if off.Hits.Load() != 0 || off.Misses.Load() != 3 {
		t.Errorf("cache_size 0: hits %d misses %d, want every lookup a miss", off.Hits.Load(), off.Misses.Load())
	}
}

// TestGeoIPReplacedUnderLoad: goroutines enrich batches while the City
// database is renamed over by one that places 81.2.69.142 in France (as
// geoipupdate replaces it): no lookup fails or comes back empty, each
// goroutine sees the new answer from some point on and never the old one
// after it, and the old database is closed once the last batch using it is
// done. A corrupt file renamed over it next is refused, and the loaded
// database keeps answering. The databases are built here (mmdbwriter),
// so this runs in every clone.
func TestGeoIPReplacedUnderLoad(t *testing.T) {
	dir := t.TempDir()
	city := filepath.Join(dir, "GeoLite2-City.mmdb")
	if err := geoipdb.WriteCity(city, geoipdb.Places); err != nil {
		t.Fatal(err)
	}
	france := append([]geoipdb.Place{{Network: "81.2.69.0/24", ISO: "FR", Country: "France", City: "Paris", Continent: "Europe", Lat: 48.86, Lon: 2.35}}, geoipdb.Places[1:]...)
	// No cache: every lookup reads the database while it is swapped.
	g := newGeoIP(t, GeoIPConfig{CityDB: city, CacheSize: 0, CheckInterval: time.Hour}) // the directory watch does it
	old := g.cur.Load().city
	batch := &event.Batch{}
	for i := range 50 {
		ip := []string{"81.2.69.142", "216.160.83.57", "2001:218::9"}[i%3]
		batch.Events = append(batch.Events, &ferryv1.Event{Id: event.ID(nil, "n", "f", int64(i)), Fields: map[string]*ferryv1.Value{"source.ip": event.Str(ip)}})
	}
	e := New().PerEvent(g)
	var (
		stop               atomic.Bool
		sawFrance, lookups atomic.Int64
		wg                 sync.WaitGroup
		errs               = make(chan error, 8)
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := false
			for !stop.Load() {
				out := e.Enrich(context.Background(), batch)
				for i := range batch.Events {
					m := string(out.Added[i].Members())
					switch {
					case m == "":
						errs <- fmt.Errorf("event %d got no geo", i)
						return
					case i%3 != 0:
					case strings.Contains(m, `"FR"`):
						if !seen {
							seen = true
							sawFrance.Add(1)
						}
					case strings.Contains(m, `"GB"`):
						if seen {
							errs <- fmt.Errorf("the old database answered after the new one")
							return
						}
					default:
						errs <- fmt.Errorf("event %d: %s", i, m)
						return
					}
				}
				lookups.Add(int64(len(batch.Events)))
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if time.Now().After(deadline) {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("timed out waiting for %s", what)
			}
			select {
			case err := <-errs:
				stop.Store(true)
				wg.Wait()
				t.Fatal(err)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	waitFor("lookups before the swap", func() bool { return lookups.Load() > 1000 })
	if err := geoipdb.WriteCity(city, france); err != nil {
		t.Fatal(err)
	}
	waitFor("every goroutine to see the new database", func() bool { return sawFrance.Load() == 4 })
	before := lookups.Load()
	waitFor("lookups after the swap", func() bool { return lookups.Load() > before+1000 })
	// A corrupt file renamed over it is refused; the loaded one stays.
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bad, city); err != nil {
		t.Fatal(err)
	}
	waitFor("the corrupt file to be refused", func() bool { return g.ReloadErrors.Load() == 1 })
	before = lookups.Load()
	waitFor("lookups after the corrupt file", func() bool { return lookups.Load() > before+1000 })
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if n := g.Errors.Load(); n != 0 {
		t.Errorf("%d lookups failed", n)
	}
	if n := g.Reloads.Load(); n != 1 {
		t.Errorf("reloads = %d, want 1", n)
	}
	if n := old.refs.Load(); n != 0 {
		t.Errorf("the replaced database still has %d references: not closed", n)
	}
	if m, _ := g.Lookup("source.ip", "81.2.69.142"); !strings.Contains(string(m), `"FR"`) {
		t.Errorf("after the swap: %s", m)
	}
}

// TestGeoIPSymlinkSwap: a database behind a symbolic link whose target is
// switched (a Kubernetes ConfigMap or Secret volume updates so: the
// directory's ..data link is renamed over) is reopened too: any change in
// the directory makes GeoIP look at its files.
func TestGeoIPSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := geoipdb.WriteCity(filepath.Join(dir, "v1", "city.mmdb"), geoipdb.Places); err != nil {
		t.Fatal(err)
	}
	if err := geoipdb.WriteCity(filepath.Join(dir, "v2", "city.mmdb"), []geoipdb.Place{{Network: "81.2.69.0/24", ISO: "FR", Continent: "Europe", NoLocation: true}}); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("v1", filepath.Join(dir, "..data")))
	must(os.Symlink(filepath.Join("..data", "city.mmdb"), filepath.Join(dir, "city.mmdb")))
	g := newGeoIP(t, GeoIPConfig{CityDB: filepath.Join(dir, "city.mmdb"), CacheSize: 10, CheckInterval: time.Hour})
	if m, _ := g.Lookup("source.ip", "81.2.69.142"); !strings.Contains(string(m), `"GB"`) {
		t.Fatalf("before: %s", m)
	}
	must(os.Symlink("v2", filepath.Join(dir, "..data_tmp")))
	must(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	deadline := time.Now().Add(5 * time.Second)
	for g.Reloads.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the switched link was not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if m, _ := g.Lookup("source.ip", "81.2.69.142"); string(m) != `,"source.geo":{"country_iso_code":"FR","continent_name":"Europe"}` {
		t.Errorf("after: %s", m)
	}
}

// TestGeoIPPeriodicCheck: without any event from the directory watch (a
// file system that sends none), the periodic look finds the new file.
func TestGeoIPPeriodicCheck(t *testing.T) {
	dir := t.TempDir()
	city := filepath.Join(dir, "city.mmdb")
	if err := geoipdb.WriteCity(city, geoipdb.Places); err != nil {
		t.Fatal(err)
	}
	g := newGeoIP(t, GeoIPConfig{CityDB: city, CacheSize: 10, CheckInterval: 20 * time.Millisecond, noWatch: true})
	if err := geoipdb.WriteCity(city, []geoipdb.Place{{Network: "81.2.69.0/24", ISO: "FR", Continent: "Europe", NoLocation: true}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.Reloads.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the periodic look did not find the new file")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewGeoIPErrors(t *testing.T) {
	dir := t.TempDir()
	city, asn, err := geoipdb.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(city)
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The search tree overwritten, the metadata intact: only verifying
	// the whole database finds it.
	broken := append([]byte{}, data...)
	for i := 0; i < len(broken)/2; i++ {
		broken[i] = 0xff
	}
	missing := filepath.Join(dir, "GeoLite2-City.mmdb")
	cases := []struct {
		name string
		cfg  GeoIPConfig
		want []string // in the error
	}{
		{"missing city", GeoIPConfig{CityDB: missing, ASNDB: asn}, []string{"city_db: ", missing, "no such file"}},
		{"missing asn", GeoIPConfig{CityDB: city, ASNDB: filepath.Join(dir, "nope.mmdb")}, []string{"asn_db: ", "nope.mmdb", "no such file"}},
		{"empty file", GeoIPConfig{CityDB: file("empty.mmdb", nil)}, []string{"city_db: ", "empty.mmdb", "not a MaxMind database"}},
		{"not a database", GeoIPConfig{CityDB: file("text.mmdb", []byte("hello"))}, []string{"city_db: ", "text.mmdb", "not a MaxMind database"}},
		{"truncated", GeoIPConfig{CityDB: file("half.mmdb", data[:len(data)/2])}, []string{"city_db: ", "half.mmdb", "not a MaxMind database"}},
		{"corrupt tree", GeoIPConfig{CityDB: file("broken.mmdb", broken)}, []string{"city_db: ", "broken.mmdb", "not a valid MaxMind database"}},
		{"asn as city", GeoIPConfig{CityDB: asn}, []string{"city_db: ", "asn.mmdb", "GeoLite2-ASN database, not a City or Country one"}},
		{"city as asn", GeoIPConfig{ASNDB: city}, []string{"asn_db: ", "city.mmdb", "GeoLite2-City database, not a ASN one"}},
		{"no database", GeoIPConfig{}, []string{"city_db, asn_db: at least one"}},
		{"bad field", GeoIPConfig{CityDB: city, Fields: []string{"ip"}}, []string{"fields: ", `"ip" is not a dotted field name`}},
		{"same target", GeoIPConfig{CityDB: city, Fields: []string{"source.ip", "source.address"}}, []string{"fields: source.ip and source.address would both write source.geo"}},
	}
	for _, c := range cases {
		if c.cfg.Fields == nil && c.name != "no fields" {
			c.cfg.Fields = []string{"source.ip"}
		}
		g, err := NewGeoIP(context.Background(), c.cfg, quiet)
		if err == nil {
			g.Close()
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
	if _, err := NewGeoIP(context.Background(), GeoIPConfig{CityDB: city}, quiet); err == nil || !strings.Contains(err.Error(), "fields: ") {
		t.Errorf("no fields: %v", err)
	}
}

// TestGeoIPEncodedFields: an event whose typed fields come encoded (read
// back from the disk buffer, see wire.DecodeTrustedRawFields) is looked
// up and written as the same event with its fields in a map.
func TestGeoIPEncodedFields(t *testing.T) {
	dbs := dbSources(t)["built"]
	e := New().PerEvent(newGeoIP(t, GeoIPConfig{CityDB: dbs[0], ASNDB: dbs[1], Fields: []string{"source.ip", "destination.ip"}, CacheSize: 10}))
	for _, fields := range []map[string]string{
		{"source.ip": "81.2.69.142", "source.port": "1"},
		{"source.ip": "89.160.20.115", "destination.ip": "2001:218::1", "url.path": "/x"},
		{"source.ip": "10.0.0.1"},
		{"url.path": "/only"},
	} {
		ev := &ferryv1.Event{Id: event.ID(nil, "n", "f", 1), Message: []byte("x"), Fields: map[string]*ferryv1.Value{}}
		for k, v := range fields {
			ev.Fields[k] = event.Str(v)
		}
		data, err := proto.Marshal(&ferryv1.Batch{Node: "n", Events: []*ferryv1.Event{ev}})
		if err != nil {
			t.Fatal(err)
		}
		wb, err := wire.DecodeTrustedRawFields(data)
		if err != nil {
			t.Fatal(err)
		}
		if wb.Events[0].Fields != nil {
			t.Fatalf("fields decoded into a map")
		}
		now := time.Unix(0, 0)
		want := e.Enrich(context.Background(), &event.Batch{Node: "n", Events: []*ferryv1.Event{ev}}).AppendDocument(nil, 0, now)
		got := e.Enrich(context.Background(), &event.Batch{Node: "n", Events: wb.Events}).AppendDocument(nil, 0, now)
		if !bytes.Equal(got, want) {
			t.Errorf("%v: encoded fields wrote\n%s\nthe map wrote\n%s", fields, got, want)
		}
		if pub := fields["source.ip"] != "" && fields["source.ip"] != "10.0.0.1"; pub != bytes.Contains(got, []byte(`"source.geo"`)) {
			t.Errorf("%v: source.geo in %s: want %v", fields, got, pub)
		}
	}
}
