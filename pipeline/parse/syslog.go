package parse

import (
	"bytes"
	"time"
)

// Syslog is the header of one syslog message (RFC 3164 or RFC 5424). Its
// byte slices point into the message passed to ParseSyslog.
type Syslog struct {
	// Priority is <PRI> (facility × 8 + severity), -1 when the message has
	// none.
	Priority int
	// RFC5424 says the header is RFC 5424's ("<PRI>1 ..."), else RFC 3164's
	// (or none).
	RFC5424 bool
	// Time is the header's time in Unix nanoseconds, 0 when it has none or
	// it does not parse.
	Time     int64
	Hostname []byte
	AppName  []byte // RFC 3164: the TAG without [pid]
	ProcID   []byte
	MsgID    []byte
}

// ParseSyslog splits one syslog message into its header and its MSG part.
// It never fails: what is not a header is message, so a message with no
// header at all (a bare line) comes back whole with Priority -1. An RFC
// 3164 time has no year and no zone: it is read in loc in the year that
// puts it at most a day after now. It does not allocate.
func ParseSyslog(b []byte, now time.Time, loc *time.Location) (Syslog, []byte) {
	return parseSyslog(b, now, loc, true)
}

// syslogMsg returns the MSG part of a syslog message, as ParseSyslog
// does, without working out the header's time (now is not needed).
func syslogMsg(b []byte, loc *time.Location) []byte {
	_, msg := parseSyslog(b, time.Time{}, loc, false)
	return msg
}

// parseSyslog is ParseSyslog; without withTime, h.Time is not set (the
// MSG part is the same).
func parseSyslog(b []byte, now time.Time, loc *time.Location, withTime bool) (Syslog, []byte) {
	h := Syslog{Priority: -1}
	rest := b
	if len(rest) > 2 && rest[0] == '<' {
		pri, n := 0, 1
		for n < len(rest) && n <= 4 && rest[n] >= '0' && rest[n] <= '9' {
			pri = pri*10 + int(rest[n]-'0')
			n++
		}
		if n > 1 && n < len(rest) && rest[n] == '>' && pri <= 191 {
			h.Priority = pri
			rest = rest[n+1:]
		} else {
			return h, b
		}
	}
	if len(rest) > 2 && rest[0] == '1' && rest[1] == ' ' && h.Priority >= 0 {
		return parse5424(h, rest[2:], withTime)
	}
	return parse3164(h, rest, now, loc, withTime)
}

// field cuts the next space-separated field off b.
func field(b []byte) (f, rest []byte) {
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i+1:]
}

func nilDash(f []byte) []byte {
	if len(f) == 1 && f[0] == '-' {
		return nil
	}
	return f
}

func parse5424(h Syslog, b []byte, withTime bool) (Syslog, []byte) {
	h.RFC5424 = true
	var ts []byte
	ts, b = field(b)
	if len(ts) > 1 && withTime {
		if t, ok := rfc3339(ts); ok {
			h.Time = t
		}
	}
	var f []byte
	f, b = field(b)
	h.Hostname = nilDash(f)
	f, b = field(b)
	h.AppName = nilDash(f)
	f, b = field(b)
	h.ProcID = nilDash(f)
	f, b = field(b)
	h.MsgID = nilDash(f)
	// STRUCTURED-DATA: "-" or one or more [id param="v\"..."] elements.
	switch {
	case len(b) > 0 && b[0] == '-':
		b = b[1:]
	case len(b) > 0 && b[0] == '[':
		i, inQuote := 0, false
	sd:
		for ; i < len(b); i++ {
			switch c := b[i]; {
			case inQuote && c == '\\':
				i++
			case c == '"':
				inQuote = !inQuote
			case !inQuote && c == ']' && (i+1 == len(b) || b[i+1] != '['):
				i++
				break sd
			}
		}
		b = b[min(i, len(b)):]
	}
	if len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a BOM says UTF-8
	return h, b
}

