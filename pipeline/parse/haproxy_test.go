package parse

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Lines captured from HAProxy 2.6 (Debian 12) logging over UDP: see
// testdata/haproxy (rfc3164.log, rfc5424.log as HAProxy sends them,
// rsyslog-file.log as rsyslog writes them to /var/log/haproxy.log).
const (
	realHTTP    = `<134>Nov 30 11:25:44 haproxy[13509]: 81.2.69.142:40001 [30/Nov/2026:11:25:44.260] fe_http be_app/app1 0/0/0/1/1 200 128 - - ---- 1/1/0/0/0 0/0 {example.com|test/1.0} {r1} "GET /index.html?a=1&b=two HTTP/1.1"`
	realNoSrv   = `<134>Nov 30 11:25:44 haproxy[13509]: 81.2.69.142:40004 [30/Nov/2026:11:25:44.874] fe_http be_dead/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 {example.com|} {} "GET /dead/x HTTP/1.1"`
	realBadReq  = `<134>Nov 30 11:25:47 haproxy[13509]: 81.2.69.142:40007 [30/Nov/2026:11:25:47.615] fe_http fe_http/<NOSRV> -1/-1/-1/-1/0 400 0 - - PR-- 1/1/0/0/0 0/0 "<BADREQ>"`
	realHTTPS   = `<134>Nov 30 11:25:47 haproxy[13509]: 127.0.0.1:46770 [30/Nov/2026:11:25:47.653] fe_https~ be_app/app1 0/0/1/1/2 200 128 - - ---- 1/1/0/0/0 0/0 "GET /tls?q=1 HTTP/1.1" 0/0000000000000000/0/0/0 -/TLSv1.3/TLS_AES_256_GCM_SHA384`
	realTCP     = `<134>Nov 30 11:25:47 haproxy[13509]: 127.0.0.1:34192 [30/Nov/2026:11:25:47.710] fe_tcp be_tcp/app1 1/0/4 129 -- 1/1/0/0/0 0/0`
	realConnect = `<134>Nov 30 11:25:47 haproxy[13509]: Connect from 127.0.0.1:53778 to 127.0.0.1:18004 (fe_default/TCP)`
	real5424    = `<134>1 2026-11-30T11:25:45.357531+00:00 - haproxy 13509 - - 81.2.69.142:40005 [30/Nov/2026:11:25:45.056] fe_http be_app/app1 0/0/0/301/301 200 128 - - ---- 1/1/0/0/0 0/0 {example.com|} {r1} "GET /slow HTTP/1.1"`
	realFile    = `Nov 30 11:25:44 lb1 haproxy[13509]: 216.160.83.56:40002 [30/Nov/2026:11:25:44.425] fe_http be_app/app1 0/0/0/2/2 200 128 - - ---- 1/1/0/0/0 0/0 {example.com|} {r1} "POST /api/items HTTP/1.1"`
	// HAProxy writes an IPv6 client as address:port without brackets.
	ipv6Body = `2001:218:::40003 [30/Nov/2026:11:25:44.600] fe_http be_app/app1 0/0/0/1/1 404 140 - - ---- 1/1/0/0/0 0/0 {example.com|} {r1} "GET /missing HTTP/1.1"`
)

func fieldsOf(t *testing.T, line string) (HAProxy, map[string]*ferryv1.Value) {
	t.Helper()
	var h HAProxy
	if err := ParseHAProxy([]byte(line), time.UTC, &h); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return h, HAProxyFields(nil, &h)
}

func wantFields(t *testing.T, got map[string]*ferryv1.Value, want map[string]any, absent ...string) {
	t.Helper()
	for k, w := range want {
		v := got[k]
		switch w := w.(type) {
		case string:
			if _, ok := v.GetKind().(*ferryv1.Value_Str); !ok || v.GetStr() != w {
				t.Errorf("%s = %v, want string %q", k, v, w)
			}
		case int:
			if _, ok := v.GetKind().(*ferryv1.Value_Int); !ok || v.GetInt() != int64(w) {
				t.Errorf("%s = %v, want int %d", k, v, w)
			}
		}
	}
	for _, k := range absent {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %v, want absent", k, v)
		}
	}
}

