package elasticsearch

// GeoIP results (pipeline/enrich.GeoIP) go under the object holding the
// address looked up: source.geo and source.as for source.ip. Ferry's ECS
// mappings (ferry-ecs-mappings, the component every Ferry index template
// is composed of, so logs-kubernetes.container-*, logs-file-*,
// logs-haproxy*-* ... alike) type them explicitly for ECS's address
// objects (geoObjects), and by dynamic templates under any other object,
// so location is always a geo_point and as.number a long; the names are
// keywords.

// geoObjects are the ECS objects with an address whose geo and as are
// mapped explicitly.
var geoObjects = []string{"source", "destination", "client", "server"}

// geoMapping is the mapping of <object>.geo.
func geoMapping() obj {
	return props(obj{
		"location":         obj{"type": "geo_point"},
		"country_iso_code": keyword, "country_name": keyword, "region_name": keyword,
		"city_name": keyword, "continent_name": keyword,
	})
}

// asMapping is the mapping of <object>.as.
func asMapping() obj {
	return props(obj{"number": long, "organization": props(obj{"name": keyword})})
}

// addGeoMappings adds ip, geo and as to each of geoObjects in the
// properties p (keeping what p maps already in them).
func addGeoMappings(p obj) obj {
	for _, o := range geoObjects {
		m, _ := p[o].(obj)
		if m == nil {
			m = props(obj{})
		}
		in := m["properties"].(obj)
		if in["ip"] == nil {
			in["ip"] = obj{"type": "ip"}
		}
		in["geo"], in["as"] = geoMapping(), asMapping()
		p[o] = m
	}
	return p
}

// geoDynamicTemplates type GeoIP results under objects other than
// geoObjects (fields: [x.ip] gives x.geo, x.as).
func geoDynamicTemplates() []obj {
	return []obj{
		{"geoip_location": obj{"path_match": "*.geo.location", "mapping": obj{"type": "geo_point"}}},
		{"geoip_as_number": obj{"path_match": "*.as.number", "mapping": long}},
	}
}
