package parse

import (
	"bytes"
	"errors"
	"time"
)

// HAProxyFormat is the log format a HAProxy line was written in.
type HAProxyFormat uint8

const (
	HAProxyHTTP    HAProxyFormat = iota + 1 // option httplog
	HAProxyHTTPS                            // option httpslog: httplog and TLS fields
	HAProxyTCP                              // option tcplog
	HAProxyConnect                          // the default format: "Connect from ip:port to ip:port (frontend/MODE)"
)

// Absent is the value of a HAProxy timer or counter the line does not
// carry (HAProxy writes -1 for a timer that did not run).
const Absent = -1

// HAProxy is what one HAProxy log line says. Its byte slices point into the
// line given to ParseHAProxy; a field the line does not carry is nil (or
// Absent for a number).
type HAProxy struct {
	Format HAProxyFormat
	// Client address and port (%ci:%cp): the address behind a PROXY
	// protocol header when the bind has accept-proxy.
	ClientIP   []byte
	ClientPort int
	// Time is the accept date ([%tr] / [%t], with milliseconds) in Unix
	// nanoseconds, read in the location given to ParseHAProxy. 0 for the
	// default format, which has none.
	Time     int64
	Frontend []byte // without the "~" HAProxy appends for a TLS frontend
	TLS      bool   // the frontend's "~": the client connection is TLS
	Backend  []byte
	Server   []byte // "<NOSRV>" when no server was reached
	// Timers in milliseconds, Absent when not run or not in the format:
	// TR, Tw, Tc, Tr, Ta for HTTP; Tw, Tc, Tt for TCP.
	TR, Tw, Tc, Tr, Ta, Tt int64
	Status                 int   // HTTP status, Absent for TCP
	Bytes                  int64 // bytes read from the server to the client
	ReqCookie, RespCookie  []byte
	Termination            []byte // 2 (TCP) or 4 (HTTP) characters
	// Connection counters: actconn, feconn, beconn, srv_conn, retries.
	ActConn, FeConn, BeConn, SrvConn, Retries int64
	SrvQueue, BackendQueue                    int64
	// Captured request and response headers, '|'-separated as HAProxy
	// writes them, without the braces (nil when none are configured).
	ReqHeaders, RespHeaders []byte
	// Request is the quoted request line; Method, URI, Version its parts
	// (Version without "HTTP/"); Path and Query split URI at '?'.
	Request, Method, URI, Path, Query, Version []byte
	// httpslog: SNI, TLS version ("TLSv1.3") and cipher.
	SNI, TLSVersion, TLSCipher []byte
	// Default format: the address the client connected to, and the
	// frontend's mode ("HTTP", "TCP").
	DestIP   []byte
	DestPort int
	Mode     []byte
}

// Errors of ParseHAProxy: the line is not in a format it knows.
var (
	ErrHAProxyEmpty   = errors.New("haproxy: empty line")
	ErrHAProxyFormat  = errors.New("haproxy: not a httplog, httpslog, tcplog or default log line")
	ErrHAProxyBadDate = errors.New("haproxy: bad accept date")
)

// ParseHAProxy parses one HAProxy log line into h: option httplog,
// httpslog, tcplog or the default format, with or without a syslog header
// in front (RFC 3164, as HAProxy sends it or rsyslog writes it to a file,
// or RFC 5424). Dates are read in loc (HAProxy logs local time; nil is
// time.Local). It does not allocate; on error h is partly filled and must
// not be used.
func ParseHAProxy(line []byte, loc *time.Location, h *HAProxy) error {
	*h = HAProxy{TR: Absent, Tw: Absent, Tc: Absent, Tr: Absent, Ta: Absent, Tt: Absent, Status: Absent, Bytes: Absent,
		ActConn: Absent, FeConn: Absent, BeConn: Absent, SrvConn: Absent, Retries: Absent, SrvQueue: Absent, BackendQueue: Absent}
	if loc == nil {
		loc = time.Local
	}
	line = bytes.TrimRight(line, "\r\n")
	if len(line) == 0 {
		return ErrHAProxyEmpty
	}
	// A body starts with the client address (hexadecimal digits, lower
	// case) or "Connect from"; anything else has a syslog header first.
	if c := line[0]; c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == 'C' {
		if err := parseHAProxyBody(line, loc, h); err == nil {
			return nil
		}
	}
	// A syslog header in front: the body is its MSG part.
	msg := syslogMsg(line, loc)
	if len(msg) == len(line) {
		if i := bytes.Index(line, []byte(": ")); i > 0 {
			msg = line[i+2:]
		}
	}
	if len(msg) == len(line) {
		return ErrHAProxyFormat
	}
	*h = HAProxy{TR: Absent, Tw: Absent, Tc: Absent, Tr: Absent, Ta: Absent, Tt: Absent, Status: Absent, Bytes: Absent,
		ActConn: Absent, FeConn: Absent, BeConn: Absent, SrvConn: Absent, Retries: Absent, SrvQueue: Absent, BackendQueue: Absent}
	return parseHAProxyBody(msg, loc, h)
}

