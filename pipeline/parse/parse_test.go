package parse

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

const (
	stdout = ferryv1.StreamName_STREAM_STDOUT
	stderr = ferryv1.StreamName_STREAM_STDERR
)

// ts is the Unix nanosecond time of an RFC 3339 string, via the standard library.
func ts(t testing.TB, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixNano()
}

type appendCase struct {
	name     string
	line     string
	msg      string // for a malformed line: the raw line, made valid UTF-8
	time     string // RFC 3339, "" for no time
	oor      string // a time out of range, as the line has it (Header.TimeText)
	stream   ferryv1.StreamName
	partial  bool
	replaced bool
	err      string // substring of the error; "" for success
}

const (
	criTime    = "2016-10-06T00:17:09.669794202Z"
	dockerTime = "2019-01-01T11:11:11.111111111Z"
)

var criCases = []appendCase{
	{name: "full stdout", line: criTime + " stdout F message text", msg: "message text", time: criTime, stream: stdout},
	{name: "partial", line: criTime + " stdout P first half", msg: "first half", time: criTime, stream: stdout, partial: true},
	{name: "stderr", line: criTime + " stderr F oops", msg: "oops", time: criTime, stream: stderr},
	{name: "empty message with space", line: criTime + " stdout F ", msg: "", time: criTime, stream: stdout},
	{name: "empty message without space", line: criTime + " stderr F", msg: "", time: criTime, stream: stderr},
	{name: "empty partial", line: criTime + " stdout P", msg: "", time: criTime, stream: stdout, partial: true},
	{name: "message spaces kept", line: criTime + " stdout F   indented  text ", msg: "  indented  text ", time: criTime, stream: stdout},
	{name: "message looks like header", line: criTime + " stdout F " + criTime + " stderr P x", msg: criTime + " stderr P x", time: criTime, stream: stdout},
	{name: "tag with extras full", line: criTime + " stdout F:x:y msg", msg: "msg", time: criTime, stream: stdout},
	{name: "tag with extras partial", line: criTime + " stdout P:foo msg", msg: "msg", time: criTime, stream: stdout, partial: true},
	{name: "carriage return kept", line: criTime + " stdout F dos line\r", msg: "dos line\r", time: criTime, stream: stdout},
	{name: "offset zero", line: "2016-10-06T00:17:09.669794202+00:00 stdout F m", msg: "m", time: criTime, stream: stdout},
	{name: "offset east", line: "2016-10-06T02:17:09.669794202+02:00 stdout F m", msg: "m", time: criTime, stream: stdout},
	{name: "offset west half hour", line: "2016-10-05T18:47:09.669794202-05:30 stdout F m", msg: "m", time: criTime, stream: stdout},
	{name: "no fraction", line: "2016-10-06T00:17:09Z stdout F m", msg: "m", time: "2016-10-06T00:17:09Z", stream: stdout},
	{name: "millis", line: "2016-10-06T00:17:09.5Z stdout F m", msg: "m", time: "2016-10-06T00:17:09.500Z", stream: stdout},
	{name: "invalid utf8", line: criTime + " stdout F a\xffb\xe2\x82c", msg: "a\uFFFDb\uFFFD\uFFFDc", time: criTime, stream: stdout, replaced: true},
	{name: "utf8 ok", line: criTime + " stdout F héllo 😀", msg: "héllo 😀", time: criTime, stream: stdout},
	{name: "epoch is a time", line: "1970-01-01T00:00:00Z stdout F m", msg: "m", time: "1970-01-01T00:00:00Z", stream: stdout},
	{name: "last time in range", line: "2262-04-11T23:47:16.854775807Z stdout F m", msg: "m", time: "2262-04-11T23:47:16.854775807Z", stream: stdout},
	{name: "first time in range", line: "1677-09-21T00:12:43.145224192Z stdout F m", msg: "m", time: "1677-09-21T00:12:43.145224192Z", stream: stdout},
	{name: "one ns after the range", line: "2262-04-11T23:47:16.854775808Z stderr F late", msg: "late", oor: "2262-04-11T23:47:16.854775808Z", stream: stderr},
	{name: "one ns before the range", line: "1677-09-21T00:12:43.145224191Z stdout F early", msg: "early", oor: "1677-09-21T00:12:43.145224191Z", stream: stdout},
	{name: "year 9999 partial", line: "9999-12-31T23:59:59+01:00 stdout P x", msg: "x", oor: "9999-12-31T23:59:59+01:00", stream: stdout, partial: true},
	{name: "out of range long fraction cut", line: "3000-01-01T00:00:00." + strings.Repeat("1", 100) + "Z stdout F m", msg: "m",
		oor: ("3000-01-01T00:00:00." + strings.Repeat("1", 100))[:MaxTimeText], stream: stdout},

	{name: "malformed time", line: "2016-13-06T00:17:09Z stdout F m", msg: "2016-13-06T00:17:09Z stdout F m", err: `cri: time "2016-13-06T00:17:09Z"`},
	{name: "time not a time", line: "hello stdout F m", msg: "hello stdout F m", err: `cri: time "hello"`},
	{name: "lowercase z", line: "2016-10-06T00:17:09z stdout F m", msg: "2016-10-06T00:17:09z stdout F m", err: "cri: time"},
	{name: "only time", line: criTime, msg: criTime, err: "cri: missing stream"},
	{name: "only time out of range", line: "9999-12-31T23:59:59Z", msg: "9999-12-31T23:59:59Z", err: "cri: missing stream"},
	{name: "time and space", line: criTime + " ", msg: criTime + " ", err: "cri: missing stream"},
	{name: "no tag", line: criTime + " stdout", msg: criTime + " stdout", err: `cri: missing tag after stream "stdout"`},
	{name: "empty tag", line: criTime + " stdout ", msg: criTime + " stdout ", err: `cri: tag ""`},
	{name: "bad stream", line: criTime + " stdin F m", msg: criTime + " stdin F m", err: `cri: stream "stdin"`},
	{name: "bad tag", line: criTime + " stdout X m", msg: criTime + " stdout X m", err: `cri: tag "X"`},
	{name: "tag too long", line: criTime + " stdout Fx m", msg: criTime + " stdout Fx m", err: `cri: tag "Fx"`},
	{name: "double space", line: criTime + "  stdout F m", msg: criTime + "  stdout F m", err: `cri: stream ""`},
	{name: "empty line", line: "", msg: "", err: `cri: time ""`},
	{name: "malformed invalid utf8", line: "\xff stdout F m", msg: "\uFFFD stdout F m", replaced: true, err: "cri: time"},
	{name: "docker line", line: `{"log":"x\n"}`, msg: `{"log":"x\n"}`, err: "cri: time"},
}

