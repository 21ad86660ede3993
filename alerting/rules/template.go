package rules

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"
)

// Data is what annotation templates see: {{ .Value }}, {{ .Labels }}
// ({{ index .Labels "host.name" }}), {{ .Rule }}, {{ .KibanaURL }} (the
// Discover link for the window and group), {{ .Window }}.
type Data struct {
	Rule      string
	Value     float64
	Labels    map[string]string
	KibanaURL string
	Window    time.Duration
}

// Funcs are the template helpers: humanize (1.2k, 3.4M), humanize1024
// (1.5Ki), humanizePercentage (0.934 → 93.4%), humanizeDuration (seconds
// → 1h 2m 3s), and toUpper, toLower, title.
var Funcs = map[string]any{
	"humanize":           Humanize,
	"humanize1024":       Humanize1024,
	"humanizePercentage": func(v float64) string { return trimFloat(v*100) + "%" },
	"humanizeDuration":   HumanizeDuration,
	"toUpper":            strings.ToUpper,
	"toLower":            strings.ToLower,
	"title":              func(s string) string { return strings.ToUpper(s[:min(1, len(s))]) + s[min(1, len(s)):] },
}

// Render renders every annotation of r with d.
func (r *Rule) Render(d Data) (map[string]string, error) {
	if len(r.templates) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(r.templates))
	for k, t := range r.templates {
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			return out, fmt.Errorf("rule %s: annotation %s: %w", r.Name, k, err)
		}
		out[k] = b.String()
	}
	return out, nil
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.4g", v)
	if strings.ContainsAny(s, "e") {
		s = fmt.Sprintf("%.4f", v)
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// Humanize writes v with an SI prefix: 1234 → "1.234k", 0.001 → "1m".
func Humanize(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("%.4g", v)
	}
	if math.Abs(v) >= 1 {
		prefix := ""
		for _, p := range []string{"k", "M", "G", "T", "P", "E"} {
			if math.Abs(v) < 1000 {
				break
			}
			prefix, v = p, v/1000
		}
		return trimFloat(v) + prefix
	}
	prefix := ""
	for _, p := range []string{"m", "u", "n", "p"} {
		if math.Abs(v) >= 1 {
			break
		}
		prefix, v = p, v*1000
	}
	return trimFloat(v) + prefix
}

// Humanize1024 writes v with a binary prefix: 1536 → "1.5Ki".
func Humanize1024(v float64) string {
	if math.Abs(v) <= 1 || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("%.4g", v)
	}
	prefix := ""
	for _, p := range []string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"} {
		if math.Abs(v) < 1024 {
			break
		}
		prefix, v = p, v/1024
	}
	return trimFloat(v) + prefix
}

// HumanizeDuration writes seconds as "1d 2h 3m 4s" (or "250ms" under 1s).
func HumanizeDuration(seconds float64) string {
	if math.IsNaN(seconds) || math.IsInf(seconds, 0) {
		return fmt.Sprintf("%.4g", seconds)
	}
	sign := ""
	if seconds < 0 {
		sign, seconds = "-", -seconds
	}
	if seconds < 1 {
		if seconds == 0 {
			return "0s"
		}
		return sign + trimFloat(seconds*1000) + "ms"
	}
	s := int64(seconds)
	parts := []string{}
	for _, u := range []struct {
		n   int64
		sfx string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}} {
		if s >= u.n {
			parts = append(parts, fmt.Sprintf("%d%s", s/u.n, u.sfx))
			s %= u.n
		}
	}
	return sign + strings.Join(parts, " ")
}
