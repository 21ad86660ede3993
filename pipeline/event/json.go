package event

import (
	"encoding/binary"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// This file holds the two encoders every document runs for each event: JSON
// strings (appendString) and RFC 3339 times (appendTime). Both write
// exactly what the straightforward versions wrote (a byte loop and
// time.Time.AppendFormat; see json_test.go), only faster.

const hexDigits = "0123456789abcdef"

// plain[c] is set for the bytes a JSON string holds as they are: ASCII
// from ' ' on (DEL included), except '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// SWAR constants: one in each byte, the high bit of each byte.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// wordPlain reports whether the 8 bytes of x (any order) are all plain:
// none is below 0x20, '"', '\\' or at or above 0x80. It may answer false
// for a plain word (a borrow across bytes), never true for another: false
// only sends the word through the byte loop.
func wordPlain(x uint64) bool {
	below := (x - ones*0x20) &^ x
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return (below|(q-ones)&^q|(bs-ones)&^bs|x)&highs == 0
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, so
// the document is always valid JSON. Runs of bytes that need no escaping,
// the common case, are found 8 bytes at a time and copied with one append.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start, i := 0, 0
	for {
		for i+8 <= len(s) && wordPlain(word(s[i:])) {
			i += 8
		}
		for i < len(s) && plain[s[i]] {
			i++
		}
		if i >= len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		// A run of other characters, copied as they are but for invalid
		// bytes and the JavaScript line separators.
		for i < len(s) && s[i] >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\ufffd"...)
				start = i + 1
			case r == '\u2028' || r == '\u2029':
				dst = append(dst, s[start:i]...)
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
				start = i + size
			}
			i += size
		}
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// word returns the first 8 bytes of s (which has them) as one word.
func word(s string) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), 8))
}

// appendBytes is appendString of b, without copying it: b is only read
// during the call.
func appendBytes(dst, b []byte) []byte {
	return appendString(dst, unsafe.String(unsafe.SliceData(b), len(b)))
}

// timeLayout is what appendTime writes.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Seconds from the Unix epoch to 0000-03-01T00:00:00Z and to the end of
// 9999-12-31: the times appendTime computes itself (the first two months
// of year 0 are left to AppendFormat, so that day numbers start at 0).
const (
	firstSecond = -62162035200
	lastSecond  = 253402300799
)

// appendTime writes t in UTC as RFC 3339 with nanoseconds, which
// Elasticsearch's date_nanos keeps exactly: t.UTC().AppendFormat(dst,
// timeLayout), computed directly from the Unix time from year 0 (March)
// to 9999 (every time an int64 of nanoseconds holds), without interpreting
// a layout.
func appendTime(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	if sec < firstSecond || sec > lastSecond {
		return t.UTC().AppendFormat(dst, timeLayout)
	}
	days := (sec - firstSecond) / 86400 // since 0000-03-01, never negative
	sod := int(sec - firstSecond - days*86400)
	var b [len(timeLayout)]byte
	putDate(b[:10], days)
	b[10] = 'T'
	putPair(b[11:13], sod/3600)
	b[13] = ':'
	putPair(b[14:16], sod/60%60)
	b[16] = ':'
	putPair(b[17:19], sod%60)
	b[19] = '.'
	putFraction(b[20:29], t.Nanosecond())
	b[29] = 'Z'
	return append(dst, b[:]...)
}

// putPair writes the two digits of n (below 100) into b. Byte by byte: a
// copy from pairs would call memmove for two bytes.
func putPair(b []byte, n int) {
	_ = b[1]
	b[0], b[1] = pairs[2*n], pairs[2*n+1]
}

// putFraction writes the 9 digits of ns (below 1e9) into b.
func putFraction(b []byte, ns int) {
	_ = b[8]
	hi, mid, lo := ns/1e6, ns/1e3%1e3, ns%1e3
	b[0] = byte('0' + hi/100)
	putPair(b[1:3], hi%100)
	b[3] = byte('0' + mid/100)
	putPair(b[4:6], mid%100)
	b[6] = byte('0' + lo/100)
	putPair(b[7:9], lo%100)
}

// pairs holds the two digits of 00 to 99.
const pairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// dates caches the last days putDate computed, one per day modulo 4:
// day<<32 | year<<9 | month<<5 | day of month; 0: none. The events of a
// batch, and the time they are taken, fall on a few days: civil runs
// about once a day.
var dates [4]atomic.Uint64

// putDate writes YYYY-MM-DD of day (counted from 0000-03-01) into b.
func putDate(b []byte, day int64) {
	slot := &dates[day&3]
	c := slot.Load()
	y, m, d := int(c>>9&0x3fff), int(c>>5&0xf), int(c&0x1f)
	if c == 0 || int64(c>>32) != day {
		y, m, d = civil(day)
		slot.Store(uint64(day)<<32 | uint64(y)<<9 | uint64(m)<<5 | uint64(d))
	}
	putPair(b[0:2], y/100)
	putPair(b[2:4], y%100)
	b[4] = '-'
	putPair(b[5:7], m)
	b[7] = '-'
	putPair(b[8:10], d)
}

// civil returns the proleptic Gregorian date of day z, counted from
// 0000-03-01 (z = 0; Howard Hinnant's civil_from_days with the era shift
// folded in): z is never negative here.
func civil(z int64) (year, month, day int) {
	era := z / 146097
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}
