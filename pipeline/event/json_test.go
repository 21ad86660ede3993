package event

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// refAppendString is appendString as it was before the fast path: one byte
// (or rune) at a time. The fast one must write exactly what it wrote.
func refAppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
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
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// checkString compares appendString (and appendBytes) of s with the byte
// loop, and checks that encoding/json reads the result back as s with each
// invalid byte replaced by U+FFFD.
func checkString(t *testing.T, s string) {
	t.Helper()
	want := refAppendString([]byte("x"), []byte(s))
	got := appendString([]byte("x"), s)
	if !bytes.Equal(got, want) {
		t.Fatalf("appendString(%q)\n got %q\nwant %q", s, got, want)
	}
	if got := appendBytes([]byte("x"), []byte(s)); !bytes.Equal(got, want) {
		t.Fatalf("appendBytes(%q)\n got %q\nwant %q", s, got, want)
	}
	var back string
	if err := json.Unmarshal(got[1:], &back); err != nil {
		t.Fatalf("appendString(%q) = %s: not JSON: %v", s, got, err)
	}
	if valid := strings.ToValidUTF8(s, "\uFFFD"); back != perByteFFFD(s) {
		t.Fatalf("appendString(%q) reads back as %q, want %q (strings.ToValidUTF8: %q)", s, back, perByteFFFD(s), valid)
	}
}

// perByteFFFD replaces each byte utf8.DecodeRuneInString rejects by U+FFFD
// (what encoding/json does too).
func perByteFFFD(s string) string {
	var sb strings.Builder
	for _, r := range s {
		sb.WriteRune(r)
	}
	return sb.String()
}

// TestAppendString: the fast path writes what the byte loop wrote, for
// strings whose special bytes fall at every position of an 8-byte word,
// and encoding/json reads it back.
func TestAppendString(t *testing.T) {
	specials := []string{
		"\"", "\\", "\n", "\r", "\t", "\x00", "\x01", "\x08", "\x0c", "\x1f", " ", "\x7f", "<", ">", "&",
		"é", "日", "🎉", "\u2028", "\u2029", "\u2027", "\u202a", "\xff", "\xfe", "\xc3", "\xe2\x80", "\xe2\x80\xa8"[:2],
		"\xed\xa0\x80",     // a surrogate: invalid
		"\xf4\x90\x80\x80", // above U+10FFFF: invalid
		"\xc0\xaf",         // overlong: invalid
		"\x80", "\xbf", "\"\\\"", "!", "#", "[", "]", "^", "`", "{", "~",
	}
	cases := []string{"", "a", "plain ascii text, 8+ bytes long", strings.Repeat("x", 64)}
	for _, sp := range specials {
		for pre := 0; pre <= 17; pre++ {
			for _, post := range []int{0, 1, 7, 9} {
				cases = append(cases, strings.Repeat("a", pre)+sp+strings.Repeat("b", post))
			}
		}
	}
	for _, s := range cases {
		checkString(t, s)
	}
}

// TestAppendStringRandom compares with the byte loop on random strings
// drawn mostly from the bytes that matter.
func TestAppendStringRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab \"\\\n\t\x00\x1f\x7f\x80\xbf\xc3\xa9\xe2\x80\xa8\xa9\xf0\x9f\x8e\x89\xff")
	buf := make([]byte, 0, 64)
	for range 200000 {
		buf = buf[:0]
		for range r.IntN(40) {
			if r.IntN(3) == 0 {
				buf = append(buf, alphabet[r.IntN(len(alphabet))])
			} else {
				buf = append(buf, byte(r.IntN(256)))
			}
		}
		checkString(t, string(buf))
	}
}

// wordPlain must answer true only for words of 8 plain bytes, whatever
// the position of the byte that is not.
func TestWordPlain(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 8; pos++ {
			for _, fill := range []byte{'a', ' ', '~', 0x7f, '!', '#', '[', ']'} {
				w := bytes.Repeat([]byte{fill}, 8)
				w[pos] = byte(c)
				var x uint64
				for i := 7; i >= 0; i-- {
					x = x<<8 | uint64(w[i])
				}
				if wordPlain(x) && !plain[c] {
					t.Fatalf("wordPlain(%q) = true", w)
				}
				if !wordPlain(x) && plain[c] && plain[fill] {
					t.Errorf("wordPlain(%q) = false for plain bytes (slow, not wrong)", w)
				}
			}
		}
	}
}

