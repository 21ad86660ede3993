package parse

import (
	"bytes"
	"fmt"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// parseCRI splits a CRI line "<time> <stream> <tag>[ <message>]". On success
// what is "" and msg is the offset of the message in line (len(line) when
// the message is empty). On failure what names the bad field and field holds
// it (nil when the field is missing). It does not allocate.
func parseCRI(line []byte) (h Header, msg int, what string, field []byte) {
	// The common line: "<30-byte UTC time> stdout|stderr F|P message".
	if len(line) >= 39 && line[30] == ' ' && line[37] == ' ' && line[29] == 'Z' {
		if t, ok, _ := parseTime(line[:30]); ok {
			var st ferryv1.StreamName
			switch string(line[31:37]) {
			case "stdout":
				st = ferryv1.StreamName_STREAM_STDOUT
			case "stderr":
				st = ferryv1.StreamName_STREAM_STDERR
			}
			if tag := line[38]; st != 0 && (tag == 'F' || tag == 'P') && (len(line) == 39 || line[39] == ' ') {
				h.setTime(t)
				h.Stream = st
				h.setPartial(tag == 'P')
				return h, min(40, len(line)), "", nil
			}
		}
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		if _, ok, outOfRange := TimeInRange(line); ok || outOfRange {
			return Header{}, 0, "missing stream", nil
		}
		return Header{}, 0, "time", line
	}
	switch t, ok, outOfRange := TimeInRange(line[:sp]); {
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

func appendCRI(dst, line []byte) ([]byte, Header, bool, error) {
	h, msg, what, field := parseCRI(line)
	if what != "" {
		if field == nil {
			return malformed(dst, line, fmt.Errorf("cri: %s: %w", what, ErrMalformed))
		}
		return malformed(dst, line, fmt.Errorf("cri: %s %q: %w", what, clip(field), ErrMalformed))
	}
	out, replaced := AppendValid(dst, line[msg:])
	return out, h, replaced, nil
}
