// Package geoipdb gives tests MaxMind databases: MaxMind's own test
// databases from ../shared/testdata/geoip beside the checkout when they
// are there, else small ones built with mmdbwriter that answer like them
// for the addresses Ferry's tests use (Places, ASNs).
package geoipdb

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Place is what a City database says of a network.
type Place struct {
	Network                               string
	ISO, Country, Region, City, Continent string
	Lat, Lon                              float64
	NoLocation                            bool
}

// AS is what an ASN database says of a network.
type AS struct {
	Network string
	Number  uint32
	Org     string
}

// Places are what MaxMind's GeoLite2-City-Test says of the networks of
// the addresses tests use (see its JSON source).
var Places = []Place{
	{Network: "81.2.69.142/31", ISO: "GB", Country: "United Kingdom", Region: "England", City: "London", Continent: "Europe", Lat: 51.5142, Lon: -0.0931},
	{Network: "89.160.20.112/28", ISO: "SE", Country: "Sweden", Region: "Östergötland County", City: "Linköping", Continent: "Europe", Lat: 58.4167, Lon: 15.6167},
	{Network: "216.160.83.56/29", ISO: "US", Country: "United States", Region: "Washington", City: "Milton", Continent: "North America", Lat: 47.2513, Lon: -122.3149},
	{Network: "2001:218::/32", ISO: "JP", Country: "Japan", Continent: "Asia", Lat: 35.68536, Lon: 139.75309},
}

// ASNs are what MaxMind's GeoLite2-ASN-Test says of them (81.2.69.142
// and 2001:218:: it does not know).
var ASNs = []AS{
	{Network: "89.160.20.112/28", Number: 29518, Org: "Bredband2 AB"},
	{Network: "216.160.83.56/29", Number: 209},
}

// Shared returns the directory of MaxMind's test databases beside the
// checkout that holds dir (the module root is found upward from dir by its
// go.mod): <root>/../shared/testdata/geoip, or "" when it is not there.
func Shared(dir string) string {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
	shared := filepath.Join(filepath.Dir(dir), "shared", "testdata", "geoip")
	if _, err := os.Stat(filepath.Join(shared, "GeoLite2-City-Test.mmdb")); err != nil {
		return ""
	}
	return shared
}

// Databases returns a City and an ASN database answering as Places and
// ASNs say: MaxMind's test databases when Shared(dir) finds them (shared
// true), else databases built into tmp.
func Databases(dir, tmp string) (city, asn string, shared bool, err error) {
	if s := Shared(dir); s != "" {
		return filepath.Join(s, "GeoLite2-City-Test.mmdb"), filepath.Join(s, "GeoLite2-ASN-Test.mmdb"), true, nil
	}
	city, asn, err = Build(tmp)
	return city, asn, false, err
}

// Build writes a City database of Places and an ASN database of ASNs into
// dir (city.mmdb, asn.mmdb) and returns their paths.
func Build(dir string) (city, asn string, err error) {
	city, asn = filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	if err := WriteCity(city, Places); err != nil {
		return "", "", err
	}
	if err := WriteASN(asn, ASNs); err != nil {
		return "", "", err
	}
	return city, asn, nil
}

// WriteCity writes a GeoLite2-City database of places to path.
func WriteCity(path string, places []Place) error {
	t, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-City", Languages: []string{"en"}, RecordSize: 28, Description: description})
	if err != nil {
		return err
	}
	names := func(s string) mmdbtype.Map { return mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(s)}} }
	for _, p := range places {
		rec := mmdbtype.Map{"continent": names(p.Continent)}
		if p.ISO != "" {
			c := names(p.Country)
			c["iso_code"] = mmdbtype.String(p.ISO)
			rec["country"] = c
		}
		if p.Region != "" {
			rec["subdivisions"] = mmdbtype.Slice{names(p.Region)}
		}
		if p.City != "" {
			rec["city"] = names(p.City)
		}
		if !p.NoLocation {
			rec["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(p.Lat), "longitude": mmdbtype.Float64(p.Lon)}
		}
		if err := insert(t, p.Network, rec); err != nil {
			return err
		}
	}
	return write(t, path)
}

// WriteASN writes a GeoLite2-ASN database of asns to path.
func WriteASN(path string, asns []AS) error {
	t, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-ASN", RecordSize: 28, Description: description})
	if err != nil {
		return err
	}
	for _, a := range asns {
		rec := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(a.Number)}
		if a.Org != "" {
			rec["autonomous_system_organization"] = mmdbtype.String(a.Org)
		}
		if err := insert(t, a.Network, rec); err != nil {
			return err
		}
	}
	return write(t, path)
}

var description = map[string]string{"en": "Ferry test database"}

func insert(t *mmdbwriter.Tree, network string, rec mmdbtype.Map) error {
	_, n, err := net.ParseCIDR(network)
	if err != nil {
		return err
	}
	if err := t.Insert(n, rec); err != nil {
		return fmt.Errorf("insert %s: %w", network, err)
	}
	return nil
}

// write writes t to path through a temporary file renamed over it, as
// geoipupdate replaces a database.
func write(t *mmdbwriter.Tree, path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := t.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
