package parse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var jsonUnmarshal = json.Unmarshal

// toValid is the reference replacement of invalid UTF-8: a string to rune
// conversion turns each byte utf8.DecodeRune rejects into U+FFFD.
func toValid(b []byte) string { return string([]rune(string(b))) }

// checkAppend runs Append and checks what holds for every format and line:
// no panic, dst's prefix kept, the message valid UTF-8, replaced reported
// consistently, and on error the raw line with a zero Header.
func checkAppend(t testing.TB, f Format, line []byte) (msg []byte, h Header, err error) {
	t.Helper()
	prefix := []byte("pre\xff") // dst is not Append's to validate
	out, h, replaced, err := Append(bytes.Clone(prefix), f, line)
	if !bytes.Equal(out[:len(prefix)], prefix) {
		t.Fatalf("%v %q: dst prefix clobbered: %q", f, line, out)
	}
	msg = out[len(prefix):]
	if !utf8.Valid(msg) {
		t.Fatalf("%v %q: message %q is not valid UTF-8", f, line, msg)
	}
	if replaced && !bytes.Contains(msg, []byte("\uFFFD")) {
		t.Fatalf("%v %q: replaced but no U+FFFD in %q", f, line, msg)
	}
	if err != nil {
		if (f == FormatCRI || f == FormatDocker) != errors.Is(err, ErrMalformed) {
			t.Fatalf("%v %q: error %v: wrong ErrMalformed wrapping", f, line, err)
		}
		if want := toValid(line); string(msg) != want {
			t.Fatalf("%v %q: error %v: message %q, want the raw line %q", f, line, err, msg, want)
		}
		if replaced != !utf8.Valid(line) {
			t.Fatalf("%v %q: error %v: replaced = %v", f, line, err, replaced)
		}
		if h != (Header{}) {
			t.Fatalf("%v %q: error %v: header %+v, want zero", f, line, err, h)
		}
	}
	return msg, h, err
}

