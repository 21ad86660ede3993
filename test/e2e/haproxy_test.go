package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// hapRequest is a request sent through HAProxy and what its log line must
// say.
type hapRequest struct {
	harness.ProxiedRequest
	status int
}

// hapRequests are the requests each test frontend gets: several methods
// and paths, a 404, a 503 from a dead backend, a slow response; the
// clients claim public addresses (MaxMind's test networks) through the
// PROXY protocol. Source ports are unique, so each log line is found by
// its port.
func hapRequests(base int) []hapRequest {
	return []hapRequest{
		{harness.ProxiedRequest{SrcIP: "81.2.69.142", SrcPort: base + 1, Method: "GET", Target: "/r/index.html?a=1&b=two"}, 200},
		{harness.ProxiedRequest{SrcIP: "216.160.83.56", SrcPort: base + 2, Method: "POST", Target: "/r/api/items", Body: "abc"}, 200},
		{harness.ProxiedRequest{SrcIP: "2001:218::", SrcPort: base + 3, Method: "GET", Target: "/r/missing"}, 404},
		{harness.ProxiedRequest{SrcIP: "81.2.69.142", SrcPort: base + 4, Method: "GET", Target: "/dead/x"}, 503},
		{harness.ProxiedRequest{SrcIP: "216.160.83.56", SrcPort: base + 5, Method: "GET", Target: "/r/slow"}, 200},
		{harness.ProxiedRequest{SrcIP: "81.2.69.142", SrcPort: base + 6, Method: "PUT", Target: "/r/put", Body: "x"}, 200},
		{harness.ProxiedRequest{SrcIP: "2001:218::", SrcPort: base + 7, Method: "DELETE", Target: "/r/item/7"}, 200},
		{harness.ProxiedRequest{SrcIP: "81.2.69.142", SrcPort: base + 8, Method: "HEAD", Target: "/r/head"}, 200},
	}
}

// hapFrontend is one HAProxy frontend of the tests, logging to target.
func hapFrontend(name, bind, target string) string {
	return fmt.Sprintf(`
frontend %s
  bind %s accept-proxy
  log %s local0
  option httplog
  capture request header Host len 40
  capture request header User-Agent len 30
  use_backend be_dead if { path_beg /dead }
  default_backend be_app
`, name, bind, target)
}

func hapConfig(backend, dead string, frontends ...string) string {
	return `
global
  maxconn 256
defaults
  mode http
  retries 0
  timeout connect 1s
  timeout client 5s
  timeout server 5s
` + strings.Join(frontends, "") + `
backend be_app
  server app1 ` + backend + `
backend be_dead
  server dead1 ` + dead + `
`
}

// hapAgentYAML is the configuration of an agent on the HAProxy host.
func hapAgentYAML(node, state, httpAddr, aggregator, inputs string) string {
	return fmt.Sprintf(`
node: %s
state_dir: %s
http: %s
aggregator:
  address: %s
  batch_timeout: 100ms
  backoff_initial: 50ms
  backoff_max: 500ms
  shutdown_timeout: 1s
inputs:
%s`, node, state, httpAddr, aggregator, inputs)
}

func hapInput(name, listen, env string) string {
	return fmt.Sprintf("  - {name: %s, type: syslog, listen: %q, parser: haproxy, dataset: haproxy.log, environment: %s}\n", name, listen, env)
}

