package parse

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// maxDepth is encoding/json's nesting limit, the top-level object included.
const maxDepth = 10000

// jstr is where the value of one of the keys Docker writes lies in the line.
type jstr struct {
	start, end int  // the string's content, between its quotes
	esc        bool // the content holds a '\' escape
	isStr      bool // the value is a string (else start and end are unset)
	set        bool // the key is present
}

func (j jstr) raw(line []byte) []byte { return line[j.start:j.end] }

// dockerFields are the "log", "stream" and "time" members of the object; a
// key given twice counts once, with its last value, as for encoding/json.
type dockerFields struct{ log, stream, time jstr }

// dfail describes why a line is not a Docker json-file line.
type dfail struct {
	what  string // "" when the line is fine
	field []byte // the offending value or byte, quoted in the error; nil if none
	off   int    // offset of the offending byte in the line, or -1
}

func (f dfail) error() error {
	switch {
	case f.off >= 0:
		return fmt.Errorf("docker: %s %q at offset %d: %w", f.what, clip(f.field), f.off, ErrMalformed)
	case f.field != nil:
		return fmt.Errorf("docker: %s %q: %w", f.what, clip(f.field), ErrMalformed)
	}
	return fmt.Errorf("docker: %s: %w", f.what, ErrMalformed)
}

// scanner validates JSON the way encoding/json's scanner does, without
// building anything.
type scanner struct {
	b    []byte
	i    int
	what string // set by a check that knows better than "invalid character"
}

// fail turns the scanner's position into a dfail.
func (s *scanner) fail() dfail {
	switch {
	case s.what != "":
		return dfail{what: s.what, off: -1}
	case s.i >= len(s.b):
		return dfail{what: "truncated JSON", off: -1}
	}
	return dfail{what: "invalid character", field: s.b[s.i : s.i+1], off: s.i}
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// plain marks the bytes a JSON string may hold without further thought:
// everything but controls, '"' and '\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// special reports whether any of the eight bytes in x is '"', '\\' or below
// 0x20, with the classic SWAR "has a zero byte" and "has a byte less than n"
// tests; the byte loop that follows finds which byte it is.
func special(x uint64) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	lt := (x - 0x20*ones) &^ x
	q := x ^ '"'*ones
	bs := x ^ '\\'*ones
	return ((q-ones)&^q|(bs-ones)&^bs|lt)&highs != 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// str scans the string starting at s.b[s.i] == '"' and returns its content's
// bounds and whether it holds an escape.
func (s *scanner) str() (start, end int, esc, ok bool) {
	b := s.b
	i := s.i + 1
	start = i
	for {
		// Eight bytes at a time while none is '"', '\\' or a control.
		for i+8 <= len(b) && !special(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			s.i = i
			return 0, 0, false, false
		}
		switch b[i] {
		case '"':
			s.i = i + 1
			return start, i, esc, true
		case '\\':
			esc = true
			if i+1 >= len(b) {
				s.i = i + 1
				return 0, 0, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := 2; k < 6; k++ {
					if i+k >= len(b) || !isHex(b[i+k]) {
						s.i = i + k
						return 0, 0, false, false
					}
				}
				i += 6
			default:
				s.i = i + 1
				return 0, 0, false, false
			}
		default: // a control character
			s.i = i
			return 0, 0, false, false
		}
	}
}

func (s *scanner) value(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; c {
	case '"':
		_, _, _, ok := s.str()
		return ok
	case '{', '[':
		if depth+1 > maxDepth {
			s.what = "nested too deep"
			return false
		}
		if c == '{' {
			return s.object(depth + 1)
		}
		return s.array(depth + 1)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	return s.number()
}

func (s *scanner) literal(lit string) bool {
	for k := 0; k < len(lit); k++ {
		if s.i >= len(s.b) || s.b[s.i] != lit[k] {
			return false
		}
		s.i++
	}
	return true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	b, i := s.b, s.i
	digits := func() bool {
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		return true
	}
	defer func() { s.i = i }()
	if b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return true
}

// object scans a nested object; s.b[s.i] == '{'.
func (s *scanner) object(depth int) bool {
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		if _, _, _, ok := s.str(); !ok {
			return false
		}
		if !s.colon() || !s.value(depth) {
			return false
		}
		if more, ok := s.next('}'); !more {
			return ok
		}
	}
}

// array scans a nested array; s.b[s.i] == '['.
func (s *scanner) array(depth int) bool {
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return true
	}
	for {
		if !s.value(depth) {
			return false
		}
		if more, ok := s.next(']'); !more {
			return ok
		}
	}
}

