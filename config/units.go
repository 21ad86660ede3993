package config

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in YAML as "250ms", "1s", "2m", "1h30m",
// "7d" (whole days), or as a bare integer meaning seconds.
type Duration time.Duration

// String formats d like time.Duration without trailing zero units: "2m",
// "1h30m", "250ms"; whole days print as "7d".
func (d Duration) String() string {
	td := time.Duration(d)
	if td > 0 && td%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	}
	s := td.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText implements encoding.TextMarshaler (used by JSON and YAML).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalText implements encoding.TextUnmarshaler (used by yaml.Unmarshal too).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("invalid duration %q (want e.g. 250ms, 1s, 2m, 1h30m, 7d, or whole seconds)", s)
	mul, num := int64(time.Second), s
	if n, ok := strings.CutSuffix(s, "d"); ok {
		mul, num = int64(24*time.Hour), n
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil || num != s {
		if err != nil {
			return 0, bad
		}
		if n > math.MaxInt64/mul || n < math.MinInt64/mul {
			return 0, fmt.Errorf("duration %q is too large", s)
		}
		return Duration(n * mul), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad
	}
	return Duration(v), nil
}

// ByteSize is a number of bytes, written in YAML as an integer or with a unit:
// B; KB, MB, GB, TB (powers of 1000); KiB, MiB, GiB, TiB or Ki, Mi, Gi, Ti
// (powers of 1024). Units are case-insensitive; a decimal fraction is allowed
// if the result is a whole number of bytes ("1.5KiB"). The ambiguous single
// letters K, M, G are rejected.
type ByteSize int64

// Binary byte-size units.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

var sizeUnits = []struct {
	name string
	size int64
}{
	{"B", 1}, {"", 1},
	{"KiB", int64(KiB)}, {"MiB", int64(MiB)}, {"GiB", int64(GiB)}, {"TiB", int64(TiB)},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"Ki", int64(KiB)}, {"Mi", int64(MiB)}, {"Gi", int64(GiB)}, {"Ti", int64(TiB)},
}

// String formats b with the largest unit that divides it exactly: "256KiB",
// "5MB", "1536B".
func (b ByteSize) String() string {
	unit := sizeUnits[0]
	for _, u := range sizeUnits[2:10] {
		if b != 0 && int64(b)%u.size == 0 && u.size > unit.size {
			unit = u
		}
	}
	return strconv.FormatInt(int64(b)/unit.size, 10) + unit.name
}

// MarshalText implements encoding.TextMarshaler (used by JSON and YAML).
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// UnmarshalText implements encoding.TextUnmarshaler (used by yaml.Unmarshal too).
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := parseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func parseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	bad := fmt.Errorf("invalid byte size %q (want e.g. 1024, 512B, 256KiB, 5MiB, 1GiB, 5MB)", s)
	if !strings.ContainsAny(num, "0123456789") {
		return 0, bad
	}
	var mul int64 = -1
	for _, u := range sizeUnits {
		if strings.EqualFold(unit, u.name) {
			mul = u.size
			break
		}
	}
	r, ok := new(big.Rat).SetString(num)
	if mul < 0 || !ok {
		return 0, bad
	}
	r.Mul(r, new(big.Rat).SetInt64(mul))
	if !r.IsInt() {
		return 0, fmt.Errorf("byte size %q is not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("byte size %q is too large", s)
	}
	return ByteSize(r.Num().Int64()), nil
}