// hapDocs returns the documents of stream whose field has value, by
// source.port.
func hapDocs(t *testing.T, es *harness.ESClient, stream, field, value string) map[int][]map[string]any {
	t.Helper()
	var res struct {
		Hits struct {
			Hits []struct {
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	es.Must(http.MethodPost, "/"+stream+"/_refresh", nil, nil)
	es.Must(http.MethodPost, "/"+stream+"/_search", map[string]any{"size": 1000, "query": harness.TermQuery(field, value)}, &res)
	out := map[int][]map[string]any{}
	for _, h := range res.Hits.Hits {
		port, _ := sourceField(h.Source, "source.port").(float64)
		out[int(port)] = append(out[int(port)], h.Source)
	}
	return out
}

// waitStreamCount waits until stream holds want documents whose field has
// value; more fails at once.
func waitStreamCount(t *testing.T, es *harness.ESClient, stream, field, value string, want int, timeout time.Duration) {
	t.Helper()
	var n int
	harness.WaitFor(t, timeout, fmt.Sprintf("%d documents with %s=%s in %s", want, field, value, stream), func() bool {
		n, _ = es.TryCount(stream, harness.TermQuery(field, value))
		if n > want {
			t.Fatalf("%d documents with %s=%s in %s, more than the %d requests", n, field, value, stream, want)
		}
		return n == want
	})
}

// hapRun is what a HAProxy test sets up first: a fresh environment and
// its data stream (deleted when the test ends), and the configuration of
// an aggregator writing to Elasticsearch behind a disk buffer (written to
// root/aggregator.yaml, not started).
type hapRun struct {
	es              *harness.ESClient
	root, node, run string
	env, stream     string
	agg             harness.ESAggregatorConfig
}

func newHAPRun(t *testing.T, envPrefix string) hapRun {
	h := hapRun{es: harness.NewESClient(t, harness.ESURL(t)), root: t.TempDir(), node: harness.UniqueNode(t, "hap"),
		run: strconv.FormatInt(time.Now().UnixNano(), 36)}
	h.env = envPrefix + h.run
	h.stream = "logs-haproxy.log-" + h.env
	t.Cleanup(func() { _, _, _ = h.es.Call(http.MethodDelete, "/_data_stream/"+h.stream, nil) })
	h.agg = harness.ESAggregatorConfig{Listen: harness.FreePort(t), HTTP: harness.FreePort(t), URL: h.es.URL,
		BufferDir: filepath.Join(h.root, "buffer"), SinkBuffer: "disk"}
	h.agg.Write(t, filepath.Join(h.root, "aggregator.yaml"))
	return h
}

// TestHAProxyToElasticsearch runs a real HAProxy in front of a tiny
// backend, logging one frontend to the agent's syslog input over UDP and
// another over TCP (HAProxy's newline framing), and a third syslog input
// fed by a client of the test's own with octet counting, and a file input
// with the same parser on lines as rsyslog writes them. Every request is
// in Elasticsearch once, in logs-haproxy.log-<environment>, with the
// parsed fields as JSON numbers and strings and the template's types; a
// line that does not parse is kept whole, flagged unparsed, with the
// reason. The aggregator's GeoIP stage places each client the PROXY
// protocol claims (source.geo.country_iso_code, source.geo.location
// mapped as geo_point, source.as where the ASN database knows the
// address), and a geo_bounding_box around Great Britain finds exactly the
// requests from 81.2.69.142.
func TestHAProxyToElasticsearch(t *testing.T) {
	h := newHAPRun(t, "hap")
	es, root, node, run, env, stream, o := h.es, h.root, h.node, h.run, h.env, h.stream, h.agg
	// The aggregator's GeoIP stage on the clients' addresses.
	dbs := harness.GeoIPDatabases(t, root)
	t.Logf("MaxMind's test databases: %v", dbs.MaxMind)
	harness.WriteFile(t, filepath.Join(root, "aggregator.yaml"), o.YAML()+dbs.YAML())
	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))

	udp, tcp, oct := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	agentHTTP := harness.FreePort(t)
	// The same parser on a file as rsyslog writes it (type: file).
	feFile := "fe_file_" + run
	fileLog := filepath.Join(root, "haproxy.log")
	ad := time.Now().Format("02/Jan/2006:15:04:05.000")
	harness.WriteFile(t, fileLog, fmt.Sprintf(
		"Nov 30 11:25:44 lb1 haproxy[13509]: 81.2.69.142:45001 [%s] %s be_app/app1 0/0/0/2/2 200 128 - - ---- 1/1/0/0/0 0/0 \"GET /file HTTP/1.1\"\n"+
			"Nov 30 11:25:44 lb1 haproxy[13509]: 2001:218:::45002 [%s] %s be_app/app1 0/0/0/2/2 502 128 - - ---- 1/1/0/0/0 0/0 \"GET /file2 HTTP/1.1\"\n", ad, feFile, ad, feFile))
	harness.WriteFile(t, filepath.Join(root, "agent.yaml"), hapAgentYAML(node, filepath.Join(root, "state"), agentHTTP, o.Listen,
		hapInput("hap-udp", "udp://"+udp, env)+hapInput("hap-tcp", "tcp://"+tcp, env)+hapInput("hap-oct", "tcp://"+oct, env)+
			fmt.Sprintf("  - {name: hap-file, type: file, paths: [%q], parser: haproxy, dataset: haproxy.log, environment: %s}\n", fileLog, env)))
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agg, agent)
	harness.WaitHealthy(t, "the aggregator", o.HTTP)
	harness.WaitHealthy(t, "the agent", agentHTTP)

	feUDP, feTCP := "fe_udp_"+run, "fe_tcp_"+run
	bindUDP, bindTCP := harness.FreePort(t), harness.FreePort(t)
	hap := harness.StartHAProxy(t, root, hapConfig(harness.StartBackend(t), harness.FreePort(t),
		hapFrontend(feUDP, bindUDP, udp), hapFrontend(feTCP, bindTCP, "tcp@"+tcp)))
	harness.WaitListening(t, bindUDP, 10*time.Second)
	harness.WaitListening(t, bindTCP, 10*time.Second)
	_ = hap

	fronts := []struct {
		name, bind, input string
		reqs              []hapRequest
	}{
		{feUDP, bindUDP, "hap-udp", hapRequests(41000)},
		{feTCP, bindTCP, "hap-tcp", hapRequests(42000)},
	}
	for _, f := range fronts {
		for _, r := range f.reqs {
			status, err := r.Do(f.bind)
			if err != nil || status != r.status {
				t.Fatalf("%s %s via %s: status %d, %v; want %d", r.Method, r.Target, f.name, status, err, r.status)
			}
		}
	}

	// Octet counting, from a client of the test's own: HAProxy lines as
	// rsyslog would forward them (RFC 5424), and one that is no HAProxy
	// line at all.
	feOct := "fe_oct_" + run
	sc, err := harness.DialSyslogOctets(oct)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	now := time.Now()
	acceptDate := now.Format("02/Jan/2006:15:04:05.000")
	octLines := []string{
		fmt.Sprintf(`<134>1 %s lb1 haproxy 4242 - - 81.2.69.142:43001 [%s] %s be_app/app1 0/0/1/12/13 200 5120 - - ---- 3/2/1/1/0 0/0 "GET /oct?q=1 HTTP/1.1"`, now.Format(time.RFC3339Nano), acceptDate, feOct),
		fmt.Sprintf(`<134>1 %s lb1 haproxy 4242 - - 216.160.83.56:43002 [%s] %s be_tcp/app1 1/0/40 129 -- 1/1/0/0/0 0/0`, now.Format(time.RFC3339Nano), acceptDate, feOct),
	}
	garbage := "this is no haproxy line " + run
	for _, l := range append(octLines, "<134>1 "+now.Format(time.RFC3339Nano)+" lb1 haproxy 4242 - - "+garbage) {
		if err := sc.Send(l); err != nil {
			t.Fatal(err)
		}
	}

	waitStreamCount(t, es, stream, "haproxy.frontend_name", feUDP, len(fronts[0].reqs), 60*time.Second)
	waitStreamCount(t, es, stream, "haproxy.frontend_name", feTCP, len(fronts[1].reqs), 30*time.Second)
	waitStreamCount(t, es, stream, "haproxy.frontend_name", feOct, 2, 30*time.Second)
	waitStreamCount(t, es, stream, "ferry.input", "hap-oct", len(octLines)+1, 30*time.Second)
	waitStreamCount(t, es, stream, "haproxy.frontend_name", feFile, 2, 30*time.Second)
	fileDocs := hapDocs(t, es, stream, "haproxy.frontend_name", feFile)
	for port, want := range map[int]map[string]any{
		45001: {"source.ip": "81.2.69.142", "http.response.status_code": float64(200), "event.outcome": "success"},
		45002: {"source.ip": "2001:218::", "http.response.status_code": float64(502), "event.outcome": "failure"},
	} {
		ds := fileDocs[port]
		if len(ds) != 1 {
			t.Errorf("file line from port %d: %d documents, want 1", port, len(ds))
			continue
		}
		want["log.file.path"], want["service.environment"], want["ferry.input"] = fileLog, env, "hap-file"
		for k, v := range want {
			if got := sourceField(ds[0], k); got != v {
				t.Errorf("file line from port %d: %s = %#v, want %#v", port, k, got, v)
			}
		}
		checkHAPGeo(t, fmt.Sprintf("file line from port %d", port), ds[0], want["source.ip"].(string))
	}
	// What the box around Great Britain must find: the documents of every
	// request from 81.2.69.142, by frontend and source port.
	gb := map[string]bool{feFile + " 45001": true, feOct + " 43001": true}
	for _, f := range fronts {
		for _, r := range f.reqs {
			if r.SrcIP == "81.2.69.142" {
				gb[fmt.Sprintf("%s %d", f.name, r.SrcPort)] = true
			}
		}
	}

	for _, f := range fronts {
		docs := hapDocs(t, es, stream, "haproxy.frontend_name", f.name)
		for _, r := range f.reqs {
			ds := docs[r.SrcPort]
			if len(ds) != 1 {
				t.Errorf("%s %s via %s: %d documents, want 1", r.Method, r.Target, f.name, len(ds))
				continue
			}
			d := ds[0]
			if r.SrcPort == 41001 {
				b, _ := json.Marshal(d)
				t.Logf("document of %s %s: %s", r.Method, r.Target, b)
			}
			path, query, _ := strings.Cut(r.Target, "?")
			want := map[string]any{
				"source.ip": r.SrcIP, "source.port": float64(r.SrcPort), "http.request.method": r.Method,
				"url.original": r.Target, "url.path": path, "http.version": "1.1",
				"http.response.status_code": float64(r.status), "haproxy.frontend_name": f.name,
				"service.environment": env, "data_stream.namespace": env, "data_stream.dataset": "haproxy.log",
				"ferry.input": f.input, "haproxy.termination_state": "----", "event.outcome": "success",
				"haproxy.http.request.captured_headers": "example.test|ferry-e2e",
			}
			if query != "" {
				want["url.query"] = query
			}
			if r.status == 503 {
				want["event.outcome"], want["haproxy.backend_name"], want["haproxy.termination_state"] = "failure", "be_dead", "SC--"
			} else {
				want["haproxy.backend_name"], want["haproxy.server_name"] = "be_app", "app1"
			}
			for k, v := range want {
				if got := sourceField(d, k); got != v {
					t.Errorf("%s %s via %s: %s = %#v, want %#v", r.Method, r.Target, f.name, k, got, v)
				}
			}
			checkHAPGeo(t, fmt.Sprintf("%s %s via %s from %s", r.Method, r.Target, f.name, r.SrcIP), d, r.SrcIP)
			// Numbers are JSON numbers; a timer that did not run is absent.
			for _, k := range []string{"http.response.bytes", "event.duration", "haproxy.timers.TR", "haproxy.timers.Ta", "haproxy.connections.active", "haproxy.queue.backend"} {
				if _, ok := sourceField(d, k).(float64); !ok {
					t.Errorf("%s %s: %s = %#v, want a JSON number", r.Method, r.Target, k, sourceField(d, k))
				}
			}
			if r.status == 503 && sourceField(d, "haproxy.timers.Tr") != nil {
				t.Errorf("503 from a dead backend: haproxy.timers.Tr = %v, want absent (HAProxy wrote -1)", sourceField(d, "haproxy.timers.Tr"))
			}
			if strings.HasSuffix(path, "/slow") {
				if tr, _ := sourceField(d, "haproxy.timers.Tr").(float64); tr < 300 {
					t.Errorf("slow response: haproxy.timers.Tr = %v ms, want at least 300", sourceField(d, "haproxy.timers.Tr"))
				}
				if dur, _ := sourceField(d, "event.duration").(float64); dur < 300e6 {
					t.Errorf("slow response: event.duration = %v ns, want at least 300 ms", sourceField(d, "event.duration"))
				}
			}
			ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(d["@timestamp"]))
			if err != nil || ts.Before(now.Add(-time.Minute)) || ts.After(time.Now().Add(time.Minute)) || ts.Nanosecond()%int(time.Millisecond) != 0 {
				t.Errorf("@timestamp %v (%v): want the accept date, with milliseconds", d["@timestamp"], err)
			}
		}
	}

	octDocs := hapDocs(t, es, stream, "haproxy.frontend_name", feOct)
	if d := octDocs[43001]; len(d) != 1 || sourceField(d[0], "http.response.bytes") != float64(5120) || sourceField(d[0], "event.duration") != float64(13e6) ||
		sourceField(d[0], "message") != octLines[0][strings.Index(octLines[0], "81.2.69.142"):] {
		t.Errorf("octet-counted httplog line: %v", d)
	}
	if d := octDocs[43002]; len(d) != 1 || sourceField(d[0], "haproxy.timers.Tt") != float64(40) || sourceField(d[0], "haproxy.bytes_read") != float64(129) ||
		sourceField(d[0], "http.response.status_code") != nil {
		t.Errorf("octet-counted tcplog line: %v", d)
	}
	for port, ip := range map[int]string{43001: "81.2.69.142", 43002: "216.160.83.56"} {
		if d := octDocs[port]; len(d) == 1 {
			checkHAPGeo(t, fmt.Sprintf("octet-counted line from port %d", port), d[0], ip)
		}
	}
	var bad struct {
		Hits struct {
			Hits []struct {
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	es.Must(http.MethodPost, "/"+stream+"/_search", map[string]any{"query": harness.TermQuery("ferry.input", "hap-oct"), "size": 10}, &bad)
	found := false
	for _, h := range bad.Hits.Hits {
		if h.Source["message"] != garbage {
			continue
		}
		found = true
		flags, _ := json.Marshal(sourceField(h.Source, "ferry.flags"))
		if !strings.Contains(string(flags), "unparsed") || sourceField(h.Source, "error.message") == nil || sourceField(h.Source, "source.ip") != nil ||
			sourceField(h.Source, "source.geo") != nil {
			t.Errorf("unparsed line: %v", h.Source)
		}
	}
	if !found {
		t.Error("the line that is no HAProxy line is not in Elasticsearch")
	}

	// The template types every field.
	var mapping map[string]struct {
		Mappings map[string]any `json:"mappings"`
	}
	es.Must(http.MethodGet, "/"+stream+"/_mapping", nil, &mapping)
	for idx, m := range mapping {
		for field, want := range map[string]string{
			"source.ip": "ip", "source.port": "long", "http.response.status_code": "long", "http.response.bytes": "long",
			"event.duration": "long", "haproxy.timers.Tr": "long", "haproxy.timers.Tt": "long", "haproxy.connections.active": "long",
			"url.original": "keyword", "haproxy.termination_state": "keyword", "http.request.method": "keyword",
			"source.geo.location": "geo_point", "source.geo.country_iso_code": "keyword", "source.as.number": "long",
		} {
			at := m.Mappings
			for _, p := range strings.Split(field, ".") {
				props, _ := at["properties"].(map[string]any)
				at, _ = props[p].(map[string]any)
			}
			if at["type"] != want {
				t.Errorf("%s: %s mapped as %v, want %s", idx, field, at["type"], want)
			}
		}
	}

	// A box around Great Britain finds exactly the requests from
	// 81.2.69.142.
	var box struct {
		Hits struct {
			Total struct {
				Value int `json:"value"`
			} `json:"total"`
			Hits []struct {
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	es.Must(http.MethodPost, "/"+stream+"/_search", map[string]any{"size": 1000, "track_total_hits": true,
		"query": harness.GreatBritainBox("source.geo.location")}, &box)
	inBox := map[string]bool{}
	for _, h := range box.Hits.Hits {
		port, _ := sourceField(h.Source, "source.port").(float64)
		inBox[fmt.Sprintf("%v %d", sourceField(h.Source, "haproxy.frontend_name"), int(port))] = true
	}
	if box.Hits.Total.Value != len(gb) || len(inBox) != len(gb) {
		t.Errorf("the box around Great Britain found %d documents %v, want the %d requests from 81.2.69.142 %v", box.Hits.Total.Value, inBox, len(gb), gb)
	}
	for k := range gb {
		if !inBox[k] {
			t.Errorf("the box around Great Britain missed the request %s", k)
		}
	}
	if n, err := harness.Stat(o.HTTP, "ferry_aggregator_geoip_lookup_errors_total"); err != nil || n != 0 {
		t.Errorf("GeoIP lookup errors: %d, %v; want 0", n, err)
	}
}

// hapGeo is what the test GeoIP databases say of the clients the HAProxy
// tests claim (see geoipdb.Places and geoipdb.ASNs): the country, and the
// AS number where the ASN database knows the address (0: it does not).
var hapGeo = map[string]struct {
	iso string
	asn float64
}{
	"81.2.69.142":   {"GB", 0},
	"216.160.83.56": {"US", 209},
	"2001:218::":    {"JP", 0},
}

// checkHAPGeo checks the GeoIP fields of document d of a request from ip:
// source.geo.country_iso_code, a location with lat and lon, and
// source.as.number exactly where the ASN database knows ip.
func checkHAPGeo(t *testing.T, what string, d map[string]any, ip string) {
	t.Helper()
	w, ok := hapGeo[ip]
	if !ok {
		t.Fatalf("%s: no GeoIP answer known for %s", what, ip)
	}
	if got := sourceField(d, "source.geo.country_iso_code"); got != w.iso {
		t.Errorf("%s: source.geo.country_iso_code = %#v, want %s", what, got, w.iso)
	}
	if loc, _ := sourceField(d, "source.geo.location").(map[string]any); loc["lat"] == nil || loc["lon"] == nil {
		t.Errorf("%s: source.geo.location = %#v, want lat and lon", what, sourceField(d, "source.geo.location"))
	}
	if w.asn == 0 {
		if as := sourceField(d, "source.as"); as != nil {
			t.Errorf("%s: source.as = %#v, want none (the ASN database does not know %s)", what, as, ip)
		}
	} else if got := sourceField(d, "source.as.number"); got != w.asn {
		t.Errorf("%s: source.as.number = %#v, want %v", what, got, w.asn)
	}
}

// TestHAProxyTCPAgentRestartAggregatorDown: HAProxy logs over TCP to the
// agent while the aggregator is down; the agent is stopped (SIGTERM) and
// killed (SIGKILL) in between. Everything the agent received reaches
// Elasticsearch once the aggregator is up, each request once.
func TestHAProxyTCPAgentRestartAggregatorDown(t *testing.T) {
	h := newHAPRun(t, "hapr")
	es, root, node, run, env, stream, o := h.es, h.root, h.node, h.run, h.env, h.stream, h.agg

	tcp, agentHTTP := harness.FreePort(t), harness.FreePort(t)
	harness.WriteFile(t, filepath.Join(root, "agent.yaml"), hapAgentYAML(node, filepath.Join(root, "state"), agentHTTP, o.Listen,
		hapInput("hap-tcp", "tcp://"+tcp, env)))
	agent := harness.StartProc(t, root, "agent", "--config", filepath.Join(root, "agent.yaml"))
	harness.LogTailsOnFailure(t, agent)
	harness.WaitHealthy(t, "the agent", agentHTTP)

	fe, bind := "fe_r_"+run, harness.FreePort(t)
	harness.StartHAProxy(t, root, hapConfig(harness.StartBackend(t), harness.FreePort(t), hapFrontend(fe, bind, "tcp@"+tcp)))
	harness.WaitListening(t, bind, 10*time.Second)

	received := func() uint64 {
		n, _ := harness.Stat(agentHTTP, "ferry_agent_syslog_received_total")
		return n
	}
	// WaitListening's probe connection closed without a PROXY header, and
	// HAProxy logs that: its line must be in before send counts, or it
	// stands in for the last request's line, which the agent stopped below
	// may then never read (syslog over TCP has no acknowledgement).
	harness.WaitFor(t, 10*time.Second, "the agent receiving the listening probe's log line", func() bool { return received() >= 1 })
	// send makes n requests and waits until the (running) agent received
	// their log lines.
	port := 44000
	sent := 0
	send := func(n int) {
		t.Helper()
		before := received()
		for range n {
			port++
			r := harness.ProxiedRequest{SrcIP: "81.2.69.142", SrcPort: port, Method: "GET", Target: fmt.Sprintf("/r/%d", port)}
			if status, err := r.Do(bind); err != nil || status != 200 {
				t.Fatalf("request %d: %d %v", port, status, err)
			}
		}
		sent += n
		harness.WaitFor(t, 30*time.Second, "the agent receiving the lines", func() bool { return received() >= before+uint64(n) })
	}

	// reconnected waits until HAProxy's log connection reaches the
	// restarted agent: the lines HAProxy writes before it notices that
	// the old connection is gone are lost (syslog over TCP has no
	// acknowledgement), so probe connections, whose lines carry no
	// frontend fields (not counted below), are made until one arrives.
	reconnected := func() {
		t.Helper()
		before := received()
		if !harness.Poll(30*time.Second, 250*time.Millisecond, func() bool {
			if received() > before {
				return true
			}
			harness.WaitListening(t, bind, 5*time.Second)
			return false
		}) {
			t.Fatal("timed out after 30s waiting for HAProxy's log connection to the restarted agent")
		}
	}

	send(20)
	// The aggregator is down: the agent stops after its shutdown timeout
	// with the lines unacknowledged, and exits 1 saying so.
	if err := agent.Term(10 * time.Second); err != nil && !strings.Contains(err.Error(), "exit status 1") {
		t.Fatal(err)
	}
	agent.Start()
	harness.WaitHealthy(t, "the agent", agentHTTP)
	// HAProxy reconnects to the new agent on its own.
	reconnected()
	send(20)
	agent.Kill9()
	agent.Start()
	harness.WaitHealthy(t, "the agent", agentHTTP)
	reconnected()
	send(10)

	agg := harness.StartProc(t, root, "aggregator", "--config", filepath.Join(root, "aggregator.yaml"))
	harness.LogTailsOnFailure(t, agg)
	t.Cleanup(func() {
		if t.Failed() { // what each side counted, to tell a batch not sent from one not acked
			for name, addr := range map[string]string{"agent": agentHTTP, "aggregator": o.HTTP} {
				if b, err := harness.HTTPGet(addr, "/stats"); err == nil {
					var nonZero []string
					for _, l := range strings.Split(string(b), "\n") {
						if l != "" && !strings.HasSuffix(l, " 0") {
							nonZero = append(nonZero, l)
						}
					}
					t.Logf("%s /stats (non-zero):\n%s", name, strings.Join(nonZero, "\n"))
				}
			}
		}
	})
	waitStreamCount(t, es, stream, "haproxy.frontend_name", fe, sent, 60*time.Second)
	docs := hapDocs(t, es, stream, "haproxy.frontend_name", fe)
	for p := 44001; p <= port; p++ {
		if len(docs[p]) != 1 {
			t.Errorf("request from port %d: %d documents, want 1", p, len(docs[p]))
		}
	}
}