// colon scans the ':' between a key and its value and the space around it.
func (s *scanner) colon() bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return false
	}
	s.i++
	s.ws()
	return true
}

// next scans what follows a member or element: ',' (more is true) or the
// closing byte (more is false, ok is true).
func (s *scanner) next(closing byte) (more, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return false, false
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		s.ws()
		return true, true
	case closing:
		s.i++
		return false, true
	}
	return false, false
}

// keyMax is the longest escaped form of a key or stream value worth
// decoding: "stream" or "stdout" as six "\u0073" escapes.
const keyMax = 6 * 6

// Keys of the members Docker writes.
const (
	keyOther = iota
	keyLog
	keyStream
	keyTime
)

// keyOf names the key whose content is raw.
func keyOf(raw []byte, esc bool) int {
	if esc {
		return escapedKeyOf(raw)
	}
	switch string(raw) {
	case "log":
		return keyLog
	case "stream":
		return keyStream
	case "time":
		return keyTime
	}
	return keyOther
}

// escapedKeyOf is keyOf for a key holding escapes, kept apart so that the
// common path does not zero a buffer.
//
//go:noinline
func escapedKeyOf(raw []byte) int {
	if len(raw) > keyMax {
		return keyOther
	}
	var buf [128]byte
	k, _ := appendUnescape(buf[:0], raw)
	return keyOf(k, false)
}

// streamOf decodes a "stream" value; ok is false for anything but stdout
// and stderr.
func streamOf(raw []byte, esc bool) (s ferryv1.StreamName, ok bool) {
	if esc {
		if len(raw) > keyMax {
			return 0, false
		}
		var buf [128]byte
		raw, _ = appendUnescape(buf[:0], raw)
	}
	switch string(raw) {
	case "stdout":
		return ferryv1.StreamName_STREAM_STDOUT, true
	case "stderr":
		return ferryv1.StreamName_STREAM_STDERR, true
	}
	return 0, false
}

// timeOf decodes and parses a "time" value (see TimeInRange). An escaped
// one has no length limit (a fraction may have any number of digits): it
// allocates only if its decoded form outgrows the buffer.
func timeOf(raw []byte, esc bool) (ns int64, ok, outOfRange bool) {
	if esc {
		return escapedTimeOf(raw)
	}
	return TimeInRange(raw)
}

//go:noinline
func escapedTimeOf(raw []byte) (int64, bool, bool) {
	var buf [128]byte
	raw, _ = appendUnescape(buf[:0], raw)
	return TimeInRange(raw)
}