// FuzzAppendString: any bytes are written as the byte loop wrote them, and
// as JSON encoding/json reads back.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "hello", "a\"b\\c\n", "\xff\xfe", "x\u2028y", "日本語 🎉", "\x00\x1f\x7f", "12345678\"12345678"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkString(t, string(b))
	})
}

// TestAppendTime: appendTime writes what time.Time.AppendFormat wrote, for
// random instants over the whole range of int64 nanoseconds, in any zone,
// at the edges (the epoch, the ends of the range, leap days, year ends),
// and for times outside the years it computes itself.
func TestAppendTime(t *testing.T) {
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("plus", 5*3600+45*60), time.FixedZone("minus", -12*3600)}
	if ny, err := time.LoadLocation("America/New_York"); err == nil {
		zones = append(zones, ny)
	}
	check := func(tm time.Time) {
		t.Helper()
		for _, z := range zones {
			tz := tm.In(z)
			want := tz.UTC().AppendFormat([]byte("x"), timeLayout)
			if got := appendTime([]byte("x"), tz); !bytes.Equal(got, want) {
				t.Fatalf("appendTime(%v) = %s, want %s", tz, got, want)
			}
		}
	}
	for _, ns := range []int64{0, -1, 1, 999999999, -999999999, 1e9, -1e9, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1} {
		check(time.Unix(0, ns))
	}
	for y := -3; y <= 10002; y++ {
		if y > 40 && y < 1580 || y > 2400 && y < 9960 {
			continue
		}
		for _, md := range [][2]int{{1, 1}, {2, 28}, {2, 29}, {3, 1}, {12, 31}} {
			for _, sec := range []int{0, 1, 86399} {
				check(time.Date(y, time.Month(md[0]), md[1], 0, 0, sec, 123456789, time.UTC))
				check(time.Date(y, time.Month(md[0]), md[1], 0, 0, sec, 0, time.UTC).Add(-time.Nanosecond))
			}
		}
	}
	for _, tm := range []time.Time{
		{}, // year 1
		time.Date(0, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 2, 29, 23, 59, 59, 999999999, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(1972, 6, 30, 23, 59, 60, 0, time.UTC), // a leap second: Go has none, it is 07-01
		time.Now(),
	} {
		check(tm)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 300000 {
		check(time.Unix(0, int64(r.Uint64())))
	}
	for range 100000 {
		check(time.Unix(r.Int64N(lastSecond-firstSecond)+firstSecond, r.Int64N(1e9)))
	}
}

// TestFixedFieldTopLevel: fixedField's quick answer by top-level name
// agrees with comparing against every fixed field, for the fixed fields
// themselves, objects above and fields below them, and other names.
func TestFixedFieldTopLevel(t *testing.T) {
	names := []string{"source.ip", "http.response.status_code", "url.path", "haproxy.backend_name", "event", "eventx", "events.x",
		"service", "services", "orchestrator.x", "labels.a", "a.b.c", "", ".", "kubernetes", "kubernetes.labels", "kubernetes.labelsx",
		"kubernetes.labels.app", "container.image.name.x", "metricset", "metricset.name.x", "host.ip", "log.level"}
	for _, f := range append(fixedFields, metaFields...) {
		names = append(names, f, f+".x", f+"x")
		for i := range f {
			if f[i] == '.' {
				names = append(names, f[:i])
			}
		}
	}
	for _, k := range names {
		for _, enriched := range []bool{false, true} {
			want := clashes(k, fixedFields) || (enriched && clashes(k, metaFields))
			if got := fixedField(k, enriched); got != want {
				t.Errorf("fixedField(%q, %v) = %v, want %v", k, enriched, got, want)
			}
		}
	}
}

// TestAppendDataStreamAndID: the appending forms say what DataStream and
// IDString say.
func TestAppendDataStreamAndID(t *testing.T) {
	b := &Batch{Node: "n", Events: []*ferryv1.Event{benchEvent(), haproxyEvent(), metricEvent(), benchEvent(), {}}, Meta: []*Meta{benchMeta(), benchMeta(), nil, {}}}
	for i, e := range b.Events {
		if got := string(b.AppendDataStream([]byte("x"), i)); got != "x"+b.DataStream(i) {
			t.Errorf("event %d: AppendDataStream %s, want x%s", i, got, b.DataStream(i))
		}
		if got := string(AppendIDString([]byte("x"), e.GetId())); got != "x"+IDString(e.GetId()) {
			t.Errorf("event %d: AppendIDString %s, want x%s", i, got, IDString(e.GetId()))
		}
	}
}