// hp is a cursor over a line.
type hp struct {
	b   []byte
	bad bool
}

// word cuts the next space-separated field.
func (p *hp) word() []byte {
	if len(p.b) == 0 {
		p.bad = true
		return nil
	}
	i := bytes.IndexByte(p.b, ' ')
	if i < 0 {
		w := p.b
		p.b = nil
		return w
	}
	w := p.b[:i]
	p.b = p.b[i+1:]
	if len(w) == 0 {
		p.bad = true
	}
	return w
}

// ints splits w at '/' into exactly len(dst) numbers ("-1" and a leading
// '+' allowed).
func (p *hp) ints(w []byte, dst ...*int64) {
	for i, d := range dst {
		j := bytes.IndexByte(w, '/')
		if i == len(dst)-1 {
			j = len(w)
		} else if j < 0 {
			p.bad = true
			return
		}
		v, ok := atoi(w[:j])
		if !ok {
			p.bad = true
			return
		}
		*d = v
		if j < len(w) {
			w = w[j+1:]
		} else {
			w = nil
		}
	}
	if len(w) != 0 {
		p.bad = true
	}
}

// atoi parses a decimal number with an optional sign (HAProxy prefixes a
// value with '+' under logasap or for redispatched retries).
func atoi(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// hostPort splits "ip:port" (an IPv6 address keeps its colons: the port is
// after the last one).
func hostPort(w []byte) ([]byte, int, bool) {
	i := bytes.LastIndexByte(w, ':')
	if i <= 0 {
		return nil, 0, false
	}
	port, ok := atoi(w[i+1:])
	if !ok || port < 0 || port > 65535 {
		return nil, 0, false
	}
	ip := w[:i]
	for _, c := range ip {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':') {
			return nil, 0, false
		}
	}
	return ip, int(port), true
}

// acceptDate parses "[30/Nov/2026:11:25:44.260]".
func acceptDate(w []byte, loc *time.Location) (int64, bool) {
	if len(w) != 26 || w[0] != '[' || w[25] != ']' || w[3] != '/' || w[7] != '/' || w[12] != ':' || w[15] != ':' || w[18] != ':' || w[21] != '.' {
		return 0, false
	}
	d, mo := two(w[1:3]), month(w[4:7])
	y1, y2 := two(w[8:10]), two(w[10:12])
	hh, mm, ss := two(w[13:15]), two(w[16:18]), two(w[19:21])
	ms1, ms2 := two(w[22:24]), int(w[24])-'0'
	if d < 1 || d > 31 || mo == 0 || y1 < 0 || y2 < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 || ms1 < 0 || ms2 < 0 || ms2 > 9 {
		return 0, false
	}
	ms := ms1*10 + ms2
	return localUnixNano(y1*100+y2, mo, d, hh, mm, ss, ms*int(time.Millisecond), loc), true
}

func parseHAProxyBody(b []byte, loc *time.Location, h *HAProxy) error {
	if bytes.HasPrefix(b, []byte("Connect from ")) {
		return parseConnect(b[len("Connect from "):], h)
	}
	p := &hp{b: b}
	var ok bool
	if h.ClientIP, h.ClientPort, ok = hostPort(p.word()); !ok {
		return ErrHAProxyFormat
	}
	if h.Time, ok = acceptDate(p.word(), loc); !ok {
		return ErrHAProxyBadDate
	}
	h.Frontend = p.word()
	if n := len(h.Frontend); n > 1 && h.Frontend[n-1] == '~' {
		h.Frontend, h.TLS = h.Frontend[:n-1], true
	}
	bs := p.word()
	i := bytes.IndexByte(bs, '/')
	if i <= 0 || i == len(bs)-1 {
		return ErrHAProxyFormat
	}
	h.Backend, h.Server = bs[:i], bs[i+1:]
	timers := p.word()
	switch bytes.Count(timers, []byte("/")) {
	case 4: // TR/Tw/Tc/Tr/Ta: HTTP
		p.ints(timers, &h.TR, &h.Tw, &h.Tc, &h.Tr, &h.Ta)
		return parseHTTP(p, h)
	case 2: // Tw/Tc/Tt: TCP
		p.ints(timers, &h.Tw, &h.Tc, &h.Tt)
		return parseTCP(p, h)
	}
	return ErrHAProxyFormat
}

func parseTCP(p *hp, h *HAProxy) error {
	h.Format = HAProxyTCP
	var ok bool
	if h.Bytes, ok = atoi(p.word()); !ok {
		return ErrHAProxyFormat
	}
	h.Termination = p.word()
	p.ints(p.word(), &h.ActConn, &h.FeConn, &h.BeConn, &h.SrvConn, &h.Retries)
	p.ints(p.word(), &h.SrvQueue, &h.BackendQueue)
	if p.bad || len(h.Termination) != 2 || len(p.b) != 0 {
		return ErrHAProxyFormat
	}
	return nil
}

