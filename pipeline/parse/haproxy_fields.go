package parse

import (
	"strconv"

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
	return haproxyFields(dst, h, nil)
}

// values allocates the values of one event's fields together, and their
// strings as parts of one copy of the line (when the field is a part of
// it): a few allocations per event instead of three per field.
type values struct {
	line []byte
	s    string // string(line)
	vals []ferryv1.Value
	strs []ferryv1.Value_Str
	ints []ferryv1.Value_Int
}

func (a *values) str(b []byte) *ferryv1.Value {
	var s string
	if off := cap(a.line) - cap(b); a.s != "" && off >= 0 && off <= len(a.line)-len(b) && &a.line[off] == &b[0] {
		s = a.s[off : off+len(b)]
	} else {
		s = string(b)
	}
	// Appending past the capacity moves on to a new array: values made
	// before stay where they are.
	a.strs = append(a.strs, ferryv1.Value_Str{Str: s})
	a.vals = append(a.vals, ferryv1.Value{Kind: &a.strs[len(a.strs)-1]})
	return &a.vals[len(a.vals)-1]
}

func (a *values) int(v int64) *ferryv1.Value {
	a.ints = append(a.ints, ferryv1.Value_Int{Int: v})
	a.vals = append(a.vals, ferryv1.Value{Kind: &a.ints[len(a.ints)-1]})
	return &a.vals[len(a.vals)-1]
}

// haproxyFields is HAProxyFields; line, if not nil, is the line h was
// parsed from: its strings are then parts of one copy of it.
func haproxyFields(dst map[string]*ferryv1.Value, h *HAProxy, line []byte) map[string]*ferryv1.Value {
	if dst == nil {
		dst = make(map[string]*ferryv1.Value, HAProxyFieldCount)
	}
	a := &values{vals: make([]ferryv1.Value, 0, HAProxyFieldCount), strs: make([]ferryv1.Value_Str, 0, 20), ints: make([]ferryv1.Value_Int, 0, 24)}
	if len(line) > 0 {
		a.line, a.s = line, string(line)
	}
	str := func(k string, b []byte) {
		if len(b) > 0 {
			dst[k] = a.str(b)
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
		dst["event.outcome"] = &ferryv1.Value{Kind: &ferryv1.Value_Str{Str: "failure"}}
	} else if h.Status >= 0 {
		dst["event.outcome"] = &ferryv1.Value{Kind: &ferryv1.Value_Str{Str: "success"}}
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