// rfc3339 parses an RFC 5424 time without allocating.
func rfc3339(b []byte) (int64, bool) {
	// 2006-01-02T15:04:05[.frac](Z|±hh:mm)
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	hh, ok4 := num(b[11:13])
	mm, ok5 := num(b[14:16])
	ss, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 {
		return 0, false
	}
	i, nsec := 19, 0
	if b[i] == '.' {
		i++
		scale := 100000000
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			nsec += int(b[i]-'0') * scale
			scale /= 10
		}
	}
	if i >= len(b) {
		return 0, false
	}
	off := 0
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b) < i+6 || b[i+3] != ':' {
			return 0, false
		}
		oh, ok1 := num(b[i+1 : i+3])
		om, ok2 := num(b[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		off = oh*3600 + om*60
		if b[i] == '-' {
			off = -off
		}
		i += 6
	default:
		return 0, false
	}
	if i != len(b) {
		return 0, false
	}
	t := time.Date(y, time.Month(mo), d, hh, mm, ss, nsec, time.UTC).Add(-time.Duration(off) * time.Second)
	return t.UnixNano(), true
}

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// month parses a three-letter English month name: 1..12, 0 if none.
func month(b []byte) int {
	for i, m := range months {
		if string(b) == m {
			return i + 1
		}
	}
	return 0
}

func parse3164(h Syslog, b []byte, now time.Time, loc *time.Location, withTime bool) (Syslog, []byte) {
	hasTime := false
	// "Mmm dd hh:mm:ss " (day padded with a space or a zero).
	if len(b) >= 16 && b[3] == ' ' && b[6] == ' ' && b[9] == ':' && b[12] == ':' && b[15] == ' ' {
		mo := month(b[0:3])
		d := 0
		for _, c := range b[4:6] {
			switch {
			case c == ' ':
			case c >= '0' && c <= '9':
				d = d*10 + int(c-'0')
			default:
				mo = 0
			}
		}
		hh, mm, ss := two(b[7:9]), two(b[10:12]), two(b[13:15])
		if mo > 0 && d >= 1 && d <= 31 && hh >= 0 && hh < 24 && mm >= 0 && mm < 60 && ss >= 0 && ss <= 60 {
			if withTime {
				nl := now.In(loc)
				t := time.Date(nl.Year(), time.Month(mo), d, hh, mm, ss, 0, loc)
				if t.After(nl.Add(24 * time.Hour)) {
					t = time.Date(nl.Year()-1, time.Month(mo), d, hh, mm, ss, 0, loc)
				}
				h.Time = t.UnixNano()
				hasTime = h.Time != 0
			} else {
				// A time of this year or the last is never 0.
				hasTime = true
			}
			b = b[16:]
		}
	}
	// [HOSTNAME ]TAG[PID]: MSG. A first token that ends in ':' or holds
	// '[' is the tag (HAProxy sends none of a hostname).
	tok, rest := field(b)
	if !isTag(tok) && hasTime {
		if next, rest2 := field(rest); isTag(next) {
			h.Hostname, tok, rest = tok, next, rest2
		}
	}
	if !isTag(tok) {
		return h, b
	}
	tag := tok[:len(tok)-1] // the ':'
	if i := bytes.IndexByte(tag, '['); i >= 0 && tag[len(tag)-1] == ']' {
		h.ProcID = tag[i+1 : len(tag)-1]
		tag = tag[:i]
	}
	h.AppName = tag
	return h, rest
}

// isTag reports whether tok is an RFC 3164 TAG with its colon: "name:" or
// "name[pid]:".
func isTag(tok []byte) bool {
	if len(tok) < 2 || tok[len(tok)-1] != ':' || len(tok) > 64 {
		return false
	}
	for _, c := range tok[:len(tok)-1] {
		if c <= ' ' || c == ':' || c >= 0x7f {
			return false
		}
	}
	return true
}

// two parses two ASCII digits, -1 if they are not.
func two(b []byte) int {
	if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return -1
	}
	return int(b[0]-'0')*10 + int(b[1]-'0')
}
