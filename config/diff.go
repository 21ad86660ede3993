package config

import (
	"fmt"
	"reflect"
	"strings"
)

// Changed returns the keys whose values differ between two configurations
// of the same type (*Agent or *Aggregator), as dotted paths like
// "aggregator.batch_max_bytes", "inputs[1].paths" or "log.level", in field
// order. Lists of mappings are compared element by element when their
// lengths agree and as a whole ("inputs") otherwise; lists of values as a
// whole. Only keys are returned, never values, so the result can be logged
// even where secrets changed.
func Changed(old, cur any) []string {
	a, b := reflect.ValueOf(old), reflect.ValueOf(cur)
	if a.Type() != b.Type() {
		panic(fmt.Sprintf("config.Changed: %s and %s", a.Type(), b.Type()))
	}
	var keys []string
	diffValue(&keys, "", a, b)
	return keys
}

func diffValue(keys *[]string, path string, a, b reflect.Value) {
	switch a.Kind() {
	case reflect.Pointer:
		switch {
		case a.IsNil() && b.IsNil():
		case a.IsNil() || b.IsNil():
			*keys = append(*keys, path)
		default:
			diffValue(keys, path, a.Elem(), b.Elem())
		}
	case reflect.Struct:
		for i := range a.NumField() {
			key, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("yaml"), ",")
			if key == "" || key == "-" {
				continue
			}
			if path != "" {
				key = path + "." + key
			}
			diffValue(keys, key, a.Field(i), b.Field(i))
		}
	case reflect.Slice:
		elem := a.Type().Elem()
		if a.Len() == b.Len() && elem.Kind() == reflect.Struct {
			for i := range a.Len() {
				diffValue(keys, fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))
			}
			return
		}
		if !reflect.DeepEqual(a.Interface(), b.Interface()) && (a.Len() > 0 || b.Len() > 0) {
			*keys = append(*keys, path)
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*keys = append(*keys, path)
		}
	}
}

// Under reports whether key (as returned by Changed) is prefix or one of
// its subkeys: Under("inputs[1].paths", "inputs") and Under("log.level",
// "log.level") are true, Under("inputs_x", "inputs") is not.
func Under(key, prefix string) bool {
	if !strings.HasPrefix(key, prefix) {
		return false
	}
	rest := key[len(prefix):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}