func TestHAProxyFormats(t *testing.T) {
	ms := func(s string) int64 {
		tm, err := time.Parse("2006-01-02T15:04:05.000", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixNano()
	}
	cases := []struct {
		name   string
		line   string
		format HAProxyFormat
		time   int64
		want   map[string]any
		absent []string
	}{
		{"httplog with captures", realHTTP, HAProxyHTTP, ms("2026-11-30T11:25:44.260"), map[string]any{
			"source.ip": "81.2.69.142", "source.port": 40001,
			"http.request.method": "GET", "url.original": "/index.html?a=1&b=two", "url.path": "/index.html", "url.query": "a=1&b=two",
			"http.version": "1.1", "http.response.status_code": 200, "http.response.bytes": 128,
			"haproxy.frontend_name": "fe_http", "haproxy.backend_name": "be_app", "haproxy.server_name": "app1",
			"haproxy.timers.TR": 0, "haproxy.timers.Tw": 0, "haproxy.timers.Tc": 0, "haproxy.timers.Tr": 1, "haproxy.timers.Ta": 1,
			"event.duration": 1000000, "haproxy.termination_state": "----", "event.outcome": "success",
			"haproxy.connections.active": 1, "haproxy.connections.frontend": 1, "haproxy.connections.backend": 0,
			"haproxy.connections.server": 0, "haproxy.connections.retries": 0, "haproxy.queue.server": 0, "haproxy.queue.backend": 0,
			"haproxy.http.request.captured_headers": "example.com|test/1.0", "haproxy.http.response.captured_headers": "r1",
		}, []string{"haproxy.timers.Tt", "tls.version", "haproxy.http.request.captured_cookie"}},
		{"503 without a server: -1 timers absent", realNoSrv, HAProxyHTTP, ms("2026-11-30T11:25:44.874"), map[string]any{
			"http.response.status_code": 503, "event.outcome": "failure", "haproxy.server_name": "<NOSRV>",
			"haproxy.timers.TR": 0, "haproxy.timers.Ta": 0, "haproxy.termination_state": "SC--", "event.duration": 0,
		}, []string{"haproxy.timers.Tw", "haproxy.timers.Tc", "haproxy.timers.Tr", "haproxy.http.response.captured_headers", "url.query"}},
		{"bad request", realBadReq, HAProxyHTTP, ms("2026-11-30T11:25:47.615"), map[string]any{
			"http.response.status_code": 400, "haproxy.http.request.raw": "<BADREQ>", "haproxy.termination_state": "PR--",
		}, []string{"http.request.method", "url.original", "haproxy.timers.TR"}},
		{"httpslog", realHTTPS, HAProxyHTTPS, ms("2026-11-30T11:25:47.653"), map[string]any{
			"haproxy.frontend_name": "fe_https", "tls.version": "1.3", "tls.version_protocol": "tls",
			"tls.cipher": "TLS_AES_256_GCM_SHA384", "url.path": "/tls", "url.query": "q=1",
		}, []string{"tls.client.server_name"}},
		{"tcplog", realTCP, HAProxyTCP, ms("2026-11-30T11:25:47.710"), map[string]any{
			"haproxy.timers.Tw": 1, "haproxy.timers.Tc": 0, "haproxy.timers.Tt": 4, "event.duration": 4000000,
			"haproxy.bytes_read": 129, "haproxy.termination_state": "--", "haproxy.backend_name": "be_tcp",
		}, []string{"http.response.status_code", "event.outcome", "haproxy.timers.TR"}},
		{"default format", realConnect, HAProxyConnect, 0, map[string]any{
			"source.ip": "127.0.0.1", "source.port": 53778, "destination.ip": "127.0.0.1", "destination.port": 18004,
			"haproxy.frontend_name": "fe_default", "haproxy.mode": "TCP",
		}, []string{"event.duration"}},
		{"RFC 5424 header", real5424, HAProxyHTTP, ms("2026-11-30T11:25:45.056"), map[string]any{
			"haproxy.timers.Tr": 301, "event.duration": 301000000, "url.path": "/slow",
		}, nil},
		{"rsyslog file line", realFile, HAProxyHTTP, ms("2026-11-30T11:25:44.425"), map[string]any{
			"http.request.method": "POST", "source.ip": "216.160.83.56", "haproxy.http.request.captured_headers": "example.com|",
		}, nil},
		{"no syslog header, IPv6 client", ipv6Body, HAProxyHTTP, ms("2026-11-30T11:25:44.600"), map[string]any{
			"source.ip": "2001:218::", "source.port": 40003, "http.response.status_code": 404, "event.outcome": "success",
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, got := fieldsOf(t, c.line)
			if h.Format != c.format {
				t.Errorf("format %d, want %d", h.Format, c.format)
			}
			if h.Time != c.time {
				t.Errorf("time %v, want %v", time.Unix(0, h.Time).UTC(), time.Unix(0, c.time).UTC())
			}
			wantFields(t, got, c.want, c.absent...)
		})
	}
}

func TestHAProxyUnparsed(t *testing.T) {
	for _, line := range []string{
		"",
		`<129>Nov 30 11:25:43 haproxy[13509]: Server be_dead/dead1 is DOWN, reason: Layer4 connection problem`,
		`<134>Nov 30 11:25:44 haproxy[13509]: 127.0.0.1:36692 [30/Nov/2026:11:25:44.690] fe_http/1: Received an invalid PROXY protocol header`,
		`81.2.69.142:40001 [31/Foo/2026:11:25:44.260] fe_http be_app/app1 0/0/0/1/1 200 128 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
		`81.2.69.142:40001 [30/Nov/2026:11:25:44.260] fe_http be_app/app1 0/0/0/1 200 128 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
		`81.2.69.142:40001 [30/Nov/2026:11:25:44.260] fe_http be_app/app1 0/0/0/1/1 200 128 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1`,
		`81.2.69.142:40001 [30/Nov/2026:11:25:44.260] fe_http be_app/app1 0/0/0/1/1 2x0 128 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"`,
		`81.2.69.142:99999 [30/Nov/2026:11:25:44.260] fe_tcp be/s 1/0/4 129 -- 1/1/0/0/0 0/0`,
		`Connect from 1.2.3.4:5 to 6.7.8.9:10 (fe)`,
	} {
		var h HAProxy
		if err := ParseHAProxy([]byte(line), time.UTC, &h); err == nil {
			t.Errorf("%q parsed (format %d), want an error", line, h.Format)
		}
	}
}

// TestHAProxyCorpus parses every line HAProxy wrote in testdata/haproxy:
// each request line parses, and only HAProxy's own notices do not.
func TestHAProxyCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/haproxy/*.log")
	if len(files) == 0 {
		t.Fatal("no corpus in testdata/haproxy")
	}
	parsed := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			var h HAProxy
			err := ParseHAProxy([]byte(line), time.UTC, &h)
			notice := strings.Contains(line, " is DOWN") || strings.Contains(line, "no server available") || strings.Contains(line, "invalid PROXY")
			if notice != (err != nil) {
				t.Errorf("%s: %q: err %v", name, line, err)
			}
			if err == nil {
				parsed++
			}
		}
		f.Close()
	}
	if parsed < 20 {
		t.Fatalf("only %d corpus lines parsed", parsed)
	}
}

func TestHAProxyParseAllocs(t *testing.T) {
	for _, line := range []string{realHTTP, realHTTPS, realTCP, realConnect, real5424, realFile, "not haproxy at all"} {
		b := []byte(line)
		var h HAProxy
		if n := testing.AllocsPerRun(100, func() { _ = ParseHAProxy(b, time.UTC, &h) }); n != 0 {
			t.Errorf("%q: %v allocations, want 0", line, n)
		}
	}
}

func TestSyslogHeaders(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in, msg, app, host, proc string
		pri                      int
		rfc5424                  bool
		time                     time.Time
	}{
		{"<134>Nov 30 11:25:44 haproxy[13509]: hello", "hello", "haproxy", "", "13509", 134, false, time.Date(2026, 11, 30, 11, 25, 44, 0, time.UTC)},
		{"<13>Jan  2 03:04:05 host1 app: x y", "x y", "app", "host1", "", 13, false, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"<13>Dec 31 23:59:59 host1 app: last year", "last year", "app", "host1", "", 13, false, time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"<134>1 2026-11-30T11:25:44.267014+01:00 lb1 haproxy 13509 ID7 - body here", "body here", "haproxy", "lb1", "13509", 134, true, time.Date(2026, 11, 30, 10, 25, 44, 267014000, time.UTC)},
		{`<165>1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appl\]ication"][x@1 a="b"] ` + "\xef\xbb\xbfAn application event", "An application event", "evntslog", "mymachine", "", 165, true, time.Date(2003, 10, 11, 22, 14, 15, 3000000, time.UTC)},
		{"<14>1 - - - - - -", "", "", "", "", 14, true, time.Time{}},
		{"no header at all", "no header at all", "", "", "", -1, false, time.Time{}},
		{"<999>bad pri", "<999>bad pri", "", "", "", -1, false, time.Time{}},
	}
	for _, c := range cases {
		h, msg := ParseSyslog([]byte(c.in), now, time.UTC)
		var tm int64
		if !c.time.IsZero() {
			tm = c.time.UnixNano()
		}
		if string(msg) != c.msg || string(h.AppName) != c.app || string(h.Hostname) != c.host || string(h.ProcID) != c.proc ||
			h.Priority != c.pri || h.RFC5424 != c.rfc5424 || h.Time != tm {
			t.Errorf("%q: got %+v msg %q (time %v)", c.in, h, msg, time.Unix(0, h.Time).UTC())
		}
	}
}

func FuzzHAProxy(f *testing.F) {
	files, _ := filepath.Glob("testdata/haproxy/*.log")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f.Add(line)
		}
	}
	f.Add(ipv6Body)
	parser := NewHAProxyParser(time.UTC)
	f.Fuzz(func(t *testing.T, line string) {
		checkAppendFields(t, parser, []byte(line))
		checkSyslogMsg(t, []byte(line))
		var h HAProxy
		err := ParseHAProxy([]byte(line), time.UTC, &h)
		if err != nil {
			if !errors.Is(err, ErrHAProxyFormat) && !errors.Is(err, ErrHAProxyBadDate) && !errors.Is(err, ErrHAProxyEmpty) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		fs := HAProxyFields(nil, &h)
		if len(fs) > HAProxyFieldCount {
			t.Fatalf("%d fields, more than HAProxyFieldCount", len(fs))
		}
		if h.Format != HAProxyConnect && h.Time == 0 {
			t.Fatalf("parsed without a time: %+v", h)
		}
		for k, v := range fs {
			if v.GetKind() == nil {
				t.Fatalf("%s has no value", k)
			}
		}
		_, _ = ParseSyslog([]byte(line), time.Now(), time.UTC)
	})
}

// TestSyslogMsgMatchesParseSyslog: the MSG part ParseHAProxy takes without
// the header's time is ParseSyslog's, for the fuzz seeds.
func TestSyslogMsgMatchesParseSyslog(t *testing.T) {
	lines := []string{realHTTP, realNoSrv, realHTTPS, realTCP, realConnect, real5424, realFile, ipv6Body, "", "<1>", "<13>Jan  1 00:00:00 x", "Nov 30 11:25:44 host tag: m", "Nov 30 11:25:44 tag[1]: m", "Nov 30 25:25:44 tag: m"}
	files, _ := filepath.Glob("testdata/haproxy/*.log")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(string(b), "\n")...)
	}
	for _, line := range lines {
		checkSyslogMsg(t, []byte(line))
	}
}

func checkSyslogMsg(t *testing.T, line []byte) {
	t.Helper()
	for _, loc := range []*time.Location{time.UTC, time.Local} {
		_, want := ParseSyslog(line, time.Now(), loc)
		if got := syslogMsg(line, loc); string(got) != string(want) || len(got) > 0 && &got[0] != &want[0] {
			t.Fatalf("%q: syslogMsg %q, ParseSyslog %q", line, got, want)
		}
	}
}

// BenchmarkHAProxy measures HAProxy lines parsed per CPU-second: ParseHAProxy
// alone (no allocation) and the agent's whole work per line (HAProxyEvent).
func BenchmarkHAProxy(b *testing.B) {
	line := []byte(realHTTP)
	b.Run("parse", func(b *testing.B) {
		var h HAProxy
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		for b.Loop() {
			if err := ParseHAProxy(line, time.UTC, &h); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What the agent does per line: parse, and the event's fields (the
	// input's own, copied, and the parsed ones).
	b.Run("event", func(b *testing.B) {
		refine := HAProxyEvent(time.UTC)
		shared := map[string]*ferryv1.Value{"data_stream.dataset": {Kind: &ferryv1.Value_Str{Str: "haproxy.log"}}}
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		for b.Loop() {
			ev := ferryv1.Event{Fields: shared}
			refine(&ev, line)
		}
	})
	// The agent's fast path: the fields encoded, no map
	// (transport.ClientConfig.FieldAppenders).
	b.Run("append", func(b *testing.B) {
		p := NewHAProxyParser(time.UTC)
		dst := make([]byte, 0, 4096)
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		for b.Loop() {
			ev := ferryv1.Event{}
			dst, _ = p.AppendFields(dst[:0], &ev, line)
		}
	})
	// As the agent runs it: each event's map given back once its batch
	// is acknowledged (transport.ClientConfig.ReleaseFields).
	b.Run("event-release", func(b *testing.B) {
		p := NewHAProxyParser(time.UTC)
		shared := map[string]*ferryv1.Value{"data_stream.dataset": {Kind: &ferryv1.Value_Str{Str: "haproxy.log"}}}
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		for b.Loop() {
			ev := ferryv1.Event{Fields: shared}
			p.Refine(&ev, line)
			p.Release(ev.Fields)
		}
	})
}

func TestHAProxyEvent(t *testing.T) {
	refine := HAProxyEvent(time.UTC)
	shared := map[string]*ferryv1.Value{"service.environment": {Kind: &ferryv1.Value_Str{Str: "prod"}}}
	ev := &ferryv1.Event{TimeUnixNano: 1, Fields: shared}
	refine(ev, []byte(realNoSrv))
	if len(shared) != 1 {
		t.Fatalf("the input's shared fields were modified: %v", shared)
	}
	wantFields(t, ev.Fields, map[string]any{"service.environment": "prod", "http.response.status_code": 503, "event.outcome": "failure"}, "error.message")
	if ev.Flags != 0 || ev.TimeUnixNano != time.Date(2026, 11, 30, 11, 25, 44, 874e6, time.UTC).UnixNano() {
		t.Fatalf("flags %d time %v", ev.Flags, time.Unix(0, ev.TimeUnixNano).UTC())
	}
	// The fields share one copy of the line; they say what HAProxyFields
	// says, for every format.
	for _, line := range []string{realHTTP, realHTTPS, realTCP, realConnect, real5424, realFile, ipv6Body} {
		ev := &ferryv1.Event{Fields: shared}
		msg := []byte("xx" + line + "\n")[2:] // a part of a larger buffer, as in a chunk
		refine(ev, msg)
		var h HAProxy
		if err := ParseHAProxy([]byte(line), time.UTC, &h); err != nil {
			t.Fatal(err)
		}
		want := HAProxyFields(map[string]*ferryv1.Value{"service.environment": shared["service.environment"]}, &h)
		if len(ev.Fields) != len(want) {
			t.Errorf("%q: %d fields, want %d", line, len(ev.Fields), len(want))
		}
		for k, v := range want {
			if ev.Fields[k].String() != v.String() {
				t.Errorf("%q: %s = %v, want %v", line, k, ev.Fields[k], v)
			}
		}
	}
	bad := &ferryv1.Event{TimeUnixNano: 7, Fields: shared, Message: []byte("Server be/s is DOWN")}
	refine(bad, bad.Message)
	if bad.Flags != uint32(ferryv1.Flag_FLAG_UNPARSED) || bad.TimeUnixNano != 7 || string(bad.Message) != "Server be/s is DOWN" {
		t.Fatalf("unparsed event %+v", bad)
	}
	wantFields(t, bad.Fields, map[string]any{"service.environment": "prod", "error.message": ErrHAProxyFormat.Error()}, "source.ip")
}

// TestHAProxyParserRelease: a map given back by Release serves a later
// event with nothing left over from the one before; values of an event
// stay what they were while later events are refined (slabs are never
// written over), and once warm Refine allocates nothing per line.
func TestHAProxyParserRelease(t *testing.T) {
	p := NewHAProxyParser(time.UTC)
	shared := map[string]*ferryv1.Value{"service.environment": {Kind: &ferryv1.Value_Str{Str: "prod"}}}
	lines := []string{realHTTPS, realTCP, realConnect, "not haproxy", realHTTP, real5424, ipv6Body}
	var kept []map[string]string // what each event said when refined
	var evs []*ferryv1.Event
	for round := 0; round < 300; round++ {
		for _, line := range lines {
			ev := &ferryv1.Event{Fields: shared}
			p.Refine(ev, []byte(line))
			want := map[string]*ferryv1.Value{"service.environment": shared["service.environment"]}
			var h HAProxy
			if err := ParseHAProxy([]byte(line), time.UTC, &h); err != nil {
				want["error.message"] = &ferryv1.Value{Kind: &ferryv1.Value_Str{Str: err.Error()}}
			} else {
				want = HAProxyFields(want, &h)
			}
			if len(ev.Fields) != len(want) {
				t.Fatalf("round %d %q: %d fields, want %d", round, line, len(ev.Fields), len(want))
			}
			snap := map[string]string{}
			for k, v := range want {
				if ev.Fields[k].String() != v.String() {
					t.Fatalf("round %d %q: %s = %v, want %v", round, line, k, ev.Fields[k], v)
				}
				snap[k] = v.String()
			}
			if round%3 == 0 {
				p.Release(ev.Fields) // acknowledged: the map comes back
			} else {
				kept, evs = append(kept, snap), append(evs, ev)
			}
		}
	}
	if len(shared) != 1 {
		t.Fatalf("the shared fields were modified: %v", shared)
	}
	for i, ev := range evs {
		for k, v := range kept[i] {
			if ev.Fields[k].String() != v {
				t.Fatalf("event %d: %s became %v, was %v", i, k, ev.Fields[k], v)
			}
		}
	}
	if raceEnabled {
		return // allocation counts differ under -race
	}
	line := []byte(realHTTP)
	ev := &ferryv1.Event{Fields: shared}
	n := testing.AllocsPerRun(1000, func() {
		ev.Fields = shared
		p.Refine(ev, line)
		p.Release(ev.Fields)
	})
	if n > 0.1 {
		t.Fatalf("Refine with Release allocates %v times per line", n)
	}
}