var (
	minTime     = time.Unix(0, math.MinInt64)
	maxTime     = time.Unix(0, math.MaxInt64)
	rfc3339Form = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$`)
)

// checkTime compares ParseTime with time.Parse. time.Parse is more lenient
// than RFC 3339 in places (one-digit hours, ',' before the fraction), so a
// rejection is only wrong for a string of the strict form.
func checkTime(t testing.TB, s string) {
	t.Helper()
	got, ok := ParseTime([]byte(s))
	tm, err := time.Parse(time.RFC3339Nano, s)
	inRange := err == nil && !tm.Before(minTime) && !tm.After(maxTime)
	if ok && (!inRange || tm.UnixNano() != got) {
		t.Fatalf("ParseTime(%q) = %d, time.Parse: %v %v", s, got, tm, err)
	}
	if !ok && inRange && rfc3339Form.MatchString(s) {
		t.Fatalf("ParseTime(%q) rejects what time.Parse reads as %v", s, tm)
	}
	got2, ok2, outOfRange := TimeInRange([]byte(s))
	if got2 != got || ok2 != ok || ok && outOfRange {
		t.Fatalf("TimeInRange(%q) = %d, %v, %v; ParseTime %d, %v", s, got2, ok2, outOfRange, got, ok)
	}
	if outOfRange && (err != nil || inRange) {
		t.Fatalf("TimeInRange(%q) says out of range, time.Parse: %v %v", s, tm, err)
	}
	if !ok && !outOfRange && err == nil && rfc3339Form.MatchString(s) {
		t.Fatalf("TimeInRange(%q) rejects what time.Parse reads as %v", s, tm)
	}
}

// renderCRI formats a CRI line in canonical form: the time as containerd
// writes it (RFC3339Nano in UTC), or with the given zone offset in seconds.
func renderCRI(ns int64, zone int, isErr, partial bool, msg []byte) []byte {
	tm := time.Unix(0, ns).UTC()
	var ts string
	switch zone {
	case 0:
		ts = tm.Format(time.RFC3339Nano)
	case 1: // CRI-O style explicit zero offset
		ts = strings.TrimSuffix(tm.Format(time.RFC3339Nano), "Z") + "+00:00"
	default:
		ts = tm.In(time.FixedZone("", zone)).Format(time.RFC3339Nano)
	}
	stream, tag := "stdout", "F"
	if isErr {
		stream = "stderr"
	}
	if partial {
		tag = "P"
	}
	return fmt.Appendf(nil, "%s %s %s %s", ts, stream, tag, msg)
}

func FuzzCRI(f *testing.F) {
	f.Add([]byte(criTime+" stdout F message text"), int64(1475713029669794202), uint8(0))
	f.Add([]byte(criTime+" stderr P "), int64(0), uint8(3))
	f.Add([]byte("2016-10-06T00:17:09.669794202+00:00 stdout F:x m"), int64(-1), uint8(7))
	f.Add([]byte("2016-10-05T18:47:09-05:30 stdout F"), int64(math.MinInt64), uint8(12))
	f.Add([]byte("2016-13-06T00:17:09Z stdout F m"), int64(math.MaxInt64), uint8(13))
	f.Add([]byte(criTime+" stdout F a\xffb\r"), int64(1), uint8(2))
	f.Add([]byte(""), int64(0), uint8(0))
	f.Add([]byte("2262-04-11T23:47:16.854775808Z stderr P late"), int64(0), uint8(0))
	zones := [...]int{0, 1, 5*3600 + 1800, -8 * 3600}
	f.Fuzz(func(t *testing.T, line []byte, ns int64, flags uint8) {
		checkSameAsRef(t, line)
		// Any line: the common properties, and agreement with Detect and
		// time.Parse on success.
		msg, h, err := checkAppend(t, FormatCRI, line)
		if err == nil {
			if Detect(line) != FormatCRI {
				t.Fatalf("%q parses as CRI but Detect says %v", line, Detect(line))
			}
			sp := bytes.IndexByte(line, ' ')
			checkTime(t, string(line[:sp]))
			_, ok, outOfRange := TimeInRange(line[:sp])
			if s, e := h.TimeText(); h.HasTime() != ok || h.TimeOutOfRange() != outOfRange ||
				outOfRange && (s != 0 || e != min(sp, MaxTimeText)) || !outOfRange && e != 0 {
				t.Fatalf("%q: header %+v, time in range %v, out of range %v", line, h, ok, outOfRange)
			}
			if !bytes.HasSuffix(line, msg) && utf8.Valid(line) {
				t.Fatalf("%q: message %q is not the line's tail", line, msg)
			}
		}

		// A canonical line made from the inputs: parses, and re-renders to itself.
		isErr, partial, zone := flags&1 != 0, flags&2 != 0, zones[flags>>2&3]
		canon := renderCRI(ns, zone, isErr, partial, line)
		msg, h, err = checkAppend(t, FormatCRI, canon)
		if err != nil {
			t.Fatalf("canonical %q: %v", canon, err)
		}
		want := Header{Stream: stdout}
		want.setTime(ns)
		want.setPartial(partial)
		if isErr {
			want.Stream = stderr
		}
		if h != want {
			t.Fatalf("canonical %q: header %+v, want %+v", canon, h, want)
		}
		if string(msg) != toValid(line) {
			t.Fatalf("canonical %q: message %q, want %q", canon, msg, toValid(line))
		}
		if back := renderCRI(h.Time, zone, h.Stream == stderr, h.Partial(), msg); utf8.Valid(line) && !bytes.Equal(back, canon) {
			t.Fatalf("re-rendered %q, want %q", back, canon)
		}
		if len(line) == 0 { // "<time> <stream> <tag>" without the space
			bare := canon[:len(canon)-1]
			if msg, h2, err := checkAppend(t, FormatCRI, bare); err != nil || len(msg) != 0 || h2 != h {
				t.Fatalf("%q: %q %+v %v", bare, msg, h2, err)
			}
		}
	})
}

// checkDocker compares Append in Docker format with encoding/json's reading
// of the same line.
func checkDocker(t testing.TB, line []byte) {
	t.Helper()
	msg, h, err := checkAppend(t, FormatDocker, line)
	valid := json.Valid(line)
	if err == nil && !valid {
		t.Fatalf("%q: accepted, but encoding/json says it is not JSON", line)
	}
	if fail := scanDocker2(line); valid && fail {
		t.Fatalf("%q: JSON syntax error %v, but encoding/json says it is valid", line, err)
	}
	var m map[string]any
	if json.Unmarshal(line, &m) != nil || m == nil {
		return // not an object, or a number encoding/json cannot hold
	}
	logv, ok := m["log"].(string)
	wantErr := !ok
	var want Header
	if v, has := m["stream"]; has {
		switch v {
		case "stdout":
			want.Stream = stdout
		case "stderr":
			want.Stream = stderr
		default:
			wantErr = true
		}
	}
	if v, has := m["time"]; has {
		s, ok := v.(string)
		outOfRange := false
		if ok {
			checkTime(t, s)
			var ns int64
			if ns, ok, outOfRange = TimeInRange([]byte(s)); ok {
				want.setTime(ns)
			}
		}
		if outOfRange && err == nil {
			// The time as it stands in the line, cut to MaxTimeText.
			start, end := h.TimeText()
			want.outOfRange(start, end)
			raw := line[start:end]
			var back string
			if start <= 0 || end > len(line) || line[start-1] != '"' ||
				len(raw) < MaxTimeText && (line[end] != '"' || json.Unmarshal(fmt.Appendf(nil, `"%s"`, raw), &back) != nil || back != s) {
				t.Fatalf("%q: out-of-range time at [%d:%d] is not %q as written", line, start, end, s)
			}
		}
		wantErr = wantErr || !ok && !outOfRange
	}
	if wantErr {
		if err == nil {
			t.Fatalf("%q: accepted, want an error (encoding/json: %v)", line, m)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	wantMsg, trimmed := strings.CutSuffix(logv, "\n")
	want.setPartial(!trimmed)
	if string(msg) != wantMsg {
		t.Fatalf("%q: message %q, encoding/json says %q", line, msg, wantMsg)
	}
	if h != want {
		t.Fatalf("%q: header %+v, want %+v", line, h, want)
	}
	if Detect(line) != FormatDocker {
		t.Fatalf("%q parses as Docker but Detect says %v", line, Detect(line))
	}
}

// scanDocker2 reports whether scanDocker finds a JSON syntax error (as
// opposed to valid JSON that is not a Docker line).
func scanDocker2(line []byte) bool {
	_, _, fail := scanDocker(line)
	switch fail.what {
	case "truncated JSON", "invalid character", "invalid character after object":
		return true
	case "not a JSON object":
		trimmed := bytes.TrimLeft(line, " \t\r\n")
		return len(trimmed) == 0 || !strings.ContainsRune(`[{"-0123456789tfn`, rune(trimmed[0]))
	}
	return false
}

// escapeAll writes s as a JSON string with every character but plain ASCII
// letters as a \u escape (surrogate pairs beyond the BMP) and invalid UTF-8
// bytes left raw.
func escapeAll(s []byte) []byte {
	b := []byte{'"'}
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, s[0])
		case 'a' <= r && r <= 'z':
			b = append(b, byte(r))
		case r > 0xFFFF:
			r -= 0x10000
			b = fmt.Appendf(b, `\u%04X\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			b = fmt.Appendf(b, `\u%04x`, r)
		}
		s = s[n:]
	}
	return append(b, '"')
}

func FuzzDocker(f *testing.F) {
	f.Add([]byte(`{"log":"hello world\n","stream":"stdout","time":"`+dockerTime+`"}`), "hello\n")
	f.Add([]byte(`{"log":"q\" b\\ \t \u00e9 \ud83d\ude00 \ud83d \ude00\n","stream":"stderr"}`), "\xed\xa0\xbd")
	f.Add([]byte(`{"time":"2019-01-01T12:11:11+01:00","attrs":{"a":[1,-2.5e3,true,null]},"log":"x"}`), "é😀\x00\n\n")
	f.Add([]byte(`{"log":"a","log":"b\n","\u006cog":"c"}`), "a\xffb\xe2\x82")
	f.Add([]byte(`{"log":"hello\n","stream":"std`), "")
	f.Add([]byte("{\"log\":\"a\xffb\xed\xa0\x80\\n\"}"), "<>&\u2028")
	f.Add([]byte(`{"log":1e400}`), "\r\n")
	f.Add([]byte(`not json`), "x")
	f.Fuzz(func(t *testing.T, line []byte, msg string) {
		checkDocker(t, line)

		// msg as raw JSON in a value's place: the validator against
		// json.Valid on arbitrary values, and the string scanner on
		// arbitrary string content.
		checkDocker(t, fmt.Appendf(nil, `{"log":"x\n","v":%s}`, msg))
		checkDocker(t, fmt.Appendf(nil, `{"log":"%s"}`, msg))
		checkDocker(t, fmt.Appendf(nil, `{"log":%s}`, msg))

		// Lines built from msg by encoding/json and by escapeAll.
		enc, _ := json.Marshal(msg)
		for _, l := range [][]byte{
			fmt.Appendf(nil, `{"log":%s,"stream":"stderr","time":"%s"}`, enc, dockerTime),
			fmt.Appendf(nil, `{"stream":"stdout","log":%s}`, escapeAll([]byte(msg))),
		} {
			checkDocker(t, l)
			got, h, err := checkAppend(t, FormatDocker, l)
			want, trimmed := strings.CutSuffix(toValid([]byte(msg)), "\n")
			if err != nil || string(got) != want || h.Partial() == trimmed {
				t.Fatalf("%q: %q %+v %v, want %q", l, got, h, err, want)
			}
		}
	})
}

func FuzzDetectAppend(f *testing.F) {
	f.Add([]byte(criTime + " stdout F message text"))
	f.Add([]byte(`{"log":"hello world\n","stream":"stdout","time":"` + dockerTime + `"}`))
	f.Add([]byte("plain text line\r"))
	f.Add([]byte(""))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte(`{"msg":"app json"}`))
	f.Add([]byte("2016-10-06T00:17:09Z stdout X m"))
	f.Fuzz(func(t *testing.T, line []byte) {
		got := Detect(line)
		switch got {
		case FormatCRI, FormatDocker, FormatPlain:
		default:
			t.Fatalf("Detect(%q) = %v", line, got)
		}
		if _, _, err := checkAppend(t, got, line); err != nil {
			t.Fatalf("Detect(%q) = %v, but Append fails: %v", line, got, err)
		}
		for _, f := range []Format{FormatAuto, FormatCRI, FormatDocker, FormatPlain, Format(200)} {
			msg, h, err := checkAppend(t, f, line)
			switch f {
			case FormatPlain:
				if err != nil || string(msg) != toValid(line) || h != (Header{}) {
					t.Fatalf("plain %q: %q %+v %v", line, msg, h, err)
				}
			case FormatAuto, Format(200):
				if err == nil {
					t.Fatalf("%v %q: no error", f, line)
				}
			default:
				if (err == nil) != (got == f) {
					t.Fatalf("%v %q: err %v, but Detect says %v", f, line, err, got)
				}
			}
		}
		checkDocker(t, line)
		buf, replaced := AppendValid(nil, line)
		if string(buf) != toValid(line) || replaced == utf8.Valid(line) {
			t.Fatalf("AppendValid(%q) = %q, %v", line, buf, replaced)
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		criTime, "2016-10-06T00:17:09+05:30", "1677-09-21T00:12:43.145224192Z",
		"2262-04-11T23:47:16.854775807Z", "2024-02-29T23:59:59.9999999999Z", "2016-01-01T0:00:00Z",
		"2262-04-11T23:47:16.854775808Z", "1677-09-21T00:12:43.145224191Z", "0000-01-01T00:00:00-23:59",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkTime(t, s)
		checkSameAsRef(t, []byte(s))
		if ns, ok := ParseTime([]byte(s)); ok {
			// What time formats, ParseTime reads back.
			back := time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
			if ns2, ok := ParseTime([]byte(back)); !ok || ns2 != ns {
				t.Fatalf("%q -> %d -> %q -> %d %v", s, ns, back, ns2, ok)
			}
		}
	})
}
