// Package parse turns one raw line of a container log file into its message,
// stream, time and partial flag. Pure functions: no state (but for one cache,
// of the time zone span HAProxy's last accept date fell in: see
// localUnixNano), no allocation.
//
// Three formats are understood: the CRI format written by containerd and
// CRI-O ("<time> <stream> <tag> <message>"), Docker's json-file format
// ({"log":...,"stream":...,"time":...}) and plain text. Detect guesses the
// format of a file from its first line; Append parses one line in a known
// format. Neither allocates on well-formed input when dst has room for the
// message. A malformed line is never dropped: Append reports ErrMalformed
// and hands back the whole raw line as the message.
package parse

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Format is the layout of the lines of a container log file.
type Format uint8

const (
	FormatAuto   Format = iota // not a format: ask Detect
	FormatCRI                  // containerd / CRI-O: "<RFC3339Nano> <stdout|stderr> <P|F> <msg>"
	FormatDocker               // Docker json-file: {"log":"msg\n","stream":"stdout","time":"..."}
	FormatPlain                // the line is the message
)

var formatNames = [...]string{
	FormatAuto:   "auto",
	FormatCRI:    "cri",
	FormatDocker: "docker",
	FormatPlain:  "plain",
}

// String returns "auto", "cri", "docker" or "plain".
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// ParseFormat is the inverse of Format.String.
func ParseFormat(s string) (Format, error) {
	for f, name := range formatNames {
		if s == name {
			return Format(f), nil
		}
	}
	return FormatAuto, fmt.Errorf("parse: unknown log format %q (want auto, cri, docker or plain)", s)
}

// Header is what a parser learns about a line besides its message.
//
// It is three machine words, so that Append's results (message, Header,
// replaced, error) fit the nine result registers of Go's register ABI: a
// Header of seven fields did not, and every layer that returned one copied
// it through memory, which cost a quarter of the time of parsing a CRI line.
// Hence the methods instead of more fields. The zero Header is a line with
// no time, no stream and no partial flag.
type Header struct {
	// Time is the line's own time in Unix nanoseconds when HasTime, else
	// 0. Zero is a time like any other (1970-01-01T00:00:00Z), not "no
	// time".
	Time   int64
	Stream ferryv1.StreamName // STREAM_STDOUT, STREAM_STDERR, or STREAM_UNSPECIFIED (plain)
	// bits holds hPartial, hHasTime, hOutOfRange and, when hOutOfRange,
	// the length of the time as written (at most MaxTimeText) from bit
	// hLenShift and its offset in the line from bit hStartShift.
	bits uint64
}

const (
	hPartial uint64 = 1 << iota
	hHasTime
	hOutOfRange
	hLenShift   = 8
	hStartShift = 16
)

// HasTime is false when the line carries no usable time: plain text, a
// malformed line, or a time out of range.
func (h Header) HasTime() bool { return h.bits&hHasTime != 0 }

// Partial reports that the message continues on the next line (CRI tag
// "P", Docker "log" without trailing "\n").
func (h Header) Partial() bool { return h.bits&hPartial != 0 }

// TimeOutOfRange reports a well-formed RFC 3339 time outside the int64
// nanosecond range (see TimeInRange); the rest of the line is parsed as
// usual.
func (h Header) TimeOutOfRange() bool { return h.bits&hOutOfRange != 0 }

// TimeText returns where the time out of range stands in the line:
// line[start:end] is the time as written (in Docker format, as it stands
// between the quotes, escapes and all), cut to MaxTimeText bytes. Both are
// 0 unless TimeOutOfRange.
func (h Header) TimeText() (start, end int) {
	start = int(h.bits >> hStartShift)
	return start, start + int(h.bits>>hLenShift&0xff)
}

// MaxTimeText bounds what Header.TimeText delimits: a fraction of seconds
// may have any number of digits.
const MaxTimeText = 64