var dockerCases = []appendCase{
	{name: "stdout", line: `{"log":"hello world\n","stream":"stdout","time":"` + dockerTime + `"}`, msg: "hello world", time: dockerTime, stream: stdout},
	{name: "stderr", line: `{"log":"boom\n","stream":"stderr","time":"` + dockerTime + `"}`, msg: "boom", time: dockerTime, stream: stderr},
	{name: "escapes", line: `{"log":"q\" b\\ n\n t\t e\u00e9 s\ud83d\ude00 sl\/ bs\b ff\f cr\r nul\u0000 E\u00C9\n","stream":"stdout","time":"` + dockerTime + `"}`,
		msg: "q\" b\\ n\n t\t eé s😀 sl/ bs\b ff\f cr\r nul\x00 EÉ", time: dockerTime, stream: stdout},
	{name: "escaped replacement char is no replacement", line: `{"log":"\ufffd\n"}`, msg: "\uFFFD"},
	{name: "lone high surrogate", line: `{"log":"a\ud83d b\n"}`, msg: "a\uFFFD b", replaced: true},
	{name: "lone high surrogate at end", line: `{"log":"a\ud83d"}`, msg: "a\uFFFD", replaced: true, partial: true},
	{name: "lone low surrogate", line: `{"log":"a\ude00b\n"}`, msg: "a\uFFFDb", replaced: true},
	{name: "high high low", line: `{"log":"\ud83d\ud83d\ude00\n"}`, msg: "\uFFFD😀", replaced: true},
	{name: "high then escape", line: `{"log":"\ud83d\n"}`, msg: "\uFFFD", replaced: true},
	{name: "high then bmp escape", line: `{"log":"\ud83d\u0041\n"}`, msg: "\uFFFDA", replaced: true},
	{name: "partial", line: `{"log":"first 16k piece","stream":"stdout","time":"` + dockerTime + `"}`, msg: "first 16k piece", time: dockerTime, stream: stdout, partial: true},
	{name: "empty log is partial", line: `{"log":"","stream":"stdout"}`, msg: "", stream: stdout, partial: true},
	{name: "only newline", line: `{"log":"\n","stream":"stdout"}`, msg: "", stream: stdout},
	{name: "one newline removed", line: `{"log":"x\n\n"}`, msg: "x\n"},
	{name: "unicode newline escape", line: `{"log":"x\u000a"}`, msg: "x"},
	{name: "carriage return kept", line: `{"log":"dos\r\n","stream":"stdout"}`, msg: "dos\r", stream: stdout},
	{name: "extra keys", line: `{"log":"m\n","stream":"stdout","attrs":{"tag":"a","n":[1,-2.5e+3,0.0,true,false,null,{},[],"s"]},"time":"` + dockerTime + `"}`, msg: "m", time: dockerTime, stream: stdout},
	{name: "other order", line: `{"time":"` + dockerTime + `","stream":"stderr","log":"m\n"}`, msg: "m", time: dockerTime, stream: stderr},
	{name: "whitespace", line: " \t{ \"log\" : \"m\\n\" ,\r\n \"stream\":\"stdout\" } \r", msg: "m", stream: stdout},
	{name: "duplicate key last wins", line: `{"log":"first\n","log":"second\n"}`, msg: "second"},
	{name: "escaped key", line: `{"\u006cog":"x\n","str\u0065am":"stderr"}`, msg: "x", stream: stderr},
	{name: "case matters", line: `{"Log":"no\n","log":"yes\n"}`, msg: "yes"},
	{name: "no stream no time", line: `{"log":"x\n"}`, msg: "x"},
	{name: "offset time", line: `{"log":"x\n","time":"2019-01-01T12:11:11.111111111+01:00"}`, msg: "x", time: dockerTime},
	{name: "invalid utf8", line: "{\"log\":\"a\xffb\xc3\\n\",\"stream\":\"stdout\"}", msg: "a\uFFFDb\uFFFD", stream: stdout, replaced: true},
	{name: "invalid utf8 around escapes", line: "{\"log\":\"\xe2\\n\xe2\x82\\u0041\\n\"}", msg: "\uFFFD\n\uFFFD\uFFFDA", replaced: true},
	{name: "utf8 ok", line: `{"log":"héllo 😀\n"}`, msg: "héllo 😀"},
	{name: "epoch is a time", line: `{"log":"x\n","time":"1970-01-01T00:00:00Z"}`, msg: "x", time: "1970-01-01T00:00:00Z"},
	{name: "time out of range", line: `{"log":"late\n","stream":"stderr","time":"3000-01-01T00:00:00Z"}`, msg: "late", oor: "3000-01-01T00:00:00Z", stream: stderr},
	{name: "escaped time out of range", line: `{"time":"1000-01-01T00:00:00\u005a","log":"x"}`, msg: "x", oor: `1000-01-01T00:00:00\u005a`, partial: true},

	{name: "truncated", line: `{"log":"hello\n","stream":"std`, msg: `{"log":"hello\n","stream":"std`, err: "docker: truncated JSON"},
	{name: "truncated after value", line: `{"log":"hello\n"`, msg: `{"log":"hello\n"`, err: "docker: truncated JSON"},
	{name: "truncated escape", line: `{"log":"a\u00`, msg: `{"log":"a\u00`, err: "docker: truncated JSON"},
	{name: "truncated literal", line: `{"log":"a","x":tru`, msg: `{"log":"a","x":tru`, err: "docker: truncated JSON"},
	{name: "not json", line: "hello world", msg: "hello world", err: "docker: not a JSON object"},
	{name: "array", line: `["log","x"]`, msg: `["log","x"]`, err: "docker: not a JSON object"},
	{name: "empty", line: "", msg: "", err: "docker: not a JSON object"},
	{name: "empty object", line: "{}", msg: "{}", err: `docker: no "log" key`},
	{name: "log not string", line: `{"log":1}`, msg: `{"log":1}`, err: `docker: "log" is not a string`},
	{name: "log null", line: `{"log":null}`, msg: `{"log":null}`, err: `docker: "log" is not a string`},
	{name: "bad stream", line: `{"log":"x\n","stream":"stdin"}`, msg: `{"log":"x\n","stream":"stdin"}`, err: `docker: stream "stdin"`},
	{name: "stream not string", line: `{"log":"x\n","stream":2}`, msg: `{"log":"x\n","stream":2}`, err: `docker: "stream" is not a string`},
	{name: "bad time", line: `{"log":"x\n","time":"yesterday"}`, msg: `{"log":"x\n","time":"yesterday"}`, err: `docker: time "yesterday"`},
	{name: "time not string", line: `{"log":"x\n","time":0}`, msg: `{"log":"x\n","time":0}`, err: `docker: "time" is not a string`},
	{name: "bad escape", line: `{"log":"\x41"}`, msg: `{"log":"\x41"}`, err: `docker: invalid character "x" at offset 9`},
	{name: "bad unicode escape", line: `{"log":"\u12G4"}`, msg: `{"log":"\u12G4"}`, err: `docker: invalid character "G"`},
	{name: "control char", line: "{\"log\":\"a\tb\"}", msg: "{\"log\":\"a\tb\"}", err: `docker: invalid character "\t"`},
	{name: "trailing garbage", line: `{"log":"x\n"} x`, msg: `{"log":"x\n"} x`, err: "docker: invalid character after object"},
	{name: "two objects", line: `{"log":"x\n"}{}`, msg: `{"log":"x\n"}{}`, err: "docker: invalid character after object"},
	{name: "trailing comma", line: `{"log":"x\n",}`, msg: `{"log":"x\n",}`, err: "docker: invalid character"},
	{name: "leading zero", line: `{"log":"x\n","n":01}`, msg: `{"log":"x\n","n":01}`, err: "docker: invalid character"},
	{name: "single quotes", line: `{'log':'x'}`, msg: `{'log':'x'}`, err: "docker: invalid character"},
	{name: "malformed invalid utf8", line: "{\"log\":\xff", msg: "{\"log\":\uFFFD", replaced: true, err: "docker: invalid character"},
	{name: "cri line", line: criTime + " stdout F m", msg: criTime + " stdout F m", err: "docker: not a JSON object"},
}

