package parse

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// The parsers as they were before their fast paths (a fixed-layout CRI
// line, two digits at a time, the fraction scaled once): the fast ones
// must agree with them on every input.

func refParseTime(b []byte) (int64, bool, bool) {
	if len(b) < len("2006-01-02T15:04:05Z") ||
		b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, false, false
	}
	ok := true
	year := refDigits(b[0:4], &ok)
	month := refDigits(b[5:7], &ok)
	day := refDigits(b[8:10], &ok)
	hour := refDigits(b[11:13], &ok)
	min := refDigits(b[14:16], &ok)
	sec := refDigits(b[17:19], &ok)
	if !ok || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || min > 59 || sec > 59 {
		return 0, false, false
	}
	b = b[19:]

	var nsec int64
	if len(b) >= 2 && b[0] == '.' && isDigit(b[1]) {
		n := 1
		scale := int64(1e9)
		for ; n < len(b) && isDigit(b[n]); n++ {
			if scale > 1 {
				scale /= 10
				nsec += int64(b[n]-'0') * scale
			}
		}
		b = b[n:]
	}

	var offset int64 // seconds east of UTC
	switch {
	case len(b) == 1 && b[0] == 'Z':
	case len(b) == len("+07:00") && (b[0] == '+' || b[0] == '-') && b[3] == ':':
		oh := refDigits(b[1:3], &ok)
		om := refDigits(b[4:6], &ok)
		if !ok || oh > 23 || om > 59 {
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

func refDigits(b []byte, ok *bool) int64 {
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			*ok = false
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

func refParseCRI(line []byte) (h Header, msg int, what string, field []byte) {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		if _, ok, outOfRange := refParseTime(line); ok || outOfRange {
			return Header{}, 0, "missing stream", nil
		}
		return Header{}, 0, "time", line
	}
	switch t, ok, outOfRange := refParseTime(line[:sp]); {
	case ok:
		h.setTime(t)
	case outOfRange:
		h.outOfRange(0, sp) // the stream and the message still count
	default:
		return Header{}, 0, "time", line[:sp]
	}
	pos := sp + 1

	sp = bytes.IndexByte(line[pos:], ' ')
	if sp < 0 {
		if pos == len(line) {
			return Header{}, 0, "missing stream", nil
		}
		return Header{}, 0, "missing tag after stream", line[pos:]
	}
	switch string(line[pos : pos+sp]) {
	case "stdout":
		h.Stream = ferryv1.StreamName_STREAM_STDOUT
	case "stderr":
		h.Stream = ferryv1.StreamName_STREAM_STDERR
	default:
		return Header{}, 0, "stream", line[pos : pos+sp]
	}
	pos += sp + 1

	// The tag is "P" or "F", possibly followed by more ':'-separated tags.
	tag := line[pos:]
	msg = len(line)
	if sp = bytes.IndexByte(tag, ' '); sp >= 0 {
		tag = tag[:sp]
		msg = pos + sp + 1
	}
	first := tag
	if i := bytes.IndexByte(tag, ':'); i >= 0 {
		first = tag[:i]
	}
	switch string(first) {
	case "P":
		h.setPartial(true)
	case "F":
	default:
		return Header{}, 0, "tag", tag
	}
	return h, msg, "", nil
}

func checkSameAsRef(t *testing.T, line []byte) {
	t.Helper()
	ns, ok, oor := parseTime(line)
	rns, rok, roor := refParseTime(line)
	if ns != rns || ok != rok || oor != roor {
		t.Fatalf("parseTime(%q) = %d %v %v, before %d %v %v", line, ns, ok, oor, rns, rok, roor)
	}
	h, msg, what, field := parseCRI(line)
	rh, rmsg, rwhat, rfield := refParseCRI(line)
	if h != rh || msg != rmsg || what != rwhat || !bytes.Equal(field, rfield) || (field == nil) != (rfield == nil) {
		t.Fatalf("parseCRI(%q) = %+v %d %q %q, before %+v %d %q %q", line, h, msg, what, field, rh, rmsg, rwhat, rfield)
	}
}

// TestParsersMatchBefore: CRI lines and times, well-formed and mutated
// byte by byte, parse as they did before the fast paths.
func TestParsersMatchBefore(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	seeds := []string{
		criTime + " stdout F message text", criTime + " stderr P ", criTime + " stderr P", criTime + " stdout F",
		criTime + " stdout F:x m", criTime + " stdout X m", criTime + " stdin F m", criTime + "  stdout F m",
		"2016-10-06T00:17:09.669794202+00:00 stdout F:x m", "2016-10-05T18:47:09-05:30 stdout F",
		"2016-13-06T00:17:09Z stdout F m", "2262-04-11T23:47:16.854775808Z stderr P late",
		"2262-04-11T23:47:16.854775807Z stdout F m", "1677-09-21T00:12:43.145224191Z stdout F m",
		"2024-02-29T23:59:59.9999999999Z stdout F m", "2023-02-29T23:59:59.999999999Z stdout F m",
		"9999-12-31T23:59:59.123456789Z stdout F m", "0000-01-01T00:00:00.000000000Z stdout F m",
		"2016-10-06T00:17:09.1Z stdout F m", "2016-10-06T00:17:09.66979420Z stdout F m",
	}
	for _, s := range seeds {
		checkSameAsRef(t, []byte(s))
		for range 3000 {
			b := []byte(s)
			for range 1 + r.IntN(3) {
				i := r.IntN(len(b))
				switch r.IntN(4) {
				case 0:
					b[i] = byte(r.IntN(256))
				case 1:
					b[i] = "0123456789 -:.TZ+FPstdoerux"[r.IntN(27)]
				case 2:
					b = b[:i]
				default:
					b = append(b[:i:i], append([]byte{"0 9.Z"[r.IntN(5)]}, b[i:]...)...)
				}
				if len(b) == 0 {
					break
				}
			}
			checkSameAsRef(t, b)
		}
	}
}
