package parse

import (
	"math/bits"
	"unicode/utf8"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// The agent's fast path for HAProxy events: the fields Refine would put in
// a map of the event's own, written straight in their wire encoding (the
// entries of ferry.v1.Event.fields), which the agent's batch encoder
// appends to the event's other fields (wire.MarshalBatchExtra). No map, no
// values, no copy of the line: the strings are written from the message
// as they stand in it. The bytes are those proto.Marshal writes for the
// same map, entry by entry, in a fixed order (a map's order is free).

// AppendFields refines the event ev of the message msg as Refine does,
// except that the fields it adds are appended to dst in their wire
// encoding instead of being put in a map: ev.Fields (the input's shared
// fields) is left as it is, and the caller must not use AppendFields when
// that map holds a key Sets reports (Refine's map would replace it). It
// reports false, dst and ev unchanged, when it cannot: msg is not valid
// UTF-8 (Refine keeps such bytes for the encoder to refuse). It does not
// allocate, and may be called from several goroutines.
func (p *HAProxyParser) AppendFields(dst []byte, ev *ferryv1.Event, msg []byte) ([]byte, bool) {
	if !utf8.Valid(msg) {
		return dst, false
	}
	var h HAProxy
	if err := ParseHAProxy(msg, p.loc, &h); err != nil {
		dst = appendStrField(dst, "error.message", err.Error())
		ev.Flags |= uint32(ferryv1.Flag_FLAG_UNPARSED)
		return dst, true
	}
	dst = appendHAProxyFields(dst, &h)
	if h.Time != 0 {
		ev.TimeUnixNano = h.Time
	}
	return dst, true
}

// Sets reports whether Refine or AppendFields may set the field key.
func (p *HAProxyParser) Sets(key string) bool {
	_, ok := haproxyKeys[key]
	return ok
}

// haproxyKeys are the keys haproxyFields may set, and error.message.
var haproxyKeys = func() map[string]struct{} {
	m := map[string]struct{}{"error.message": {}}
	h := HAProxy{Format: HAProxyHTTPS, Status: 500, TLSVersion: []byte("TLSv1.3")}
	all := []byte("x")
	for _, f := range []*[]byte{&h.ClientIP, &h.Frontend, &h.Backend, &h.Server, &h.Termination, &h.ReqCookie, &h.RespCookie,
		&h.ReqHeaders, &h.RespHeaders, &h.Request, &h.Method, &h.URI, &h.Path, &h.Query, &h.Version, &h.SNI, &h.TLSCipher} {
		*f = all
	}
	add := func(fs map[string]*ferryv1.Value) {
		for k := range fs {
			m[k] = struct{}{}
		}
	}
	add(HAProxyFields(nil, &h)) // with a method: no haproxy.http.request.raw
	h.Method = nil
	add(HAProxyFields(nil, &h))
	h.Format, h.DestIP, h.Mode = HAProxyConnect, all, all
	add(HAProxyFields(nil, &h))
	return m
}()

// appendHAProxyFields is haproxyFields writing the entries' encoding.
func appendHAProxyFields(b []byte, h *HAProxy) []byte {
	b = appendStrFieldNZ(b, "source.ip", h.ClientIP)
	b = appendIntFieldNA(b, "source.port", int64(h.ClientPort))
	b = appendStrFieldNZ(b, "haproxy.frontend_name", h.Frontend)
	if h.Format == HAProxyConnect {
		b = appendStrFieldNZ(b, "destination.ip", h.DestIP)
		b = appendIntFieldNA(b, "destination.port", int64(h.DestPort))
		return appendStrFieldNZ(b, "haproxy.mode", h.Mode)
	}
	b = appendStrFieldNZ(b, "haproxy.backend_name", h.Backend)
	b = appendStrFieldNZ(b, "haproxy.server_name", h.Server)
	b = appendIntFieldNA(b, "haproxy.timers.TR", h.TR)
	b = appendIntFieldNA(b, "haproxy.timers.Tw", h.Tw)
	b = appendIntFieldNA(b, "haproxy.timers.Tc", h.Tc)
	b = appendIntFieldNA(b, "haproxy.timers.Tr", h.Tr)
	b = appendIntFieldNA(b, "haproxy.timers.Ta", h.Ta)
	b = appendIntFieldNA(b, "haproxy.timers.Tt", h.Tt)
	total := h.Ta
	if h.Format == HAProxyTCP {
		total = h.Tt
	}
	if total >= 0 {
		b = appendIntFieldNA(b, "event.duration", total*1e6)
	}
	b = appendStrFieldNZ(b, "haproxy.termination_state", h.Termination)
	b = appendIntFieldNA(b, "haproxy.connections.active", h.ActConn)
	b = appendIntFieldNA(b, "haproxy.connections.frontend", h.FeConn)
	b = appendIntFieldNA(b, "haproxy.connections.backend", h.BeConn)
	b = appendIntFieldNA(b, "haproxy.connections.server", h.SrvConn)
	b = appendIntFieldNA(b, "haproxy.connections.retries", h.Retries)
	b = appendIntFieldNA(b, "haproxy.queue.server", h.SrvQueue)
	b = appendIntFieldNA(b, "haproxy.queue.backend", h.BackendQueue)
	b = appendIntFieldNA(b, "haproxy.bytes_read", h.Bytes)
	if h.Format == HAProxyTCP {
		return b
	}
	b = appendIntFieldNA(b, "http.response.status_code", int64(h.Status))
	b = appendIntFieldNA(b, "http.response.bytes", h.Bytes)
	if h.Status >= 500 {
		b = appendStrField(b, "event.outcome", "failure")
	} else if h.Status >= 0 {
		b = appendStrField(b, "event.outcome", "success")
	}
	b = appendStrFieldNZ(b, "haproxy.http.request.captured_cookie", h.ReqCookie)
	b = appendStrFieldNZ(b, "haproxy.http.response.captured_cookie", h.RespCookie)
	b = appendStrFieldNZ(b, "haproxy.http.request.captured_headers", h.ReqHeaders)
	b = appendStrFieldNZ(b, "haproxy.http.response.captured_headers", h.RespHeaders)
	b = appendStrFieldNZ(b, "http.request.method", h.Method)
	b = appendStrFieldNZ(b, "url.original", h.URI)
	b = appendStrFieldNZ(b, "url.path", h.Path)
	b = appendStrFieldNZ(b, "url.query", h.Query)
	b = appendStrFieldNZ(b, "http.version", h.Version)
	if len(h.Method) == 0 {
		b = appendStrFieldNZ(b, "haproxy.http.request.raw", h.Request)
	}
	if h.Format == HAProxyHTTPS {
		b = appendStrFieldNZ(b, "tls.client.server_name", h.SNI)
		if v := h.TLSVersion; len(v) > 0 {
			if i := indexDigit(v); i > 0 {
				b = appendStrFieldNZ(b, "tls.version", v[i:])
				var buf [32]byte
				proto := buf[:0]
				if i > len(buf) {
					proto = make([]byte, 0, i)
				}
				for _, c := range v[:i] {
					if c >= 'A' && c <= 'Z' {
						c += 'a' - 'A'
					}
					proto = append(proto, c)
				}
				b = appendStrFieldNZ(b, "tls.version_protocol", trimV(proto))
			} else {
				b = appendStrFieldNZ(b, "tls.version", v)
			}
		}
		b = appendStrFieldNZ(b, "tls.cipher", h.TLSCipher)
	}
	return b
}

// The encoding of one entry of ferry.v1.Event.fields (map<string, Value>,
// field 7): tag 7 (length-delimited), the entry's length, key (field 1),
// value (field 2: a ferry.v1.Value, whose oneof is str = 1 or int = 2).

func sizeVarint(v uint64) int { return int((9*uint32(bits.Len64(v)) + 64) / 64) }

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// sizeLen is the size of a length-delimited field of n bytes, its
// one-byte tag included.
func sizeLen(n int) int { return 1 + sizeVarint(uint64(n)) + n }

// appendEntry writes the entry's tag, its length and its key, for a value
// of vs bytes.
func appendEntry(b []byte, k string, vs int) []byte {
	b = append(b, 0x3a)
	b = appendVarint(b, uint64(sizeLen(len(k))+sizeLen(vs)))
	b = append(b, 0x0a)
	b = appendVarint(b, uint64(len(k)))
	b = append(b, k...)
	b = append(b, 0x12)
	return appendVarint(b, uint64(vs))
}

func appendStrField[S string | []byte](b []byte, k string, v S) []byte {
	b = appendEntry(b, k, sizeLen(len(v)))
	b = append(b, 0x0a)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// appendStrFieldNZ writes a string field unless it is empty (as
// haproxyFields' str).
func appendStrFieldNZ(b []byte, k string, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return appendStrField(b, k, v)
}

// appendIntFieldNA writes an integer field unless it is Absent (as
// haproxyFields' num).
func appendIntFieldNA(b []byte, k string, v int64) []byte {
	if v == Absent {
		return b
	}
	b = appendEntry(b, k, 1+sizeVarint(uint64(v)))
	b = append(b, 0x10)
	return appendVarint(b, uint64(v))
}
