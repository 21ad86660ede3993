package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/test/geoipdb"
	"github.com/ferrylogs/ferry/test/harness"
)

// TestGeoIP sends batches of events carrying source.ip as a typed field
// (what the HAProxy parser writes) over gRPC to the real aggregator with
// enrich.geoip and the Elasticsearch sink, and checks in the real
// Elasticsearch: source.geo.country_iso_code (and the rest) of public
// addresses, no source.geo or source.as for private, loopback and
// link-local ones, source.as only where the ASN database knows the
// address; the mapping (geo_point, long, keyword) of both the HAProxy data
// streams and plain files; a geo_bounding_box around Great Britain that
// finds exactly the GB events; the cache counters; and, after the City
// database is renamed over by one placing 81.2.69.142 in France, the new
// answer without a restart. MaxMind's test databases are used when they
// are beside the checkout, else ones built with mmdbwriter.
func TestGeoIP(t *testing.T) {
	es := harness.NewESClient(t, harness.ESURL(t))
	root := t.TempDir()
	node := harness.UniqueNode(t, "geoip")
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	haproxyStream, fileStream := "logs-haproxy.log-geo"+run, "logs-file-geo"+run
	t.Cleanup(func() {
		for _, s := range []string{haproxyStream, fileStream} {
			_, _, _ = es.Call(http.MethodDelete, "/_data_stream/"+s, nil)
		}
	})
	dbs := harness.GeoIPDatabases(t, root)
	t.Logf("MaxMind's test databases: %v", dbs.MaxMind)

	o := harness.ESAggregatorConfig{Listen: harness.FreePort(t), HTTP: harness.FreePort(t), URL: es.URL,
		BufferDir: filepath.Join(root, "buffer"), SinkBuffer: "disk"}
	path := filepath.Join(root, "aggregator.yaml")
	harness.WriteFile(t, path, o.YAML()+dbs.YAML())
	agg := harness.StartProc(t, root, "aggregator", "--config", path)
	harness.LogTailsOnFailure(t, agg)
	harness.WaitHealthy(t, "the aggregator", o.HTTP)

	type want struct {
		ip, iso, city string
		asn           float64 // 0: no source.as
	}
	wants := []want{
		{"81.2.69.142", "GB", "London", 0},
		{"81.2.69.143", "GB", "London", 0},
		{"81.2.69.142", "GB", "London", 0}, // a cache hit
		{"216.160.83.56", "US", "Milton", 209},
		{"89.160.20.115", "SE", "Linköping", 29518},
		{"2001:218::1", "JP", "", 0},
		{"10.1.2.3", "", "", 0},
		{"192.168.0.7", "", "", 0},
		{"127.0.0.1", "", "", 0},
		{"fe80::1", "", "", 0},
		// An invalid address is covered by enrich's unit tests: source.ip
		// is mapped as ip, so Elasticsearch refuses such a document.
	}
	conn, err := grpc.NewClient(o.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := ferryv1.NewIngestClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(seq uint64, prefix string, ws []want) {
		t.Helper()
		b := &ferryv1.Batch{Seq: seq, Node: node}
		for i, w := range ws {
			for _, ds := range []string{"haproxy.log", ""} { // the HAProxy data stream and a plain file's
				fields := map[string]*ferryv1.Value{"source.ip": event.Str(w.ip), "data_stream.namespace": event.Str("geo" + run)}
				if ds != "" {
					fields["data_stream.dataset"] = event.Str(ds)
				}
				off := int64(len(b.Events)) * 100
				b.Events = append(b.Events, &ferryv1.Event{
					Id:           event.ID(nil, node, prefix, off),
					TimeUnixNano: time.Now().UnixNano(),
					Message:      fmt.Appendf(nil, "%s %d %s", prefix, i, w.ip),
					Source:       &ferryv1.Source{Path: "/var/log/haproxy.log", Offset: off, Input: "file-0", FileId: prefix},
					Fields:       fields,
					Kind:         ferryv1.Kind_KIND_LOG,
				})
			}
		}
		if err := stream.Send(b); err != nil {
			t.Fatalf("send: %v", err)
		}
		ack, err := stream.Recv()
		if err != nil || ack.GetCode() != ferryv1.Ack_CODE_OK {
			t.Fatalf("ack %v, %v", ack, err)
		}
	}
	send(1, "first", wants)
	total := 2 * len(wants)
	harness.WaitFor(t, time.Minute, "every event in logs-*", func() bool { return es.NodeCount("logs-*", node) == total })

	type hit struct {
		Index  string         `json:"_index"`
		Source map[string]any `json:"_source"`
	}
	search := func(query map[string]any) []hit {
		t.Helper()
		var res struct {
			Hits struct {
				Hits []hit `json:"hits"`
			} `json:"hits"`
		}
		es.Must(http.MethodPost, "/logs-*/_search", map[string]any{"size": 1000, "query": query}, &res)
		return res.Hits.Hits
	}
	byNode := harness.TermQuery("host.name", node)
	docs := search(map[string]any{"bool": map[string]any{"filter": []any{byNode, harness.TermQuery("message", "first")}}})
	if len(docs) != total {
		t.Fatalf("%d documents, want %d", len(docs), total)
	}
	gb := map[string]bool{}
	for _, h := range docs {
		if !strings.HasPrefix(h.Index, ".ds-"+haproxyStream+"-") && !strings.HasPrefix(h.Index, ".ds-"+fileStream+"-") {
			t.Errorf("document in %s", h.Index)
		}
		msg, _ := h.Source["message"].(string)
		var i int
		fmt.Sscanf(msg, "first %d", &i)
		w := wants[i]
		geo, _ := h.Source["source.geo"].(map[string]any)
		as, _ := h.Source["source.as"].(map[string]any)
		if w.iso == "" {
			if h.Source["source.geo"] != nil || h.Source["source.as"] != nil {
				t.Errorf("%s: geo %v, as %v; want neither", w.ip, h.Source["source.geo"], h.Source["source.as"])
			}
			continue
		}
		if geo["country_iso_code"] != w.iso || fmt.Sprint(geo["city_name"]) != fmt.Sprint(map[bool]any{true: w.city, false: nil}[w.city != ""]) {
			t.Errorf("%s: source.geo %v, want %s %s", w.ip, geo, w.iso, w.city)
		}
		if loc, _ := geo["location"].(map[string]any); loc["lat"] == nil || loc["lon"] == nil {
			t.Errorf("%s: no location in %v", w.ip, geo)
		}
		if w.asn == 0 && as != nil || w.asn != 0 && as["number"] != w.asn {
			t.Errorf("%s: source.as %v, want number %v", w.ip, as, w.asn)
		}
		if w.iso == "GB" {
			gb[msg+" "+h.Index] = true
		}
	}
	if len(gb) != 6 {
		t.Errorf("%d GB documents, want 6", len(gb))
	}

	// Mapped by Ferry's templates, not dynamically.
	for _, s := range []string{haproxyStream, fileStream} {
		var m map[string]struct {
			Mappings map[string]struct {
				Mapping map[string]struct {
					Type string `json:"type"`
				} `json:"mapping"`
			} `json:"mappings"`
		}
		types := map[string]string{"source.geo.location": "geo_point", "source.as.number": "long", "source.geo.country_iso_code": "keyword",
			"source.geo.city_name": "keyword", "source.as.organization.name": "keyword", "source.ip": "ip"}
		var names []string
		for f := range types {
			names = append(names, f)
		}
		es.Must(http.MethodGet, "/"+s+"/_mapping/field/"+strings.Join(names, ","), nil, &m)
		if len(m) == 0 {
			t.Fatalf("no backing index of %s", s)
		}
		for index, im := range m {
			for f, typ := range types {
				if got := im.Mappings[f].Mapping[f[strings.LastIndex(f, ".")+1:]].Type; got != typ {
					t.Errorf("%s: %s mapped as %q, want %s", index, f, got, typ)
				}
			}
		}
	}

	// A box around Great Britain finds exactly the GB events.
	inBox := search(map[string]any{"bool": map[string]any{"filter": []any{byNode, harness.GreatBritainBox("source.geo.location")}}})
	got := map[string]bool{}
	for _, h := range inBox {
		got[h.Source["message"].(string)+" "+h.Index] = true
	}
	if len(got) != len(gb) || len(inBox) != len(gb) {
		t.Errorf("the box around Great Britain found %d documents %v, want the %d GB ones %v", len(inBox), got, len(gb), gb)
	}
	for k := range gb {
		if !got[k] {
			t.Errorf("the box missed %s", k)
		}
	}

	for name, least := range map[string]uint64{
		"ferry_aggregator_geoip_cache_misses_total": 5, "ferry_aggregator_geoip_cache_hits_total": 7, // 5 public addresses, 12 public events "ferry_aggregator_geoip_skipped_total": 8,
	} {
		if n, err := harness.Stat(o.HTTP, name); err != nil || n < least {
			t.Errorf("%s = %d, %v; want at least %d", name, n, err, least)
		}
	}
	if n, err := harness.Stat(o.HTTP, "ferry_aggregator_geoip_lookup_errors_total"); err != nil || n != 0 {
		t.Errorf("lookup errors %d, %v", n, err)
	}

	// The City database renamed over (as geoipupdate does): new answers, no
	// restart.
	france := []geoipdb.Place{{Network: "81.2.69.0/24", ISO: "FR", Country: "France", City: "Paris", Continent: "Europe", Lat: 48.86, Lon: 2.35}}
	if err := geoipdb.WriteCity(dbs.City, france); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 30*time.Second, "the replaced database to be loaded", func() bool {
		n, err := harness.Stat(o.HTTP, "ferry_aggregator_geoip_reloads_total")
		return err == nil && n == 1
	})
	send(2, "second", wants[:1])
	harness.WaitFor(t, time.Minute, "the events after the swap", func() bool { return es.NodeCount("logs-*", node) == total+2 })
	for _, h := range search(map[string]any{"bool": map[string]any{"filter": []any{byNode, harness.TermQuery("message", "second")}}}) {
		if geo, _ := h.Source["source.geo"].(map[string]any); geo["country_iso_code"] != "FR" || geo["city_name"] != "Paris" {
			t.Errorf("after the swap: source.geo %v, want FR Paris", geo)
		}
	}
	_ = stream.CloseSend()
	harness.StopAll(t, 30*time.Second, agg)
}