// scanDocker validates a Docker json-file line and finds its members. On
// success h has its time and stream set; partial is decided by the caller, who
// decodes the log value. It does not allocate.
func scanDocker(line []byte) (f dockerFields, h Header, fail dfail) {
	s := scanner{b: line}
	s.ws()
	if s.i >= len(line) || line[s.i] != '{' {
		return f, h, dfail{what: "not a JSON object", off: -1}
	}
	s.i++
	s.ws()
	if s.i < len(line) && line[s.i] == '}' {
		s.i++
	} else {
		for {
			if s.i >= len(line) || line[s.i] != '"' {
				return f, h, s.fail()
			}
			ks, ke, kesc, ok := s.str()
			if !ok {
				return f, h, s.fail()
			}
			var dst *jstr
			switch keyOf(line[ks:ke], kesc) {
			case keyLog:
				dst = &f.log
			case keyStream:
				dst = &f.stream
			case keyTime:
				dst = &f.time
			}
			if !s.colon() {
				return f, h, s.fail()
			}
			if s.i < len(line) && line[s.i] == '"' {
				vs, ve, vesc, ok := s.str()
				if !ok {
					return f, h, s.fail()
				}
				if dst != nil {
					*dst = jstr{start: vs, end: ve, esc: vesc, isStr: true, set: true}
				}
			} else {
				if !s.value(1) {
					return f, h, s.fail()
				}
				if dst != nil {
					*dst = jstr{set: true}
				}
			}
			more, ok := s.next('}')
			if !ok {
				return f, h, s.fail()
			}
			if !more {
				break
			}
		}
	}
	s.ws()
	if s.i < len(line) {
		return f, h, dfail{what: "invalid character after object", field: line[s.i : s.i+1], off: s.i}
	}

	if !f.log.isStr {
		if f.log.set {
			return f, h, dfail{what: `"log" is not a string`, off: -1}
		}
		return f, h, dfail{what: `no "log" key`, off: -1}
	}
	if f.stream.set {
		if !f.stream.isStr {
			return f, h, dfail{what: `"stream" is not a string`, off: -1}
		}
		var ok bool
		if h.Stream, ok = streamOf(f.stream.raw(line), f.stream.esc); !ok {
			return f, h, dfail{what: "stream", field: f.stream.raw(line), off: -1}
		}
	}
	if f.time.set {
		if !f.time.isStr {
			return f, h, dfail{what: `"time" is not a string`, off: -1}
		}
		switch t, ok, outOfRange := timeOf(f.time.raw(line), f.time.esc); {
		case ok:
			h.setTime(t)
		case outOfRange:
			h.outOfRange(f.time.start, f.time.end) // the stream and the message still count
		default:
			return f, h, dfail{what: "time", field: f.time.raw(line), off: -1}
		}
	}
	return f, h, dfail{}
}

