package parse

import (
	"errors"
	"strings"
	"testing"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Issue 19, case 13: a Docker json-file line longer than max_line_bytes
// keeps its stream and time; only the end of its message is lost.
func TestAppendDockerCut(t *testing.T) {
	const ts = `"time":"2019-01-01T11:11:11.111111111Z"}`
	want, _ := ParseTime([]byte("2019-01-01T11:11:11.111111111Z"))
	long := strings.Repeat("x", 5000)
	cases := []struct {
		name      string
		line      string
		headLen   int
		max       int
		msg       string
		stream    ferryv1.StreamName
		partial   bool
		malformed bool
	}{
		{name: "plain", line: `{"log":"` + long + `\n","stream":"stderr",` + ts, headLen: 1000, max: 900, msg: long[:900], stream: stderr},
		{name: "head shorter than max", line: `{"log":"` + long + `\n","stream":"stdout",` + ts, headLen: 100, max: 900, msg: long[:92], stream: stdout},
		{name: "partial", line: `{"log":"` + long + `","stream":"stdout",` + ts, headLen: 1000, max: 10, msg: long[:10], stream: stdout, partial: true},
		{name: "escape cut", line: `{"log":"ab\u00e9` + long + `\n","stream":"stdout",` + ts, headLen: 14, max: 100, msg: "ab", stream: stdout},
		{name: "escape whole", line: `{"log":"ab\u00e9` + long + `\n","stream":"stdout",` + ts, headLen: 16, max: 100, msg: "abé", stream: stdout},
		{name: "character cut", line: `{"log":"aé` + long + `\n","stream":"stdout",` + ts, headLen: 10, max: 100, msg: "a", stream: stdout},
		{name: "max inside a character", line: `{"log":"aé` + long + `\n","stream":"stdout",` + ts, headLen: 100, max: 2, msg: "a", stream: stdout},
		{name: "escaped quote before stream", line: `{"log":"` + long + `\",\"stream\":\"x\n","stream":"stderr",` + ts, headLen: 100, max: 50, msg: long[:50], stream: stderr},
		{name: "not docker", line: `plain ` + long, headLen: 100, max: 50, malformed: true},
		{name: "log not first", line: `{"stream":"stdout","log":"` + long + `\n",` + ts, headLen: 100, max: 50, malformed: true},
		{name: "no stream or time", line: `{"log":"` + long + `\n"}`, headLen: 100, max: 50, malformed: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			line := []byte(c.line)
			tail := line[max(0, len(line)-DockerTailBytes):]
			out, h, _, err := AppendDockerCut([]byte("prefix"), line[:c.headLen], tail, c.max)
			if c.malformed {
				if !errors.Is(err, ErrMalformed) || string(out) != "prefix" {
					t.Fatalf("err %v, out %q: want ErrMalformed and nothing appended", err, out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(out[len("prefix"):]); got != c.msg {
				t.Fatalf("message %q, want %q", got, c.msg)
			}
			if h.Stream != c.stream || h.Time != want || h.Partial() != c.partial {
				t.Fatalf("header %+v, want stream %v, time %d, partial %v", h, c.stream, want, c.partial)
			}
		})
	}
}

// A time out of range in a cut line is delimited in the tail.
func TestAppendDockerCutTimeOutOfRange(t *testing.T) {
	line := []byte(`{"log":"` + strings.Repeat("y", 3000) + `\n","stream":"stderr","time":"2300-01-01T00:00:00Z"}`)
	tail := line[len(line)-DockerTailBytes:]
	_, h, _, err := AppendDockerCut(nil, line[:100], tail, 50)
	if err != nil {
		t.Fatal(err)
	}
	if s, e := h.TimeText(); !h.TimeOutOfRange() || string(tail[s:e]) != "2300-01-01T00:00:00Z" || h.Stream != stderr || h.HasTime() {
		t.Fatalf("header %+v", h)
	}
}