var plainCases = []appendCase{
	{name: "text", line: "hello world", msg: "hello world"},
	{name: "empty", line: "", msg: ""},
	{name: "carriage return kept", line: "dos\r", msg: "dos\r"},
	{name: "looks like cri", line: criTime + " stdout F m", msg: criTime + " stdout F m"},
	{name: "looks like docker", line: `{"log":"x\n"}`, msg: `{"log":"x\n"}`},
	{name: "invalid utf8", line: "a\xffb\xf0\x9f\x98", msg: "a\uFFFDb\uFFFD\uFFFD\uFFFD", replaced: true},
	{name: "surrogate encoded in utf8", line: "\xed\xa0\x80", msg: "\uFFFD\uFFFD\uFFFD", replaced: true},
	{name: "utf8 ok", line: "héllo 😀", msg: "héllo 😀"},
}

func runAppendCases(t *testing.T, f Format, cases []appendCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := []byte("prefix:")
			out, h, replaced, err := Append(bytes.Clone(prefix), f, []byte(c.line))
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("dst prefix clobbered: %q", out)
			}
			if msg := string(out[len(prefix):]); msg != c.msg {
				t.Errorf("message = %q, want %q", msg, c.msg)
			}
			if replaced != c.replaced {
				t.Errorf("replaced = %v, want %v", replaced, c.replaced)
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want one containing %q and wrapping ErrMalformed", err, c.err)
				}
				if h != (Header{}) {
					t.Errorf("header = %+v on error, want zero", h)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			var want Header
			if c.time != "" {
				want.setTime(ts(t, c.time))
			}
			if c.oor != "" {
				start, end := h.TimeText()
				if got := c.line[start:end]; got != c.oor {
					t.Errorf("time as written = %q, want %q", got, c.oor)
				}
				want.outOfRange(start, end)
			}
			want.Stream = c.stream
			want.setPartial(c.partial)
			if h != want {
				t.Errorf("header = %+v, want %+v", h, want)
			}
		})
	}
}

