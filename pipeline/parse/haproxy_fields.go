package parse

import (
	"strconv"
	"unsafe"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// HAProxyFieldCount is how many fields HAProxyFields sets at most (for
// sizing the map).
const HAProxyFieldCount = 40

// HAProxyFields adds the event fields of h to dst (ECS names first,
// haproxy.* for the rest) and returns it: numbers as integers, a timer or
// counter that is Absent left out, event.outcome "failure" for a status of
// 500 or more ("success" below). It allocates the values; ParseHAProxy
// does not.
func HAProxyFields(dst map[string]*ferryv1.Value, h *HAProxy) map[string]*ferryv1.Value {
	a := values{nvals: HAProxyFieldCount, nstrs: 20, nints: 24}
	return haproxyFields(dst, h, nil, &a)
}

// values allocates the values of events' fields in slabs, and their
// strings as parts of copies of the lines in a text slab: a few
// allocations per many events instead of three per field. A slab is never
// written over: when one is full the next values go to a new one, and the
// old one lives as long as a value in it does. The zero value is ready
// for use; the slab sizes are those of the next slabs to make.
type values struct {
	vals []ferryv1.Value
	strs []ferryv1.Value_Str
	ints []ferryv1.Value_Int
	text []byte

	nvals, nstrs, nints, ntext int
}

// Slab sizes of HAProxyEvent, whose values serve many events: a slab
// holds the values of 50 to 100 lines.
const (
	slabVals = 2048
	slabStrs = 1024
	slabInts = 1024
	slabText = 32 << 10
)

// line returns a string copy of line, in the text slab.
func (a *values) line(line []byte) string {
	if len(line) == 0 {
		return ""
	}
	if cap(a.text)-len(a.text) < len(line) {
		a.text = make([]byte, 0, max(a.ntext, len(line)))
	}
	i := len(a.text)
	a.text = append(a.text, line...)
	// The bytes are never written again (see values): a string of them
	// stays immutable.
	return unsafe.String(&a.text[i], len(line))
}

// value returns a new value, its kind to be set.
func (a *values) value() *ferryv1.Value {
	if len(a.vals) == cap(a.vals) {
		a.vals = make([]ferryv1.Value, 0, max(a.nvals, 1))
	}
	a.vals = a.vals[:len(a.vals)+1]
	return &a.vals[len(a.vals)-1]
}

func (a *values) strValue(s string) *ferryv1.Value {
	if len(a.strs) == cap(a.strs) {
		a.strs = make([]ferryv1.Value_Str, 0, max(a.nstrs, 1))
	}
	a.strs = append(a.strs, ferryv1.Value_Str{Str: s})
	v := a.value()
	v.Kind = &a.strs[len(a.strs)-1]
	return v
}

// str returns the value of b: a part of s when b is a part of line (s is
// line's copy), else a copy.
func (a *values) str(line []byte, s string, b []byte) *ferryv1.Value {
	var v string
	if off := cap(line) - cap(b); s != "" && off >= 0 && off <= len(line)-len(b) && &line[off] == &b[0] {
		v = s[off : off+len(b)]
	} else {
		v = string(b)
	}
	return a.strValue(v)
}

func (a *values) int(v int64) *ferryv1.Value {
	if len(a.ints) == cap(a.ints) {
		a.ints = make([]ferryv1.Value_Int, 0, max(a.nints, 1))
	}
	a.ints = append(a.ints, ferryv1.Value_Int{Int: v})
	val := a.value()
	val.Kind = &a.ints[len(a.ints)-1]
	return val
}

// haproxyFields is HAProxyFields with the values from a; line, if not
// nil, is the line h was parsed from: its strings are then parts of one
// copy of it.
func haproxyFields(dst map[string]*ferryv1.Value, h *HAProxy, line []byte, a *values) map[string]*ferryv1.Value {
	if dst == nil {
		dst = make(map[string]*ferryv1.Value, HAProxyFieldCount)
	}
	var s string
	if len(line) > 0 {
		s = a.line(line)
	}
	str := func(k string, b []byte) {
		if len(b) > 0 {
			dst[k] = a.str(line, s, b)
		}
	}
	num := func(k string, v int64) {
		if v != Absent {
			dst[k] = a.int(v)
		}
	}
	str("source.ip", h.ClientIP)
	num("source.port", int64(h.ClientPort))
	str("haproxy.frontend_name", h.Frontend)
	if h.Format == HAProxyConnect {
		str("destination.ip", h.DestIP)
		num("destination.port", int64(h.DestPort))
		str("haproxy.mode", h.Mode)
		return dst
	}
	str("haproxy.backend_name", h.Backend)
	str("haproxy.server_name", h.Server)
	num("haproxy.timers.TR", h.TR)
	num("haproxy.timers.Tw", h.Tw)
	num("haproxy.timers.Tc", h.Tc)
	num("haproxy.timers.Tr", h.Tr)
	num("haproxy.timers.Ta", h.Ta)
	num("haproxy.timers.Tt", h.Tt)
	total := h.Ta
	if h.Format == HAProxyTCP {
		total = h.Tt
	}
	if total >= 0 {
		num("event.duration", total*1e6)
	}
	str("haproxy.termination_state", h.Termination)
	num("haproxy.connections.active", h.ActConn)
	num("haproxy.connections.frontend", h.FeConn)
	num("haproxy.connections.backend", h.BeConn)
	num("haproxy.connections.server", h.SrvConn)
	num("haproxy.connections.retries", h.Retries)
	num("haproxy.queue.server", h.SrvQueue)
	num("haproxy.queue.backend", h.BackendQueue)
	num("haproxy.bytes_read", h.Bytes)
	if h.Format == HAProxyTCP {
		return dst
	}
	num("http.response.status_code", int64(h.Status))
	num("http.response.bytes", h.Bytes)
	if h.Status >= 500 {
		dst["event.outcome"] = a.strValue("failure")
	} else if h.Status >= 0 {
		dst["event.outcome"] = a.strValue("success")
	}
	str("haproxy.http.request.captured_cookie", h.ReqCookie)
	str("haproxy.http.response.captured_cookie", h.RespCookie)
	str("haproxy.http.request.captured_headers", h.ReqHeaders)
	str("haproxy.http.response.captured_headers", h.RespHeaders)
	str("http.request.method", h.Method)
	str("url.original", h.URI)
	str("url.path", h.Path)
	str("url.query", h.Query)
	str("http.version", h.Version)
	if len(h.Method) == 0 {
		str("haproxy.http.request.raw", h.Request) // e.g. <BADREQ>
	}
	if h.Format == HAProxyHTTPS {
		str("tls.client.server_name", h.SNI)
		if v := h.TLSVersion; len(v) > 0 {
			// "TLSv1.3" → protocol "tls", version "1.3" (ECS)
			if i := indexDigit(v); i > 0 {
				str("tls.version", v[i:])
				proto := make([]byte, 0, i)
				for _, c := range v[:i] {
					if c >= 'A' && c <= 'Z' {
						c += 'a' - 'A'
					}
					proto = append(proto, c)
				}
				str("tls.version_protocol", trimV(proto))
			} else {
				str("tls.version", v)
			}
		}
		str("tls.cipher", h.TLSCipher)
	}
	return dst
}

func indexDigit(b []byte) int {
	for i, c := range b {
		if c >= '0' && c <= '9' {
			return i
		}
	}
	return -1
}

// trimV drops a trailing 'v' ("tlsv" → "tls").
func trimV(b []byte) []byte {
	if n := len(b); n > 1 && b[n-1] == 'v' {
		return b[:n-1]
	}
	return b
}

// HAProxyFieldsSize estimates the encoded size of the fields HAProxyFields
// sets for h (keys, values and protobuf framing), for batch sizing.
func HAProxyFieldsSize(h *HAProxy) int {
	n := 40 * 36 // keys and framing of every field, at most
	n += len(h.ClientIP) + len(h.Frontend) + len(h.Backend) + len(h.Server) + len(h.Termination) +
		len(h.ReqCookie) + len(h.RespCookie) + len(h.ReqHeaders) + len(h.RespHeaders) +
		len(h.Request) + 2*len(h.URI) + len(h.SNI) + len(h.TLSVersion) + len(h.TLSCipher) + len(h.DestIP) + len(h.Mode)
	return n + len(strconv.Itoa(h.Status))
}
