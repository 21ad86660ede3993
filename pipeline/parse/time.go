package parse

import (
	"math"
	"sync/atomic"
	"time"
)

// ParseTime parses an RFC 3339 time, "2006-01-02T15:04:05Z" with an optional
// fraction of seconds after a '.' and either 'Z' or a "±hh:mm" offset, into
// Unix nanoseconds. It accepts exactly what time.Parse(time.RFC3339Nano, ...)
// accepts on its strict fast path: 'T' and 'Z' upper case, fields in range
// (second 60 is rejected), offset hours up to 23; fraction digits beyond the
// ninth are truncated, as time.Parse does. It reports false for anything
// else and for times outside the int64 nanosecond range (1677-09-21 to
// 2262-04-11). It does not allocate.
func ParseTime(b []byte) (int64, bool) {
	ns, ok, _ := parseTime(b)
	return ns, ok
}

// TimeInRange is ParseTime telling apart the two reasons for false: a
// well-formed RFC 3339 time outside the int64 nanosecond range (before
// 1677-09-21T00:12:43.145224192Z or after 2262-04-11T23:47:16.854775807Z,
// which is also the range of Elasticsearch's date_nanos) reports ok false
// and outOfRange true; anything else ParseTime refuses reports both false.
func TimeInRange(b []byte) (ns int64, ok, outOfRange bool) {
	return parseTime(b)
}

func parseTime(b []byte) (int64, bool, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") ||
		b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, false, false
	}
	y1, ok1 := two2(b, 0)
	y2, ok2 := two2(b, 2)
	month, ok3 := two2(b, 5)
	day, ok4 := two2(b, 8)
	hour, ok5 := two2(b, 11)
	min, ok6 := two2(b, 14)
	sec, ok7 := two2(b, 17)
	year := y1*100 + y2
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || min > 59 || sec > 59 {
		return 0, false, false
	}
	b = b[19:]

	var nsec int64
	if len(b) >= 2 && b[0] == '.' && isDigit(b[1]) {
		// Up to nine digits count; more are read and dropped.
		n, k := 1, 0
		for ; n < len(b) && isDigit(b[n]); n++ {
			if k < 9 {
				nsec = nsec*10 + int64(b[n]-'0')
				k++
			}
		}
		nsec *= pow10[9-k]
		b = b[n:]
	}

	var offset int64 // seconds east of UTC
	switch {
	case len(b) == 1 && b[0] == 'Z':
	case len(b) == len("+07:00") && (b[0] == '+' || b[0] == '-') && b[3] == ':':
		oh, ok1 := two2(b, 1)
		om, ok2 := two2(b, 4)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false, false
		}
		offset = (oh*60 + om) * 60
		if b[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false, false
	}

	secs := daysFromCivil(year, month, day)*86400 + hour*3600 + min*60 + sec - offset
	const (
		minSec  = math.MinInt64 / 1_000_000_000 // -9223372036 (truncated toward zero)
		maxSec  = math.MaxInt64 / 1_000_000_000 // 9223372036
		maxNsec = math.MaxInt64 % 1_000_000_000 // 854775807
	)
	// math.MinInt64 = (minSec-1)*1e9 + (1e9-maxNsec-1)
	if secs > maxSec || secs < minSec-1 ||
		(secs == maxSec && nsec > maxNsec) ||
		(secs == minSec-1 && nsec < 1e9-maxNsec-1) {
		return 0, false, true
	}
	// Near the bottom of the range secs*1e9 overflows before nsec brings it
	// back; Go's signed arithmetic wraps, so the sum is still exact.
	return secs*1e9 + nsec, true, false
}

var pow10 = [10]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// two2 parses the two decimal digits at b[i:i+2].
func two2(b []byte, i int) (int64, bool) {
	d0, d1 := b[i]-'0', b[i+1]-'0'
	return int64(d0)*10 + int64(d1), d0 <= 9 && d1 <= 9
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func daysIn(month, year int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the number of days from 1970-01-01 to the given
// proleptic Gregorian date (Howard Hinnant's algorithm), for years 0-9999.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := m + 9
	if m > 2 {
		mp = m - 3
	}
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// zoneSpan is a time zone's offset over a span of time: from start to end
// (Unix seconds, end excluded) loc is offset seconds east of UTC.
type zoneSpan struct {
	loc        *time.Location
	offset     int64
	start, end int64
}

// lastZone is the span localUnixNano used last (for any goroutine): the
// lines of a log come in order, so one span serves almost every line.
var lastZone atomic.Pointer[zoneSpan]

// localUnixNano is time.Date(year, month, day, hour, min, sec, nsec,
// loc).UnixNano(), exactly, for fields in range (sec up to 60, a day past
// its month's end, which time.Date normalises the same way, years 0 to
// 9999) and 0 <= nsec < 1e9; it skips time.Date's zone lookups while the
// time falls in the zone span of the previous call. time.Date takes the
// offset of the zone in effect at the wall time read as UTC, and keeps it
// if the result falls in the same span: when both instants are inside
// one cached span, that is the cached offset.
func localUnixNano(year, month, day, hour, min, sec, nsec int, loc *time.Location) int64 {
	wall := daysFromCivil(int64(year), int64(month), int64(day))*86400 + int64(hour)*3600 + int64(min)*60 + int64(sec)
	if z := lastZone.Load(); z != nil && z.loc == loc && wall >= z.start && wall < z.end {
		if utc := wall - z.offset; utc >= z.start && utc < z.end {
			return utc*1e9 + int64(nsec)
		}
	}
	t := time.Date(year, time.Month(month), day, hour, min, sec, nsec, loc)
	_, offset := t.Zone()
	start, end := t.ZoneBounds()
	z := &zoneSpan{loc: loc, offset: int64(offset), start: math.MinInt64, end: math.MaxInt64}
	if !start.IsZero() {
		z.start = start.Unix()
	}
	if !end.IsZero() {
		z.end = end.Unix()
	}
	lastZone.Store(z)
	return t.UnixNano()
}
