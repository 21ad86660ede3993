package kibana

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ferrylogs/ferry/sinks/elasticsearch"
)

func mustObjects(t *testing.T) []Object {
	t.Helper()
	objs, err := Objects()
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestIDsMatchFileNames: every source is <type>/<id>.json, ids are Ferry's
// own (never Fleet's logs-* / metrics-* data views) and unique.
func TestIDsMatchFileNames(t *testing.T) {
	objs := mustSources(t)
	seen := map[string]bool{}
	for _, o := range objs {
		if want := o.Type + "/" + o.ID + ".json"; o.File != want {
			t.Errorf("%s holds %s %q: want file %s", o.File, o.Type, o.ID, want)
		}
		if !strings.HasPrefix(o.ID, "ferry-") {
			t.Errorf("%s: id %q does not start with ferry-", o.File, o.ID)
		}
		if seen[o.Type+"/"+o.ID] {
			t.Errorf("%s: duplicate id", o.File)
		}
		seen[o.Type+"/"+o.ID] = true
		if o.CoreMigrationVersion == "" || o.TypeMigrationVersion == "" {
			t.Errorf("%s: coreMigrationVersion and typeMigrationVersion must be set (else Kibana runs every migration from 0)", o.File)
		}
		if title, _ := o.Attributes["title"].(string); title == "" {
			t.Errorf("%s: no title", o.File)
		}
	}
	for _, want := range []string{"index-pattern/ferry-logs", "index-pattern/ferry-metrics", "index-pattern/ferry-haproxy"} {
		if !seen[want] {
			t.Errorf("missing data view %s", want)
		}
	}
	for _, typ := range Types {
		n := 0
		for k := range seen {
			if strings.HasPrefix(k, typ+"/") {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no %s objects", typ)
		}
	}
}

// refsUsed returns the reference names an object's attributes point
// through (decoded attributes, as in Sources), and the problems found
// inside the object (e.g. a Lens accessor naming no column).
func refsUsed(o Object) (names []string, problems []string) {
	a := o.Attributes
	switch o.Type {
	case "search":
		ss := at(a, "kibanaSavedObjectMeta", "searchSourceJSON")
		names = append(names, searchSourceRefs(ss)...)
	case "lens":
		layers, _ := at(a, "state", "datasourceStates", "formBased", "layers").(map[string]any)
		for id, l := range layers {
			names = append(names, "indexpattern-datasource-layer-"+id)
			problems = append(problems, lensLayerProblems(id, l.(map[string]any), at(a, "state", "visualization"))...)
		}
		if len(layers) == 0 {
			problems = append(problems, "no layers")
		}
	case "map":
		for _, l := range list(a["layerListJSON"]) {
			if n, _ := at(l, "sourceDescriptor", "indexPatternRefName").(string); n != "" {
				names = append(names, n)
			}
		}
	case "dashboard":
		for _, p := range list(a["panelsJSON"]) {
			pm := p.(map[string]any)
			if n, _ := pm["panelRefName"].(string); n != "" {
				names = append(names, fmt.Sprint(pm["panelIndex"])+":"+n)
			} else if at(pm, "embeddableConfig", "savedVis") == nil && at(pm, "embeddableConfig", "attributes") == nil {
				problems = append(problems, fmt.Sprintf("panel %v: neither by reference nor by value", pm["panelIndex"]))
			}
		}
		if cp, ok := at(a, "controlGroupInput", "panelsJSON").(map[string]any); ok {
			for id := range cp {
				names = append(names, "controlGroup_"+id+":optionsListDataView")
			}
		}
		names = append(names, searchSourceRefs(at(a, "kibanaSavedObjectMeta", "searchSourceJSON"))...)
	}
	return names, problems
}

func searchSourceRefs(ss any) []string {
	var names []string
	if n, _ := at(ss, "indexRefName").(string); n != "" {
		names = append(names, n)
	}
	for _, f := range list(at(ss, "filter")) {
		if n, _ := at(f, "meta", "indexRefName").(string); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// lensLayerProblems checks that the columns of a Lens layer and its
// visualization agree.
func lensLayerProblems(id string, layer map[string]any, vis any) []string {
	var problems []string
	cols, _ := layer["columns"].(map[string]any)
	order := list(layer["columnOrder"])
	if len(order) != len(cols) {
		problems = append(problems, fmt.Sprintf("layer %s: columnOrder has %d entries for %d columns", id, len(order), len(cols)))
	}
	for _, c := range order {
		if cols[fmt.Sprint(c)] == nil {
			problems = append(problems, fmt.Sprintf("layer %s: columnOrder names no column %v", id, c))
		}
	}
	for cid, c := range cols {
		if ob, ok := at(c, "params", "orderBy", "columnId").(string); ok && cols[ob] == nil {
			problems = append(problems, fmt.Sprintf("layer %s: column %s orders by missing column %s", id, cid, ob))
		}
	}
	var used []string
	collect := func(m any) {
		for _, k := range []string{"xAccessor", "splitAccessor", "metricAccessor", "breakdownByAccessor"} {
			if s, ok := at(m, k).(string); ok {
				used = append(used, s)
			}
		}
		for _, s := range list(at(m, "accessors")) {
			used = append(used, fmt.Sprint(s))
		}
		for _, c := range list(at(m, "columns")) {
			used = append(used, fmt.Sprint(at(c, "columnId")))
		}
	}
	if layers := list(at(vis, "layers")); layers != nil {
		for _, l := range layers {
			if at(l, "layerId") == id {
				collect(l)
			}
		}
	} else if at(vis, "layerId") == id {
		collect(vis)
	}
	if len(used) == 0 {
		problems = append(problems, fmt.Sprintf("layer %s: the visualization shows no column", id))
	}
	for _, u := range used {
		if cols[u] == nil {
			problems = append(problems, fmt.Sprintf("layer %s: visualization names missing column %s", id, u))
		}
	}
	return problems
}

// TestReferencesResolve: every reference points to an object in the set,
// every reference name an object uses is among its references, and no
// reference is left unused.
func TestReferencesResolve(t *testing.T) {
	objs := mustSources(t)
	have := map[string]bool{}
	for _, o := range objs {
		have[o.Type+"/"+o.ID] = true
	}
	for _, o := range objs {
		byName := map[string]Reference{}
		for _, r := range o.References {
			if _, dup := byName[r.Name]; dup {
				t.Errorf("%s: reference name %q twice", o.File, r.Name)
			}
			byName[r.Name] = r
			if !have[r.Type+"/"+r.ID] {
				t.Errorf("%s: reference %s → %s %q resolves to nothing in deploy/kibana", o.File, r.Name, r.Type, r.ID)
			}
		}
		used, problems := refsUsed(o)
		for _, p := range problems {
			t.Errorf("%s: %s", o.File, p)
		}
		for _, n := range used {
			if _, ok := byName[n]; !ok {
				t.Errorf("%s: uses reference %q that it does not declare", o.File, n)
			}
		}
		for n := range byName {
			if !slices.Contains(used, n) {
				t.Errorf("%s: reference %q is declared but not used", o.File, n)
			}
		}
		if o.Type == "lens" || o.Type == "map" || o.Type == "search" {
			for _, r := range o.References {
				if r.Type != "index-pattern" {
					t.Errorf("%s: reference %s is a %s, want index-pattern", o.File, r.Name, r.Type)
				}
			}
		}
	}
}

// TestJSONTextRoundTrips reads the built NDJSON as Kibana does: one object
// a line, and every attribute stored as JSON text parses and encodes back
// to the same text.
func TestJSONTextRoundTrips(t *testing.T) {
	b, err := NDJSON()
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		texts := 0
		lines++
		var o Object
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		d.DisallowUnknownFields()
		if err := d.Decode(&o); err != nil {
			t.Fatalf("line %d: %v", lines, err)
		}
		again, err := Marshal(o)
		if err != nil || !bytes.Equal(again, sc.Bytes()) {
			t.Errorf("line %d (%s %s) does not round-trip: %v", lines, o.Type, o.ID, err)
		}
		var walk func(at string, m map[string]any)
		walk = func(at string, m map[string]any) {
			for k, v := range m {
				if !IsJSONText(o.Type, k) {
					if child, ok := v.(map[string]any); ok {
						walk(at+k+".", child)
					}
					continue
				}
				texts++
				s, ok := v.(string)
				if !ok {
					t.Errorf("%s %s: %s%s is a %T, want JSON text", o.Type, o.ID, at, k, v)
					continue
				}
				d := json.NewDecoder(strings.NewReader(s))
				d.UseNumber()
				var decoded any
				if err := d.Decode(&decoded); err != nil || d.More() {
					t.Errorf("%s %s: %s%s does not parse: %v", o.Type, o.ID, at, k, err)
					continue
				}
				if re, err := Marshal(decoded); err != nil || string(re) != s {
					t.Errorf("%s %s: %s%s does not round-trip", o.Type, o.ID, at, k)
				}
			}
		}
		walk("", o.Attributes)
		// Lens keeps its state as an object; every other type has JSON text.
		if texts == 0 && o.Type != "lens" {
			t.Errorf("%s %s: no JSON-text attribute", o.Type, o.ID)
		}
	}
	objs := mustObjects(t)
	if lines != len(objs) {
		t.Errorf("NDJSON has %d lines for %d objects", lines, len(objs))
	}
}

// need is what a use of a field requires of its mapping.
type need string

const (
	needExists    need = "exists"
	needAggregate need = "aggregatable" // not a text field
	needKeyword   need = "keyword"      // terms, options list: keyword or ip
	needNumber    need = "number"
	needGauge     need = "number, not a counter" // avg, sum, percentiles: meaningless on a cumulative counter
	needDate      need = "date"
	needGeoPoint  need = "geo_point"
)

// fieldUse is one field a saved object uses, on the data view dataView.
type fieldUse struct {
	dataView, field, where string
	need                   need
}

var lensNeeds = map[string]need{
	"date_histogram": needDate, "terms": needKeyword, "range": needNumber,
	"percentile": needGauge, "percentile_rank": needGauge, "average": needGauge, "sum": needGauge,
	"median": needGauge, "standard_deviation": needGauge, "max": needNumber, "min": needNumber,
	"counter_rate": needNumber,
	"unique_count": needAggregate, "last_value": needAggregate, "count": needAggregate,
}

var mapMetricNeeds = map[string]need{
	"count": needAggregate, "cardinality": needAggregate, "terms": needKeyword,
	"avg": needGauge, "sum": needGauge, "max": needNumber, "min": needNumber, "percentile": needGauge,
}

// kqlFields returns the field names a KQL query tests (name: value,
// name >= n), ignoring quoted values.
func kqlFields(q string) []string {
	q = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(q, `""`)
	var out []string
	for _, m := range regexp.MustCompile(`([A-Za-z_@][\w.@]*)\s*(?::|<=|>=|<|>)`).FindAllStringSubmatch(q, -1) {
		out = append(out, m[1])
	}
	return out
}

// filterFields returns the fields of Kibana filters (meta.key and the
// field names of their query).
func filterFields(filters any) []string {
	var out []string
	for _, f := range list(filters) {
		if k, _ := at(f, "meta", "key").(string); k != "" {
			out = append(out, k)
		}
		q, _ := at(f, "query").(map[string]any)
		for _, kind := range []string{"match_phrase", "match", "term", "terms", "range", "wildcard", "prefix"} {
			if m, ok := q[kind].(map[string]any); ok {
				for k := range m {
					out = append(out, k)
				}
			}
		}
		if e, ok := at(f, "query", "exists", "field").(string); ok {
			out = append(out, e)
		}
	}
	return out
}

// fieldUses lists every field the object uses and what it needs of it.
func fieldUses(o Object) ([]fieldUse, error) {
	refs := map[string]string{}
	for _, r := range o.References {
		refs[r.Name] = r.ID
	}
	var uses []fieldUse
	add := func(dv, field, where string, n need) {
		uses = append(uses, fieldUse{dv, field, where, n})
	}
	queryAndFilters := func(dv, where string, query, filters any) {
		if q, _ := at(query, "query").(string); q != "" {
			for _, f := range kqlFields(q) {
				add(dv, f, where+" query", needExists)
			}
		}
		for _, f := range filterFields(filters) {
			add(dv, f, where+" filter", needExists)
		}
	}
	a := o.Attributes
	switch o.Type {
	case "index-pattern":
		add(o.ID, fmt.Sprint(a["timeFieldName"]), "timeFieldName", needDate)
		if fm, ok := a["fieldFormatMap"].(map[string]any); ok {
			for f := range fm {
				add(o.ID, f, "fieldFormatMap", needExists)
			}
		}
	case "search":
		ss := at(a, "kibanaSavedObjectMeta", "searchSourceJSON")
		dv := refs[fmt.Sprint(at(ss, "indexRefName"))]
		for _, c := range list(a["columns"]) {
			add(dv, fmt.Sprint(c), "column", needExists)
		}
		for _, s := range list(a["sort"]) {
			add(dv, fmt.Sprint(list(s)[0]), "sort", needAggregate)
		}
		queryAndFilters(dv, "search", at(ss, "query"), at(ss, "filter"))
	case "lens":
		layers, _ := at(a, "state", "datasourceStates", "formBased", "layers").(map[string]any)
		var dv string
		for id, l := range layers {
			dv = refs["indexpattern-datasource-layer-"+id]
			cols, _ := at(l, "columns").(map[string]any)
			for cid, c := range cols {
				op, _ := at(c, "operationType").(string)
				n, ok := lensNeeds[op]
				if !ok {
					return nil, fmt.Errorf("column %s: operation %q unknown to this test: add what it needs to lensNeeds", cid, op)
				}
				field, _ := at(c, "sourceField").(string)
				if field == "___records___" && op == "count" {
					continue
				}
				add(dv, field, "column "+cid+" ("+op+")", n)
				if sf, ok := at(c, "params", "sortField").(string); ok {
					add(dv, sf, "column "+cid+" sortField", needDate)
				}
			}
		}
		queryAndFilters(dv, "lens", at(a, "state", "query"), at(a, "state", "filters"))
	case "map":
		for _, l := range list(a["layerListJSON"]) {
			sd := at(l, "sourceDescriptor")
			rn, _ := at(sd, "indexPatternRefName").(string)
			if rn == "" {
				continue
			}
			dv, where := refs[rn], fmt.Sprintf("layer %v", at(l, "id"))
			add(dv, fmt.Sprint(at(sd, "geoField")), where+" geoField", needGeoPoint)
			for _, m := range list(at(sd, "metrics")) {
				typ := fmt.Sprint(at(m, "type"))
				n, ok := mapMetricNeeds[typ]
				if !ok {
					return nil, fmt.Errorf("%s: metric %q unknown to this test", where, typ)
				}
				if f, ok := at(m, "field").(string); ok {
					add(dv, f, where+" metric "+typ, n)
				}
			}
			for _, p := range list(at(sd, "tooltipProperties")) {
				add(dv, fmt.Sprint(p), where+" tooltip", needExists)
			}
			if f, _ := at(sd, "sortField").(string); f != "" {
				add(dv, f, where+" sortField", needAggregate)
			}
			if f, _ := at(sd, "topHitsSplitField").(string); f != "" {
				add(dv, f, where+" topHitsSplitField", needKeyword)
			}
		}
		// The map's own query and filters apply to every layer.
		for _, l := range list(a["layerListJSON"]) {
			if rn, _ := at(l, "sourceDescriptor", "indexPatternRefName").(string); rn != "" {
				ms := a["mapStateJSON"]
				queryAndFilters(refs[rn], "map", at(ms, "query"), at(ms, "filters"))
			}
		}
	case "dashboard":
		cp, _ := at(a, "controlGroupInput", "panelsJSON").(map[string]any)
		for id, c := range cp {
			dv := refs["controlGroup_"+id+":optionsListDataView"]
			add(dv, fmt.Sprint(at(c, "explicitInput", "fieldName")), "control "+id, needKeyword)
		}
		ss := at(a, "kibanaSavedObjectMeta", "searchSourceJSON")
		if q, _ := at(ss, "query", "query").(string); q != "" || len(list(at(ss, "filter"))) > 0 {
			return nil, fmt.Errorf("a dashboard-wide query or filter: give it a data view to check it against")
		}
	}
	return uses, nil
}

// viewFields are the fields Ferry's index templates map in the indices a
// data view covers: field → the mapping types found (one, unless
// templates disagree), and the counters among them.
type viewFields struct {
	types    map[string][]string
	counters map[string]bool
}

// dataViewFields maps each data view id to its viewFields.
func dataViewFields(t *testing.T, objs []Object) map[string]viewFields {
	t.Helper()
	templates := elasticsearch.IndexTemplateFields()
	out := map[string]viewFields{}
	for _, o := range objs {
		if o.Type != "index-pattern" {
			continue
		}
		title := fmt.Sprint(o.Attributes["title"])
		fields, counters := map[string][]string{}, map[string]bool{}
		for _, tf := range templates {
			if !slices.ContainsFunc(tf.Patterns, func(p string) bool { return overlap(title, p) }) {
				continue
			}
			for f, typ := range tf.Fields {
				if !slices.Contains(fields[f], typ) {
					fields[f] = append(fields[f], typ)
				}
				if tf.Counters[f] {
					counters[f] = true
				}
			}
		}
		if len(fields) == 0 {
			t.Errorf("data view %s (%s) covers none of Ferry's index templates", o.ID, title)
		}
		out[o.ID] = viewFields{fields, counters}
	}
	return out
}

// overlap reports whether two index patterns (literal prefix, then *) can
// match the same index.
func overlap(a, b string) bool {
	pa, _, _ := strings.Cut(a, "*")
	pb, _, _ := strings.Cut(b, "*")
	return strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa)
}

// checkUse says what is wrong with a use of a field, or "".
func checkUse(v viewFields, u fieldUse) string {
	fields := v.types
	types := fields[u.field]
	if types == nil {
		// A key below a flattened field is a keyword.
		for f, ts := range fields {
			if strings.HasPrefix(u.field, f+".") && slices.Contains(ts, "flattened") {
				types = []string{"keyword"}
			}
		}
	}
	if types == nil {
		return "not mapped by Ferry's index templates"
	}
	fams := map[string]bool{}
	for _, typ := range types {
		fams[elasticsearch.FieldTypeFamily(typ)] = true
	}
	if len(fams) > 1 {
		return fmt.Sprintf("mapped as %v by different templates (a conflict in Kibana)", types)
	}
	var fam string
	for f := range fams {
		fam = f
	}
	ok := true
	switch u.need {
	case needAggregate:
		ok = fam != "text"
	case needKeyword:
		ok = fam == "keyword" || fam == "ip"
	case needNumber, needDate, needGeoPoint:
		ok = fam == string(u.need)
	case needGauge:
		ok = fam == "number" && !v.counters[u.field]
	}
	if !ok {
		return fmt.Sprintf("mapped as %s, needs %s", types[0], u.need)
	}
	return ""
}

// TestFieldsInIndexTemplates: every field a data view, search, Lens
// column, query, filter, control or map layer uses is mapped by the index
// templates Ferry's Elasticsearch sink installs (read from the sink's own
// code) with a type that can do what the use needs.
func TestFieldsInIndexTemplates(t *testing.T) {
	objs := mustObjects(t)
	srcs := mustSources(t)
	dvs := dataViewFields(t, srcs)
	n := 0
	for _, o := range srcs {
		uses, err := fieldUses(o)
		if err != nil {
			t.Errorf("%s: %v", o.File, err)
			continue
		}
		for _, u := range uses {
			n++
			fields, ok := dvs[u.dataView]
			if !ok {
				t.Errorf("%s: %s uses data view %q, not one of Ferry's", o.File, u.where, u.dataView)
				continue
			}
			if msg := checkUse(fields, u); msg != "" {
				t.Errorf("%s: %s: field %s on data view %s: %s", o.File, u.where, u.field, u.dataView, msg)
			}
		}
	}
	if n < 3*len(objs) {
		t.Errorf("only %d field uses found in %d objects: is fieldUses reading the sources?", n, len(objs))
	}
}

// TestFieldChecksCatchMistakes: the checks above fail on a missing field
// and on each kind of wrong type.
func TestFieldChecksCatchMistakes(t *testing.T) {
	dvs := dataViewFields(t, mustSources(t))
	for _, c := range []struct {
		dv, field string
		need      need
		ok        bool
	}{
		{"ferry-haproxy", "source.geo.location", needGeoPoint, true},
		{"ferry-haproxy", "source.ip", needGeoPoint, false},
		{"ferry-haproxy", "haproxy.timers.Tt", needNumber, true},
		{"ferry-haproxy", "url.path", needNumber, false},
		{"ferry-logs", "service.name", needKeyword, true},
		{"ferry-logs", "message", needKeyword, false},
		{"ferry-logs", "message", needAggregate, false},
		{"ferry-logs", "message", needExists, true},
		{"ferry-logs", "kubernetes.labels.app", needKeyword, true},
		{"ferry-logs", "service.nmae", needExists, false},
		{"ferry-metrics", "system.cpu.total.norm.pct", needNumber, true},
		{"ferry-metrics", "system.network.in.bytes_per_sec", needGauge, true},
		{"ferry-metrics", "system.network.in.bytes", needGauge, false}, // a counter
		{"ferry-metrics", "system.network.in.bytes", needNumber, true}, // max of a counter is fine
		{"ferry-metrics", "haproxy.timers.Tt", needExists, false},      // not in metrics-*
		{"ferry-logs", "@timestamp", needDate, true},
	} {
		msg := checkUse(dvs[c.dv], fieldUse{c.dv, c.field, "case", c.need})
		if (msg == "") != c.ok {
			t.Errorf("%s %s as %s: ok=%v, got %q", c.dv, c.field, c.need, c.ok, msg)
		}
	}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{`stream : "stderr" or message : (error or exception)`, []string{"stream", "message"}},
		{`http.response.status_code >= 500 and not url.path: "/a:b"`, []string{"http.response.status_code", "url.path"}},
		{`ferry.flags : *`, []string{"ferry.flags"}},
	} {
		if got := kqlFields(c.q); !slices.Equal(got, c.want) {
			t.Errorf("kqlFields(%q) = %v, want %v", c.q, got, c.want)
		}
	}
}

func mustSources(t *testing.T) []Object {
	t.Helper()
	objs, err := Sources()
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// at walks nested maps by key; nil if any step is missing.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// TestDashboardLayout: panels fit Kibana's 48-column grid without
// overlapping, and panel ids are unique.
func TestDashboardLayout(t *testing.T) {
	for _, o := range mustSources(t) {
		if o.Type != "dashboard" {
			continue
		}
		type box struct {
			id         string
			x, y, w, h int
		}
		var boxes []box
		for _, p := range list(o.Attributes["panelsJSON"]) {
			g := at(p, "gridData")
			n := func(k string) int {
				v, _ := at(g, k).(json.Number).Int64()
				return int(v)
			}
			b := box{fmt.Sprint(at(p, "panelIndex")), n("x"), n("y"), n("w"), n("h")}
			if fmt.Sprint(at(g, "i")) != b.id {
				t.Errorf("%s: panel %s: gridData.i is %v", o.File, b.id, at(g, "i"))
			}
			if b.w <= 0 || b.h <= 0 || b.x < 0 || b.y < 0 || b.x+b.w > 48 {
				t.Errorf("%s: panel %s at %+v is outside the 48-column grid", o.File, b.id, b)
			}
			for _, c := range boxes {
				if c.id == b.id {
					t.Errorf("%s: panel id %s twice", o.File, b.id)
				}
				if b.x < c.x+c.w && c.x < b.x+b.w && b.y < c.y+c.h && c.y < b.y+b.h {
					t.Errorf("%s: panels %s and %s overlap", o.File, c.id, b.id)
				}
			}
			boxes = append(boxes, b)
		}
		if len(boxes) == 0 {
			t.Errorf("%s: no panels", o.File)
		}
	}
}
