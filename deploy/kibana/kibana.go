// Package kibana holds Ferry's Kibana saved objects (data views, saved
// searches, Lens visualizations, a map and dashboards) as one JSON source
// file per object, <type>/<id>.json, and builds from them the NDJSON that
// Kibana's saved-objects import API takes.
//
// Sources keep the attributes Kibana stores as JSON text (panelsJSON,
// layerListJSON, searchSourceJSON, fieldFormatMap, ...) decoded, so they
// can be read and diffed; NDJSON encodes them as Kibana exports them.
package kibana

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

//go:embed index-pattern/*.json search/*.json lens/*.json map/*.json dashboard/*.json
var sources embed.FS

// Types are the saved-object types Ferry ships, in the order NDJSON writes
// them (what is referred to before what refers to it).
var Types = []string{"index-pattern", "search", "lens", "map", "dashboard"}

// Object is one saved object as Kibana 8.x exports it.
type Object struct {
	ID                   string         `json:"id"`
	Type                 string         `json:"type"`
	Attributes           map[string]any `json:"attributes"`
	References           []Reference    `json:"references"`
	CoreMigrationVersion string         `json:"coreMigrationVersion"`
	TypeMigrationVersion string         `json:"typeMigrationVersion"`
	Managed              bool           `json:"managed"`

	// File is the source file the object was read from (not exported).
	File string `json:"-"`
}

// Reference is a saved object's pointer to another one.
type Reference struct {
	Name string `json:"name"`
	Type string `json:"type"`
	ID   string `json:"id"`
}

// dataViewJSON are the index-pattern attributes Kibana stores as JSON text
// although their names do not end in JSON.
var dataViewJSON = []string{"fieldFormatMap", "runtimeFieldMap", "fieldAttrs"}

// IsJSONText reports whether the attribute key of an object of type typ is
// stored by Kibana as JSON text: any key ending in "JSON" (panelsJSON,
// optionsJSON, searchSourceJSON, layerListJSON, ...) at any depth of the
// attributes, and a data view's fieldFormatMap, runtimeFieldMap and
// fieldAttrs.
func IsJSONText(typ, key string) bool {
	if strings.HasSuffix(key, "JSON") {
		return true
	}
	if typ == "index-pattern" {
		for _, k := range dataViewJSON {
			if key == k {
				return true
			}
		}
	}
	return false
}

// Sources returns the objects as their source files hold them, in Types
// order and by file name within a type. A file that is not one object of
// the type its directory names is an error.
func Sources() ([]Object, error) {
	var objs []Object
	for _, typ := range Types {
		files, err := fs.Glob(sources, typ+"/*.json")
		if err != nil {
			return nil, fmt.Errorf("kibana sources %s: %w", typ, err)
		}
		for _, f := range files {
			b, err := sources.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("kibana source %s: %w", f, err)
			}
			var o Object
			d := json.NewDecoder(bytes.NewReader(b))
			d.UseNumber()
			d.DisallowUnknownFields()
			if err := d.Decode(&o); err != nil {
				return nil, fmt.Errorf("kibana source %s: %w", f, err)
			}
			if o.Type != typ {
				return nil, fmt.Errorf("kibana source %s: type %q in the %s directory", f, o.Type, typ)
			}
			o.File = path.Clean(f)
			objs = append(objs, o)
		}
	}
	return objs, nil
}

// Objects returns the objects as Kibana imports them: attributes that
// Kibana stores as JSON text (IsJSONText) encoded as strings.
func Objects() ([]Object, error) {
	objs, err := Sources()
	if err != nil {
		return nil, err
	}
	for i := range objs {
		if err := encodeJSONText(objs[i].Type, objs[i].Attributes); err != nil {
			return nil, fmt.Errorf("kibana source %s: %w", objs[i].File, err)
		}
	}
	return objs, nil
}

// encodeJSONText replaces, in m and the objects below it, every value of a
// JSON-text key that is not a string yet by its JSON encoding.
func encodeJSONText(typ string, m map[string]any) error {
	for k, v := range m {
		if IsJSONText(typ, k) {
			if _, ok := v.(string); ok {
				continue
			}
			b, err := Marshal(v)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			m[k] = string(b)
			continue
		}
		if child, ok := v.(map[string]any); ok {
			if err := encodeJSONText(typ, child); err != nil {
				return fmt.Errorf("%s.%w", k, err)
			}
		}
	}
	return nil
}

// Marshal encodes v as compact JSON without HTML escaping (Kibana's own
// encoding leaves <, > and & alone) and without a trailing newline.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// NDJSON returns the objects, one JSON document a line, ready for
// POST /api/saved_objects/_import.
func NDJSON() ([]byte, error) {
	objs, err := Objects()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, o := range objs {
		b, err := Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("kibana object %s %s: %w", o.Type, o.ID, err)
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}
