package elasticsearch

import (
	"maps"
	"slices"
	"strings"
)

// TemplateFields is one of Ferry's index templates as a reader of its data
// streams (Kibana, a test) sees it: the index patterns it governs and every
// field its component templates map explicitly, with its mapping type.
type TemplateFields struct {
	Name     string
	Patterns []string
	// Fields maps a dotted field name (source.geo.location) to its mapping
	// type (geo_point) as Setup installs it on a full distribution (before
	// any typeFallbacks). Object fields are not listed; fields only dynamic
	// templates would type are not listed either.
	Fields map[string]string
	// Counters lists the fields marked time_series_metric: counter
	// (cumulative: their average or sum over time means nothing).
	Counters map[string]bool
}

// IndexTemplateFields returns Ferry's index templates with the fields they
// map, composed from the same component mappings Setup installs, in the
// same order (a later component's mapping of a field wins, as in
// Elasticsearch).
func IndexTemplateFields() []TemplateFields {
	var out []TemplateFields
	for _, t := range indexTemplates {
		fields, counters := map[string]string{}, map[string]bool{}
		for _, c := range composedOf(t.name) {
			var m obj
			switch c {
			case componentMappings:
				m = ecsMappings()
			case componentHAProxy:
				m = haproxyMappings()
			case componentMetrics:
				m = metricMappings()
			default: // settings, no mappings
				continue
			}
			flattenFields("", m, fields, counters)
		}
		out = append(out, TemplateFields{Name: t.name, Patterns: slices.Clone(t.patterns), Fields: fields, Counters: counters})
	}
	return out
}

// flattenFields adds the leaf fields under the mapping m (an object with
// "properties") to fields, prefixed by prefix, and the counters among them
// to counters.
func flattenFields(prefix string, m obj, fields map[string]string, counters map[string]bool) {
	p, _ := m["properties"].(obj)
	for _, name := range slices.Sorted(maps.Keys(p)) {
		child, _ := p[name].(obj)
		full := name
		if prefix != "" {
			full = prefix + "." + name
		}
		if typ, ok := child["type"].(string); ok && typ != "object" && typ != "nested" {
			fields[full] = typ
			if child["time_series_metric"] == "counter" {
				counters[full] = true
			}
			continue
		}
		flattenFields(full, child, fields, counters)
	}
}

// FieldTypeFamily names what a mapping type can be used for: "keyword"
// (terms, exact match), "text" (full-text query only), "number", "date",
// "ip", "geo_point", "flattened", or the type itself for others.
func FieldTypeFamily(typ string) string {
	switch typ {
	case "keyword", "constant_keyword", "wildcard":
		return "keyword"
	case "text", "match_only_text":
		return "text"
	case "long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long":
		return "number"
	case "date", "date_nanos":
		return "date"
	}
	return strings.TrimSpace(typ)
}