// appendUnescape appends the decoded content of a JSON string that str has
// validated, exactly as encoding/json decodes it: invalid UTF-8 and lone
// surrogates become U+FFFD, which replaced reports.
func appendUnescape(dst, raw []byte) (out []byte, replaced bool) {
	// Escapes are ASCII, so if raw is valid UTF-8 so is every run between
	// them, and the runs need no second look.
	valid := utf8.Valid(raw)
	for {
		i := 0
		if len(raw) == 0 || raw[0] != '\\' {
			if i = bytes.IndexByte(raw, '\\'); i < 0 {
				i = len(raw)
			}
			if valid {
				dst = append(dst, raw[:i]...)
			} else {
				var r bool
				dst, r = AppendValid(dst, raw[:i])
				replaced = replaced || r
			}
			if i == len(raw) {
				return dst, replaced
			}
		}
		c := raw[i+1]
		raw = raw[i+2:]
		switch c {
		case 'n':
			dst = append(dst, '\n')
		case 't':
			dst = append(dst, '\t')
		case 'r':
			dst = append(dst, '\r')
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'u':
			r := hex4(raw)
			raw = raw[4:]
			if utf16.IsSurrogate(r) {
				if len(raw) >= 6 && raw[0] == '\\' && raw[1] == 'u' {
					if d := utf16.DecodeRune(r, hex4(raw[2:])); d != utf8.RuneError {
						dst = utf8.AppendRune(dst, d)
						raw = raw[6:]
						continue
					}
				}
				r = utf8.RuneError
				replaced = true
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
}

// hex4 decodes four hex digits that str has validated.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

func appendDocker(dst, line []byte) ([]byte, Header, bool, error) {
	f, h, fail := scanDocker(line)
	if fail.what != "" {
		return malformed(dst, line, fail.error())
	}
	start := len(dst)
	raw := f.log.raw(line)
	var replaced bool
	if f.log.esc {
		dst, replaced = appendUnescape(dst, raw)
	} else {
		dst, replaced = AppendValid(dst, raw)
	}
	if len(dst) > start && dst[len(dst)-1] == '\n' {
		dst = dst[:len(dst)-1]
	} else {
		h.setPartial(true)
	}
	return dst, h, replaced, nil
}

// DockerTailBytes is how many of the last bytes of an over-long Docker
// json-file line AppendDockerCut needs to find its stream and time.
const DockerTailBytes = 1024

// AppendDockerCut parses a Docker json-file line too long to keep whole,
// from its first bytes (head) and its last bytes (tail, without the '\n';
// DockerTailBytes of them suffice). It appends the start of the decoded
// "log" value, as much of it as head holds and at most max bytes, cut at a
// character boundary, and returns the stream and time found in tail: a line
// cut this way keeps everything but the end of its message. Partial is set
// when the value does not end with a newline. A time out of range is
// delimited in tail (see Header).
//
// Docker writes "log" first: a head that does not start with
// {"log":" and a tail in which no "stream" or "time" member follows the
// end of the log value make it return an error wrapping ErrMalformed (the
// caller then cuts the raw line).
func AppendDockerCut(dst, head, tail []byte, max int) ([]byte, Header, bool, error) {
	s := scanner{b: head}
	s.ws()
	bad := func(what string) ([]byte, Header, bool, error) {
		return dst, Header{}, false, fmt.Errorf("%w: docker: over-long line: %s", ErrMalformed, what)
	}
	if s.i >= len(head) || head[s.i] != '{' {
		return bad("not a JSON object")
	}
	s.i++
	s.ws()
	const key = `"log"`
	if !bytes.HasPrefix(head[s.i:], []byte(key)) {
		return bad(`"log" is not the first key`)
	}
	s.i += len(key)
	if !s.colon() || s.i >= len(head) || head[s.i] != '"' {
		return bad(`"log" is not a string`)
	}
	content := head[s.i+1:]
	// The value up to its closing quote, or up to the last complete
	// escape and character that head holds.
	end := 0
	for end < len(content) {
		c := content[end]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return bad("control character in string")
		}
		if c != '\\' {
			end++
			continue
		}
		if end+1 >= len(content) {
			break
		}
		n := 2
		switch content[end+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			n = 6
			if end+n > len(content) {
				break
			}
			for _, h := range content[end+2 : end+6] {
				if !isHex(h) {
					return bad("invalid escape")
				}
			}
		default:
			return bad("invalid escape")
		}
		if end+n > len(content) {
			break
		}
		end += n
	}
	raw := content[:end]
	// A character cut by the end of head is left out.
	if end == len(content) {
		for k := len(raw) - 1; k >= 0 && k >= len(raw)-utf8.UTFMax; k-- {
			if utf8.RuneStart(raw[k]) {
				if !utf8.FullRune(raw[k:]) {
					raw = raw[:k]
				}
				break
			}
		}
	}

	// The stream and time: the members after the log value, found by the
	// ',"' that ends it (a quote inside a string is escaped, so an
	// unescaped '"' followed by ',"stream":' or ',"time":' closes it).
	at := -1
	for _, k := range []string{`","stream":`, `","time":`} {
		if i := bytes.Index(tail, []byte(k)); i >= 0 && !escapedAt(tail, i) && (at < 0 || i < at) {
			at = i
		}
	}
	if at < 0 {
		return bad(`no "stream" or "time" after the log value`)
	}
	obj := make([]byte, 0, 9+len(tail)-at)
	obj = append(append(obj, `{"log":""`...), tail[at+1:]...)
	_, h, fail := scanDocker(obj)
	if fail.what != "" {
		return bad("end of line: " + fail.what)
	}
	h.setPartial(!endsWithNewlineEscape(tail[:at]))
	if h.TimeOutOfRange() { // delimit the time in tail, not in obj
		start, end := h.TimeText()
		d := at + 1 - len(`{"log":""`)
		h.outOfRange(start+d, end+d)
	}

	start := len(dst)
	dst, replaced := appendUnescape(dst, raw)
	if len(dst)-start > max {
		cut := start + max
		for k := cut; k > start && k > cut-utf8.UTFMax; k-- {
			if utf8.RuneStart(dst[k]) {
				cut = k
				break
			}
		}
		dst = dst[:cut]
	}
	return dst, h, replaced, nil
}

// escapedAt reports whether the '"' at b[i] is escaped: preceded by an odd
// number of backslashes.
func escapedAt(b []byte, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// endsWithNewlineEscape reports whether the raw string content b ends with
// the escape \n.
func endsWithNewlineEscape(b []byte) bool {
	return len(b) >= 2 && b[len(b)-1] == 'n' && escapedAt(b, len(b)-1)
}