// setTime marks h as carrying the time ns.
func (h *Header) setTime(ns int64) {
	h.Time, h.bits = ns, h.bits&hPartial|hHasTime
}

// outOfRange marks h as carrying the time line[start:end], which is out of
// range.
func (h *Header) outOfRange(start, end int) {
	h.Time = 0
	h.bits = h.bits&hPartial | hOutOfRange |
		uint64(min(end-start, MaxTimeText))<<hLenShift | uint64(start)<<hStartShift
}

// setPartial sets or clears the partial flag.
func (h *Header) setPartial(p bool) {
	h.bits &^= hPartial
	if p {
		h.bits |= hPartial
	}
}

// ErrMalformed is wrapped by every error Append returns for a line that is
// not in the format it was asked to parse.
var ErrMalformed = errors.New("malformed line")

// Detect guesses the format of a file from its first complete line (without
// its '\n'): FormatCRI if the line parses as CRI, FormatDocker if it parses as
// a Docker json-file object, FormatPlain otherwise. It never returns FormatAuto.
func Detect(line []byte) Format {
	if _, _, what, _ := parseCRI(line); what == "" {
		return FormatCRI
	}
	if _, _, fail := scanDocker(line); fail.what == "" {
		return FormatDocker
	}
	return FormatPlain
}

// Append parses line (without its trailing '\n') in format f and appends the
// decoded message to dst, returning the extended slice: the message is
// out[len(dst):]. A trailing '\r' is part of the message (in Docker format it
// is whitespace after the JSON object), never stripped.
//
// On a malformed line it returns an error wrapping ErrMalformed that says what
// was wrong, appends the whole raw line as the message and returns a zero
// Header, so the caller can keep the line and flag it as unparsed. Asking for
// FormatAuto or an unknown format is a caller bug: the raw line is appended
// and the error does not wrap ErrMalformed.
//
// Invalid UTF-8 in the message is replaced by U+FFFD, one per byte that
// utf8.DecodeRune rejects (as encoding/json does); so is a lone UTF-16
// surrogate in a Docker "\u" escape. replaced reports whether that happened.
//
// Append allocates only when dst lacks room for the message, or on the error
// path.
func Append(dst []byte, f Format, line []byte) (out []byte, h Header, replaced bool, err error) {
	switch f {
	case FormatCRI:
		return appendCRI(dst, line)
	case FormatDocker:
		return appendDocker(dst, line)
	case FormatPlain:
		out, replaced = AppendValid(dst, line)
		return out, Header{}, replaced, nil
	case FormatAuto:
		err = errors.New("parse: format auto: call Detect first")
	default:
		err = fmt.Errorf("parse: unknown format %d", uint8(f))
	}
	out, replaced = AppendValid(dst, line)
	return out, Header{}, replaced, err
}

// malformed is Append's error path: the raw line becomes the message.
func malformed(dst, line []byte, err error) ([]byte, Header, bool, error) {
	out, replaced := AppendValid(dst, line)
	return out, Header{}, replaced, err
}

// clip shortens a field quoted in an error message, so that a megabyte line
// without spaces does not become a megabyte error.
func clip(b []byte) []byte {
	const max = 64
	if len(b) > max {
		return b[:max]
	}
	return b
}

// AppendValid appends s to dst, replacing each byte that utf8.DecodeRune
// rejects with U+FFFD (the replacement encoding/json and a Go range loop
// make), and reports whether it replaced anything.
func AppendValid(dst, s []byte) ([]byte, bool) {
	if utf8.Valid(s) {
		return append(dst, s...), false
	}
	for len(s) > 0 {
		i := 0
		for i < len(s) {
			if s[i] < utf8.RuneSelf {
				i++
				continue
			}
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			i += size
		}
		dst = append(dst, s[:i]...)
		if i == len(s) {
			break
		}
		dst = append(dst, "\uFFFD"...)
		s = s[i+1:]
	}
	return dst, true
}