func parseHTTP(p *hp, h *HAProxy) error {
	h.Format = HAProxyHTTP
	st, ok := atoi(p.word())
	if !ok || st < 0 || st > 999 {
		return ErrHAProxyFormat
	}
	h.Status = int(st)
	if h.Bytes, ok = atoi(p.word()); !ok {
		return ErrHAProxyFormat
	}
	h.ReqCookie = nilDash(p.word())
	h.RespCookie = nilDash(p.word())
	h.Termination = p.word()
	p.ints(p.word(), &h.ActConn, &h.FeConn, &h.BeConn, &h.SrvConn, &h.Retries)
	p.ints(p.word(), &h.SrvQueue, &h.BackendQueue)
	if p.bad || len(h.Termination) != 4 {
		return ErrHAProxyFormat
	}
	// Up to two captured header blocks: request, then response.
	for n := 0; n < 2 && len(p.b) > 0 && p.b[0] == '{'; n++ {
		end := bytes.IndexByte(p.b, '}')
		if end < 0 {
			return ErrHAProxyFormat
		}
		// A captured value may hold '}': the block ends at "} " or at
		// the end of the line.
		for end+1 < len(p.b) && p.b[end+1] != ' ' {
			j := bytes.IndexByte(p.b[end+1:], '}')
			if j < 0 {
				return ErrHAProxyFormat
			}
			end += 1 + j
		}
		blk := p.b[1:end]
		if n == 0 {
			h.ReqHeaders = blk
		} else {
			h.RespHeaders = blk
		}
		p.b = p.b[end+1:]
		if len(p.b) > 0 {
			p.b = p.b[1:]
		}
	}
	// The request line, quoted; HAProxy escapes '"' inside it as #22.
	if len(p.b) < 2 || p.b[0] != '"' {
		return ErrHAProxyFormat
	}
	q := bytes.IndexByte(p.b[1:], '"')
	if q < 0 {
		return ErrHAProxyFormat
	}
	h.Request = p.b[1 : 1+q]
	p.b = p.b[2+q:]
	splitRequest(h)
	if len(p.b) == 0 {
		return nil
	}
	if p.b[0] != ' ' {
		return ErrHAProxyFormat
	}
	p.b = p.b[1:]
	// httpslog: %[fc_err]/%[ssl_fc_err,hex]/%[ssl_c_err]/%[ssl_c_ca_err]/%[ssl_fc_is_resumed] %[ssl_fc_sni]/%sslv/%sslc
	errs := p.word()
	tls := p.word()
	if p.bad || len(p.b) != 0 || bytes.Count(errs, []byte("/")) != 4 {
		return ErrHAProxyFormat
	}
	i := bytes.IndexByte(tls, '/')
	j := bytes.LastIndexByte(tls, '/')
	if i < 0 || j == i {
		return ErrHAProxyFormat
	}
	h.Format = HAProxyHTTPS
	h.SNI, h.TLSVersion, h.TLSCipher = nilDash(tls[:i]), nilDash(tls[i+1:j]), nilDash(tls[j+1:])
	return nil
}

// splitRequest cuts h.Request ("GET /p?q HTTP/1.1") into its parts. A
// request HAProxy could not parse ("<BADREQ>") has none.
func splitRequest(h *HAProxy) {
	r := h.Request
	sp := bytes.IndexByte(r, ' ')
	if sp <= 0 {
		return
	}
	h.Method = r[:sp]
	r = r[sp+1:]
	if sp = bytes.LastIndexByte(r, ' '); sp >= 0 && bytes.HasPrefix(r[sp+1:], []byte("HTTP/")) {
		h.Version = r[sp+1+len("HTTP/"):]
		r = r[:sp]
	}
	h.URI = r
	if q := bytes.IndexByte(r, '?'); q >= 0 {
		h.Path, h.Query = r[:q], r[q+1:]
	} else {
		h.Path = r
	}
}

// parseConnect parses the rest of "Connect from 10.0.1.2:33312 to
// 10.0.3.31:8012 (www/HTTP)".
func parseConnect(b []byte, h *HAProxy) error {
	h.Format = HAProxyConnect
	p := &hp{b: b}
	var ok bool
	if h.ClientIP, h.ClientPort, ok = hostPort(p.word()); !ok {
		return ErrHAProxyFormat
	}
	if string(p.word()) != "to" {
		return ErrHAProxyFormat
	}
	if h.DestIP, h.DestPort, ok = hostPort(p.word()); !ok {
		return ErrHAProxyFormat
	}
	fm := p.word()
	if p.bad || len(p.b) != 0 || len(fm) < 5 || fm[0] != '(' || fm[len(fm)-1] != ')' {
		return ErrHAProxyFormat
	}
	fm = fm[1 : len(fm)-1]
	i := bytes.LastIndexByte(fm, '/')
	if i <= 0 || i == len(fm)-1 {
		return ErrHAProxyFormat
	}
	h.Frontend, h.Mode = fm[:i], fm[i+1:]
	return nil
}