func TestAppendCRI(t *testing.T)    { runAppendCases(t, FormatCRI, criCases) }
func TestAppendDocker(t *testing.T) { runAppendCases(t, FormatDocker, dockerCases) }
func TestAppendPlain(t *testing.T)  { runAppendCases(t, FormatPlain, plainCases) }

// TestDockerMatchesEncodingJSON checks the table's Docker lines against the
// same oracle the fuzzer uses.
func TestDockerMatchesEncodingJSON(t *testing.T) {
	for _, c := range dockerCases {
		checkDocker(t, []byte(c.line))
	}
}

// TestEncodingJSONReplacement pins the encoding/json behaviour the Docker
// fuzz oracle relies on: one U+FFFD per byte utf8.DecodeRune rejects, and per
// lone surrogate escape.
func TestEncodingJSONReplacement(t *testing.T) {
	for line, want := range map[string]string{
		"{\"log\":\"a\xffb\"}":              "a\uFFFDb",
		"{\"log\":\"\xe2\x82\"}":            "\uFFFD\uFFFD",
		"{\"log\":\"\xed\xa0\x80\"}":        "\uFFFD\uFFFD\uFFFD",
		`{"log":"\ud83d\ud83d\ude00"}`:      "\uFFFD😀",
		`{"log":"\ude00\u0041"}`:            "\uFFFDA",
		"{\"log\":\"\xf0\x9f\x98\\u0041\"}": "\uFFFD\uFFFD\uFFFDA",
	} {
		var m map[string]any
		if err := jsonUnmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got := m["log"]; got != want {
			t.Errorf("encoding/json decodes %q as %q, want %q", line, got, want)
		}
		out, _, _, err := Append(nil, FormatDocker, []byte(line))
		if err != nil || string(out) != want {
			t.Errorf("Append(%q) = %q, %v, want %q", line, out, err, want)
		}
	}
}