// TestGeoIPStartupErrors: a missing or corrupt database fails the start,
// naming the configuration key and the file; `validate` (which may run on
// another host than the aggregator) warns about a missing one and passes.
func TestGeoIPStartupErrors(t *testing.T) {
	root := t.TempDir()
	bad := filepath.Join(root, "GeoLite2-City.mmdb")
	harness.WriteFile(t, bad, "not a database")
	missing := filepath.Join(root, "GeoLite2-ASN.mmdb")
	for _, c := range []struct {
		cmd, db, want string
		ok            bool
	}{
		{"validate", "asn_db: " + missing, "warning: " + root + "/aggregator.yaml:6:5: enrich.geoip.asn_db: stat " + missing + ": no such file or directory (not on this machine", true},
		{"", "asn_db: " + missing, "enrich.geoip.asn_db: stat " + missing + ": no such file or directory", false},
		{"", "city_db: " + bad, "enrich.geoip.city_db: " + bad + ": not a MaxMind database", false},
	} {
		path := filepath.Join(root, "aggregator.yaml")
		harness.WriteFile(t, path, fmt.Sprintf("listen: %s\nhttp: %s\nsinks: [{type: stdout}]\nenrich:\n  geoip:\n    %s\n", harness.FreePort(t), harness.FreePort(t), c.db))
		args := []string{"--config", path}
		if c.cmd != "" {
			args = append([]string{c.cmd}, args...)
		}
		cmd := exec.Command(filepath.Join(harness.BinDir(t), "aggregator"), args...)
		cmd.Dir = root
		done := make(chan struct{})
		var out []byte
		go func() { out, _ = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%v: still running: %s", args, out)
		}
		if (cmd.ProcessState.ExitCode() == 0) != c.ok || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: exit %d, output %s; want success %v saying %s", args, cmd.ProcessState.ExitCode(), out, c.ok, c.want)
		}
	}
}