// TestDockerDepth checks the nesting limit against encoding/json's.
func TestDockerDepth(t *testing.T) {
	for _, n := range []int{maxDepth - 2, maxDepth - 1, maxDepth, maxDepth + 1} {
		// The top-level object and n-1 arrays: n levels.
		line := []byte(`{"log":"x\n","a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + "}")
		_, _, _, err := Append(nil, FormatDocker, line)
		if (err == nil) != (n <= maxDepth) {
			t.Errorf("depth %d: err = %v", n, err)
		}
		checkDocker(t, line)
	}
}

func TestAppendBadFormat(t *testing.T) {
	for _, f := range []Format{FormatAuto, Format(7)} {
		out, h, replaced, err := Append([]byte("p"), f, []byte("line\xff"))
		if err == nil || errors.Is(err, ErrMalformed) {
			t.Errorf("%v: err = %v, want a non-ErrMalformed error", f, err)
		}
		if string(out) != "pline\uFFFD" || h != (Header{}) || !replaced {
			t.Errorf("%v: got %q %+v %v", f, out, h, replaced)
		}
	}
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		line string
		want Format
	}{
		{criTime + " stdout F message", FormatCRI},
		{criTime + " stderr P ", FormatCRI},
		{criTime + " stdout F", FormatCRI},
		{"2016-10-06T00:17:09.669794202+00:00 stdout F m", FormatCRI},
		{`{"log":"hello\n","stream":"stdout","time":"` + dockerTime + `"}`, FormatDocker},
		{`{"time":"` + dockerTime + `","log":"x"}`, FormatDocker},
		{` {"log":"x\n"} `, FormatDocker},
		{"hello world", FormatPlain},
		{"", FormatPlain},
		{"2016-13-06T00:17:09Z stdout F m", FormatPlain},
		{criTime + " stdin F m", FormatPlain},
		{`{"msg":"structured app log","level":"info"}`, FormatPlain},
		{`{"log":"truncated`, FormatPlain},
		{`{"log":"x\n","time":"nope"}`, FormatPlain},
		{"[1,2,3]", FormatPlain},
	} {
		if got := Detect([]byte(c.line)); got != c.want {
			t.Errorf("Detect(%q) = %v, want %v", c.line, got, c.want)
		}
	}
}

func TestFormatString(t *testing.T) {
	for _, f := range []Format{FormatAuto, FormatCRI, FormatDocker, FormatPlain} {
		got, err := ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), got, err)
		}
	}
	if s := Format(9).String(); s != "Format(9)" {
		t.Errorf("Format(9).String() = %q", s)
	}
	for _, s := range []string{"", "json", "CRI", " cri"} {
		if _, err := ParseFormat(s); err == nil || !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("ParseFormat(%q) err = %v, want one naming the value", s, err)
		}
	}
}

func TestParseTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1970-01-01T00:00:00Z", 0, true},
		{"1970-01-01T00:00:00.000000001Z", 1, true},
		{"1969-12-31T23:59:59.999999999Z", -1, true},
		{"1970-01-01T01:00:00+01:00", 0, true},
		{"1969-12-31T19:00:00-05:00", 0, true},
		{"1677-09-21T00:12:43.145224192Z", math.MinInt64, true},
		{"1677-09-21T00:12:43.145224191Z", 0, false},
		{"2262-04-11T23:47:16.854775807Z", math.MaxInt64, true},
		{"2262-04-11T23:47:16.854775808Z", 0, false},
		{"2262-04-12T00:47:16.854775807+01:00", math.MaxInt64, true},
		{"0000-01-01T00:00:00Z", 0, false},
		{"9999-12-31T23:59:59Z", 0, false},
		{"2024-02-29T00:00:00Z", 1709164800e9, true},
		{"2000-02-29T00:00:00Z", 951782400e9, true},
		{"2023-02-29T00:00:00Z", 0, false},
		{"2100-02-29T00:00:00Z", 0, false},
		{"2016-04-31T00:00:00Z", 0, false},
		{"2016-00-01T00:00:00Z", 0, false},
		{"2016-01-00T00:00:00Z", 0, false},
		{"2016-01-01T24:00:00Z", 0, false},
		{"2016-01-01T00:60:00Z", 0, false},
		{"2016-12-31T23:59:60Z", 0, false},
		{"2016-01-01T00:00:00+24:00", 0, false},
		{"2016-01-01T00:00:00+00:60", 0, false},
		{"2016-01-01T00:00:00+0000", 0, false},
		{"2016-01-01t00:00:00Z", 0, false},
		{"2016-01-01T00:00:00z", 0, false},
		{"2016-01-01 00:00:00Z", 0, false},
		{"2016-01-01T00:00:00", 0, false},
		{"2016-01-01T00:00:00.Z", 0, false},
		{"2016-01-01T00:00:00,5Z", 0, false},
		{"2016-01-01T0:00:00Z", 0, false},
		{"+016-01-01T00:00:00Z", 0, false},
		{"2016-01-01T00:00:00ZZ", 0, false},
		{"", 0, false},
	} {
		got, ok := ParseTime([]byte(c.in))
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("ParseTime(%q) = %d, %v, want %d, %v", c.in, got, ok, c.want, c.ok)
		}
		checkTime(t, c.in)
	}
	// More than nine fraction digits are truncated, as time.Parse does.
	if got, ok := ParseTime([]byte("1970-01-01T00:00:00.123456789987Z")); !ok || got != 123456789 {
		t.Errorf("long fraction: %d %v", got, ok)
	}
}

// TestNoAllocs proves the hot paths allocate nothing when dst has room.
func TestNoAllocs(t *testing.T) {
	lines := map[Format][]string{
		FormatCRI: {
			criTime + " stdout F GET /healthz 200 1.2ms",
			"2016-10-06T00:17:09.669794202+02:00 stderr P héllo",
			criTime + " stdout F bad \xff utf8",
			"2300-01-01T00:00:00Z stdout F out of range",
		},
		FormatDocker: {
			`{"log":"GET /healthz 200 1.2ms\n","stream":"stdout","time":"` + dockerTime + `"}`,
			`{"log":"q\" \\ \t \u00e9 \ud83d\ude00 \ud83d\n","stream":"stderr","attrs":{"a":[1,true,null]},"time":"` + dockerTime + `"}`,
			`{"\u006cog":"x","str\u0065am":"stdout","time":"2019-01-01T11:11:11\u002e5Z"}`,
			"{\"log\":\"bad \xff utf8\"}",
			`{"log":"out of range\n","stream":"stdout","time":"1600-01-01T00:00:00Z"}`,
		},
		FormatPlain: {"plain text line", "bad \xff utf8"},
	}
	dst := make([]byte, 0, 4096)
	for f, ls := range lines {
		for _, l := range ls {
			line := []byte(l)
			if _, _, _, err := Append(dst, f, line); err != nil {
				t.Fatalf("%v %q: %v", f, l, err)
			}
			if n := testing.AllocsPerRun(100, func() { Append(dst, f, line) }); n != 0 {
				t.Errorf("Append(%v, %q): %v allocs", f, l, n)
			}
			if n := testing.AllocsPerRun(100, func() { Detect(line) }); n != 0 {
				t.Errorf("Detect(%q): %v allocs", l, n)
			}
			if n := testing.AllocsPerRun(100, func() { AppendValid(dst, line) }); n != 0 {
				t.Errorf("AppendValid(%q): %v allocs", l, n)
			}
		}
	}
	tb := []byte("2016-10-06T00:17:09.669794202+02:00")
	if n := testing.AllocsPerRun(100, func() { ParseTime(tb) }); n != 0 {
		t.Errorf("ParseTime: %v allocs", n)
	}
}
