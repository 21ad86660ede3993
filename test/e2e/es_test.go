package e2e

// End-to-end tests of the Elasticsearch path: the real agent and aggregator
// binaries and a real Elasticsearch (FERRY_ES_URL, or one started with
// test/elasticsearch.sh). Data streams cannot be deleted on the test
// distribution, so every test uses its own agent node name and counts its
// documents by host.name.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/test/harness"
)

const (
	containerStream = "logs-kubernetes.container-default"
	// containerStreams are the container data streams of every environment:
	// the harness's pods are in namespaces dev, staging and prod, which the
	// default environment rules route to -dev, -staging and -prod.
	containerStreams = "logs-kubernetes.container-*"
)

// TestESHundredThousand ships 100,000 CRI lines (every 7th split into P+F)
// from 10 container log files through agent and aggregator into
// Elasticsearch and checks that every line is there exactly once, under its
// event id, in the data streams logs-kubernetes.container-<environment>,
// whose backing indices map @timestamp as date_nanos and source.geo.location
// as geo_point (Ferry's template, not dynamic mapping).
func TestESHundredThousand(t *testing.T) {
	const files, perFile = 10, 10_000
	const total = files * perFile
	es, root, node := sharedESNode(t, files, perFile)

	start := time.Now()
	f := startFerry(t, root, node, harness.ESAggregatorConfig{URL: es.URL, SinkBuffer: "disk"}, "") // the default buffer of an Elasticsearch sink
	f.waitAcked(t, total, 3*time.Minute)
	acked := time.Since(start)
	es.WaitNodeCount(node, total, time.Minute)
	t.Logf("%d lines acknowledged after %s (%.0f events/s), all searchable after %s",
		total, acked.Round(time.Millisecond), total/acked.Seconds(), time.Since(start).Round(time.Millisecond))

	if n := es.NodeCount(containerStreams, node); n != total {
		t.Errorf("%s holds %d documents of node %s, want %d", containerStreams, n, node, total)
	}
	checkLines(t, es.NodeDocs("logs-*", node), files, perFile)

	// The mapping comes from Ferry's template in every backing index.
	var m map[string]struct {
		Mappings map[string]struct {
			Mapping map[string]struct {
				Type string `json:"type"`
			} `json:"mapping"`
		} `json:"mappings"`
	}
	es.Must(http.MethodGet, "/"+containerStreams+"/_mapping/field/source.geo.location,@timestamp", nil, &m)
	if len(m) == 0 {
		t.Fatalf("no backing index for %s", containerStreams)
	}
	for index, im := range m {
		if !strings.HasPrefix(index, ".ds-logs-kubernetes.container-") {
			t.Errorf("%s is backed by %s, not by a data stream backing index", containerStreams, index)
		}
		for field, want := range map[string]string{"source.geo.location": "geo_point", "@timestamp": "date_nanos"} {
			leaf := field[strings.LastIndex(field, ".")+1:]
			if got := im.Mappings[field].Mapping[leaf].Type; got != want {
				t.Errorf("%s: %s is mapped as %q, want %q", index, field, got, want)
			}
		}
	}
	f.stop(t)
}

// TestESResendIsIdempotent ships a file, then stops the agent, deletes its
// positions (so it reads and sends every line again, with the same event
// ids) and starts it again: once the agent has its re-send acknowledged, and
// the aggregator has written it to Elasticsearch a second time, the number
// of documents is unchanged.
func TestESResendIsIdempotent(t *testing.T) {
	const files, perFile = 2, 2500
	const total = files * perFile
	es, root, node := sharedESNode(t, files, perFile)

	f := startFerry(t, root, node, harness.ESAggregatorConfig{URL: es.URL}, "")
	f.waitAcked(t, total, 2*time.Minute)
	es.WaitNodeCount(node, total, time.Minute)
	if err := f.agent.Term(30 * time.Second); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v", err)
	}
	before, err := harness.AggregatorAcked(f.aggHTTP)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.stateDir, "positions.json")); err != nil {
		t.Fatalf("deleting the agent's positions: %v", err)
	}

	f.agent.Start() // a new process: its counters start at 0
	f.waitAcked(t, total, 2*time.Minute)
	after, err := harness.AggregatorAcked(f.aggHTTP)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < total {
		t.Fatalf("the aggregator acknowledged %d events after the restart, want the %d re-sent ones", after-before, total)
	}
	if n := es.NodeCount("logs-*", node); n != total {
		t.Fatalf("after a full re-send node %s has %d documents, want %d", node, n, total)
	}
	checkLines(t, es.NodeDocs("logs-*", node), files, perFile)
	f.stop(t)
}

// TestESMappingConflictDeadLetter talks gRPC to the real aggregator: a batch
// sets http.response.status_code as an integer, the next batch of 10 sets it
// to "not-a-number" in one event. That event is refused by Elasticsearch
// (the field is a long) and goes to logs-ferry.deadletter-default with the
// error and the original document; the other 9 are indexed, and the batch is
// acknowledged OK. Sending the batch again changes nothing (ids, 409).
func TestESMappingConflictDeadLetter(t *testing.T) {
	const deadStream = "logs-ferry.deadletter-default"
	es := harness.NewESClient(t, harness.ESURL(t))
	root := t.TempDir()
	node := harness.UniqueNode(t, "e2e")
	agg, listen, _ := startAggregator(t, root, harness.ESAggregatorConfig{URL: es.URL})
	harness.LogTailsOnFailure(t, agg)

	conn, err := grpc.NewClient(listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stream, err := ferryv1.NewIngestClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(seq uint64, evs []*ferryv1.Event) {
		t.Helper()
		if err := stream.Send(&ferryv1.Batch{Seq: seq, Node: node, Events: evs}); err != nil {
			t.Fatalf("send batch %d: %v", seq, err)
		}
		ack, err := stream.Recv()
		if err != nil {
			t.Fatalf("ack of batch %d: %v", seq, err)
		}
		if ack.GetSeq() != seq || ack.GetCode() != ferryv1.Ack_CODE_OK {
			t.Fatalf("batch %d answered with %v", seq, ack)
		}
	}
	const fileID = "e2e-deadletter-file"
	mk := func(batch, i int, status *ferryv1.Value) *ferryv1.Event {
		off := int64(batch*10_000 + i*100)
		e := &ferryv1.Event{
			Id:           event.ID(nil, node, fileID, off),
			TimeUnixNano: time.Now().UnixNano(),
			Message:      fmt.Appendf(nil, "GET /orders node=%s batch=%d i=%d", node, batch, i),
			Stream:       ferryv1.StreamName_STREAM_STDOUT,
			Source:       &ferryv1.Source{Path: "/var/log/pods/dl_web-dl_uid-dl/app/0.log", Offset: off, Input: "container-0", FileId: fileID},
			Kubernetes:   &ferryv1.Kubernetes{Namespace: "dl", Pod: "web-dl", PodUid: "uid-dl", Container: "app", ContainerId: "containerd://dl"},
			Kind:         ferryv1.Kind_KIND_LOG,
		}
		event.SetField(e, "http.response.status_code", status)
		return e
	}

	var first, second []*ferryv1.Event
	for i := range 10 {
		first = append(first, mk(1, i, event.Int(200+int64(i))))
	}
	const bad = 4
	for i := range 10 {
		v := event.Int(500)
		if i == bad {
			v = event.Str("not-a-number")
		}
		second = append(second, mk(2, i, v))
	}
	send(1, first)
	if n := es.NodeCount(containerStream, node); n != 10 {
		t.Fatalf("after the first batch node %s has %d documents, want 10", node, n)
	}
	send(2, second)
	badID := event.IDString(second[bad].Id)
	checkDeadLetter := func(seq int) {
		t.Helper()
		if n := es.NodeCount(containerStream, node); n != 19 {
			t.Fatalf("node %s has %d documents in %s, want 10 + 9", node, n, containerStream)
		}
		for i, e := range second {
			want := 1
			if i == bad {
				want = 0
			}
			if n := es.Count(containerStream, harness.TermQuery("event.id", event.IDString(e.Id))); n != want {
				t.Errorf("event %d of the second batch: %d documents in %s, want %d", i, n, containerStream, want)
			}
		}
		es.Must(http.MethodPost, "/"+deadStream+"/_refresh", nil, nil)
		var res struct {
			Hits struct {
				Hits []struct {
					Source struct {
						Message string `json:"message"`
						Event   struct {
							ID       string `json:"id"`
							Original string `json:"original"`
						} `json:"event"`
						Error struct {
							Type   string `json:"type"`
							Reason string `json:"reason"`
						} `json:"error"`
						Ferry struct {
							OriginalIndex string `json:"original_index"`
						} `json:"ferry"`
					} `json:"_source"`
				} `json:"hits"`
			} `json:"hits"`
		}
		es.Must(http.MethodPost, "/"+deadStream+"/_search", map[string]any{"query": harness.TermQuery("event.id", badID)}, &res)
		if len(res.Hits.Hits) != 1 {
			t.Fatalf("%d dead-letter documents for event %s, want 1", len(res.Hits.Hits), badID)
		}
		d := res.Hits.Hits[0].Source
		if d.Error.Type == "" || !strings.Contains(d.Error.Reason, "http.response.status_code") {
			t.Errorf("dead-letter error = %+v, want a type and a reason naming the field", d.Error)
		}
		if !strings.Contains(d.Event.Original, string(second[bad].Message)) || !strings.Contains(d.Event.Original, "not-a-number") {
			t.Errorf("dead-letter event.original = %q, want the refused document", d.Event.Original)
		}
		if d.Ferry.OriginalIndex != containerStream {
			t.Errorf("dead-letter ferry.original_index = %q, want %q", d.Ferry.OriginalIndex, containerStream)
		}
		if seq == 2 {
			t.Logf("dead letter: %s: %s", d.Error.Type, d.Error.Reason)
		}
	}
	checkDeadLetter(2)
	send(3, second) // the same events again: 409 in both data streams
	checkDeadLetter(3)

	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	harness.StopAll(t, 30*time.Second, agg)
}

// TestESOutage writes 30,000 lines steadily over about 40 s into 10 files
// while Elasticsearch (a private instance: stopping the shared one would
// break other packages' tests) is stopped with SIGSTOP for 60 s, and later
// killed with SIGKILL and restarted on the same data directory while the
// agent catches up.
//
// What is guaranteed while Elasticsearch is stopped: the batches whose bulk
// answers arrived before the stop are acknowledged and committed a moment
// later; after that nothing: no bulk can succeed, so no batch is
// acknowledged and the agent's offsets (positions.json) and acked counter
// stay where they settled until SIGCONT. The stop outlasts the aggregator's
// write_timeout (20 s here) by 15 s, so every write in flight at SIGSTOP, or
// sent to the stopped Elasticsearch in the seconds after it, times out and
// is answered with a retry while Elasticsearch is still stopped: the
// positions are watched through that too. (A stop exactly as long as the
// timeout raced the first bulk request sent after SIGSTOP.) At the end every line is in Elasticsearch
// exactly once: what it acknowledged survived SIGKILL, and what was sent
// again was not duplicated.
func TestESOutage(t *testing.T) {
	const (
		files        = 10
		perFile      = 3000
		total        = files * perFile
		writeTime    = 40 * time.Second
		writeTimeout = 20 * time.Second
		stopFor      = writeTimeout + 15*time.Second
	)
	es := harness.StartPrivateES(t)
	esc := harness.NewESClient(t, es.URL)
	root := harness.NodeRoot(t)
	node := harness.UniqueNode(t, "e2e")
	pods := harness.NewPodFiles(t, root, files)
	// A slow pipeline, so that catching up after the stop takes long enough
	// to kill Elasticsearch in the middle of it.
	f := startFerry(t, root, node,
		harness.ESAggregatorConfig{URL: es.URL, FlushEvents: 1000, MaxConcurrentRequests: 1, WriteTimeout: writeTimeout.String()},
		"  batch_max_events: 500\n  max_inflight_batches: 4\n")

	var written atomic.Int64
	outage := make(chan outageReport, 1)
	go func() { outage <- runOutage(f, es, &written, total, stopFor) }()

	// The writer: 30 lines every 40 ms, round robin over the files.
	const perTick = 30
	tick := time.NewTicker(writeTime / (total / perTick))
	for n := 0; n < total; n += perTick {
		<-tick.C // pacing of the writer, not synchronisation
		for k := n; k < n+perTick; k++ {
			i := k % files
			pods[i].Write(t, i, pods[i].Written)
		}
		written.Store(int64(n + perTick))
	}
	tick.Stop()
	t.Logf("all %d lines written", total)

	var rep outageReport
	select {
	case rep = <-outage:
	case <-time.After(5 * time.Minute):
		t.Fatal("the outage sequence did not finish within 5 minutes")
	}
	for _, l := range rep.log {
		t.Log(l)
	}
	if rep.err != nil {
		t.Fatal(rep.err)
	}
	if rep.writtenAtStop >= total {
		t.Errorf("every line was written before Elasticsearch stopped (%d): the outage did not overlap the writing", rep.writtenAtStop)
	}
	if rep.settledAcked == 0 || rep.settledAcked >= total {
		t.Errorf("%d events acknowledged when Elasticsearch stopped: want some, not all", rep.settledAcked)
	}

	f.waitAcked(t, total, 3*time.Minute)
	esc.WaitNodeCount(node, total, time.Minute)
	checkLines(t, esc.NodeDocs("logs-*", node), files, perFile)
	if v, err := f.acked(); err != nil || v != total {
		t.Errorf("the agent acknowledged %d events (%v), want exactly %d", v, err, total)
	}
	if r, err := harness.Stat(f.aggHTTP, "ferry_aggregator_batches_retry_total"); err != nil || r == 0 {
		t.Errorf("the aggregator answered %d batches with retry (%v): the writes in flight at SIGSTOP should have timed out", r, err)
	} else {
		t.Logf("the aggregator answered %d batches with retry", r)
	}
	f.stop(t)
}

// outageReport is what runOutage saw; log lines are for the test log.
type outageReport struct {
	err           error
	log           []string
	writtenAtStop int64
	settledAcked  uint64
}

// runOutage stops Elasticsearch once the agent has some events acknowledged,
// checks that its acks and offsets stop moving and stay put for the whole
// stop, continues Elasticsearch, and kills and restarts it once the agent has
// caught up by a few thousand events. It runs beside the writer, so it
// reports instead of calling t.Fatal.
func runOutage(f *ferryProcs, es *harness.PrivateES, written *atomic.Int64, total int, stopFor time.Duration) (rep outageReport) {
	logf := func(format string, args ...any) { rep.log = append(rep.log, fmt.Sprintf(format, args...)) }
	fail := func(format string, args ...any) outageReport {
		rep.err = fmt.Errorf(format, args...)
		return rep
	}
	snapshot := func() (uint64, int64, error) {
		a, err := f.acked()
		if err != nil {
			return 0, 0, err
		}
		p, err := harness.PositionsSum(f.stateDir)
		return a, p, err
	}

	// Flowing: a fifth of the lines acknowledged.
	var acked uint64
	if !harness.Poll(2*time.Minute, 100*time.Millisecond, func() bool {
		acked, _ = f.acked()
		return acked >= uint64(total/5)
	}) {
		return fail("the agent never had %d events acknowledged (%d)", total/5, acked)
	}
	pid, err := es.PID()
	if err != nil {
		return fail("%v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fail("SIGSTOP %d: %v", pid, err)
	}
	stopped := time.Now()
	rep.writtenAtStop = written.Load()
	logf("Elasticsearch (pid %d) stopped with SIGSTOP: %d lines written, %d acknowledged", pid, rep.writtenAtStop, acked)

	// Settling: bulk answers already on their way are acknowledged and
	// committed, and positions.json is saved (every second). Settled means
	// no change for 2.5 s.
	var setAcked uint64
	var setPos int64
	stable := time.Now()
	var serr error
	if !harness.Poll(20*time.Second, 100*time.Millisecond, func() bool {
		a, p, err := snapshot()
		if err != nil {
			serr = err
			return false
		}
		if a != setAcked || p != setPos {
			setAcked, setPos, stable = a, p, time.Now()
		}
		return time.Since(stable) >= 2500*time.Millisecond
	}) {
		return fail("acks and offsets did not settle within 20 s of SIGSTOP (last: %d acked, offsets %d, err %v)", setAcked, setPos, serr)
	}
	rep.settledAcked = setAcked
	logf("settled %s after SIGSTOP: %d events acknowledged, offsets sum %d", time.Since(stopped).Round(100*time.Millisecond), setAcked, setPos)

	// The rest of the stop: nothing may move.
	samples := 0
	for time.Since(stopped) < stopFor {
		a, p, err := snapshot()
		if err != nil {
			return fail("reading the agent's state while Elasticsearch is stopped: %v", err)
		}
		samples++
		if a != setAcked || p != setPos {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			return fail("%s after SIGSTOP, with Elasticsearch still stopped, the agent moved on: acked %d -> %d, offsets sum %d -> %d",
				time.Since(stopped).Round(100*time.Millisecond), setAcked, a, setPos, p)
		}
		time.Sleep(200 * time.Millisecond) // sampling interval
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return fail("SIGCONT %d: %v", pid, err)
	}
	logf("Elasticsearch continued after %s; %d samples of acks and offsets, all unchanged", time.Since(stopped).Round(100*time.Millisecond), samples)

	// Catching up; kill Elasticsearch in the middle of it.
	resumed := time.Now()
	if !harness.Poll(3*time.Minute, 20*time.Millisecond, func() bool {
		acked, _ = f.acked()
		return acked >= setAcked+3000
	}) {
		return fail("after SIGCONT the agent did not get 3000 more events acknowledged (%d -> %d)", setAcked, acked)
	}
	logf("%d events acknowledged %s after SIGCONT; killing Elasticsearch with SIGKILL and restarting it on the same data",
		acked, time.Since(resumed).Round(100*time.Millisecond))
	killed := time.Now()
	if err := es.Restart(); err != nil {
		return fail("%v", err)
	}
	a, _ := f.acked()
	logf("Elasticsearch up again after %s (agent acked then: %d of %d)", time.Since(killed).Round(100*time.Millisecond), a, total)
	if acked >= uint64(total) {
		logf("note: the agent had caught up before the kill; the kill did not hit writes in flight")
	}
	return rep
}

// TestES429 puts a proxy between the aggregator and Elasticsearch that, for
// the first bulk requests, answers every third request with 429 as a whole
// and in the others refuses 30% of the items with 429 (without passing them
// on, so only a retry can index them). Every line must arrive exactly once,
// and every refused document must have been sent again.
func TestES429(t *testing.T) {
	const files, perFile = 10, 2000
	const total = files * perFile
	es, root, node := sharedESNode(t, files, perFile)
	target, err := url.Parse(es.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFaultProxy(target, 20)
	srv := httptest.NewServer(proxy)
	defer srv.Close()

	f := startFerry(t, root, node,
		harness.ESAggregatorConfig{URL: srv.URL, FlushEvents: 1000, RetryInitial: "50ms", RetryMax: "500ms"}, "")
	f.waitAcked(t, total, 3*time.Minute)
	es.WaitNodeCount(node, total, time.Minute)
	checkLines(t, es.NodeDocs("logs-*", node), files, perFile)

	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	t.Logf("proxy: %d bulk requests, %d answered 429 as a whole, %d items refused with 429, %d distinct documents refused, %d of them sent again",
		proxy.bulks, proxy.whole429, proxy.itemsRefused, len(proxy.refused), len(proxy.retried))
	if proxy.whole429 == 0 || proxy.itemsRefused == 0 {
		t.Errorf("the proxy injected no faults (%d whole, %d items)", proxy.whole429, proxy.itemsRefused)
	}
	if proxy.bulks <= proxy.faulty {
		t.Errorf("only %d bulk requests: none got through untouched", proxy.bulks)
	}
	var notRetried []string
	for id := range proxy.refused {
		if !proxy.retried[id] {
			notRetried = append(notRetried, id)
		}
	}
	if len(notRetried) > 0 {
		t.Errorf("%d refused documents never sent again, e.g. %v", len(notRetried), notRetried[:min(len(notRetried), 5)])
	}
	f.stop(t)
}

// faultProxy is a reverse proxy to Elasticsearch that injects 429s into the
// first `faulty` _bulk requests.
type faultProxy struct {
	rp     *httputil.ReverseProxy
	faulty int

	mu           sync.Mutex
	bulks        int             // _bulk requests seen
	whole429     int             // answered 429 as a whole
	itemsRefused int             // items answered 429
	refused      map[string]bool // _ids answered 429
	retried      map[string]bool // _ids sent again after a 429
}

type planKey struct{}

// bulkPlan is what the proxy did to one forwarded bulk request: refused[i]
// for each item of the original request.
type bulkPlan struct{ refused []bool }

const item429 = `{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution (injected by the e2e test proxy)"}}}`

func newFaultProxy(target *url.URL, faulty int) *faultProxy {
	p := &faultProxy{faulty: faulty, refused: map[string]bool{}, retried: map[string]bool{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header.Del("Accept-Encoding") // plain answers, to rewrite them
		},
		ModifyResponse: p.merge,
	}
	return p
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/_bulk" {
		p.rp.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Items are pairs of lines: {"create":{"_index":..,"_id":..}} and the document.
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	if len(lines)%2 != 0 {
		http.Error(w, "odd number of bulk lines", http.StatusBadRequest)
		return
	}
	ids := make([]string, len(lines)/2)
	for i := range ids {
		var a struct {
			Create struct {
				ID string `json:"_id"`
			} `json:"create"`
		}
		if err := json.Unmarshal(lines[2*i], &a); err != nil || a.Create.ID == "" {
			http.Error(w, fmt.Sprintf("bulk action %q: %v", lines[2*i], err), http.StatusBadRequest)
			return
		}
		ids[i] = a.Create.ID
	}

	p.mu.Lock()
	p.bulks++
	n := p.bulks
	for _, id := range ids {
		if p.refused[id] {
			p.retried[id] = true
		}
	}
	switch {
	case n > p.faulty:
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		p.rp.ServeHTTP(w, r)
		return
	case n%3 == 0:
		p.whole429++
		for _, id := range ids {
			p.refused[id] = true
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"type":"es_rejected_execution_exception","reason":"rejected execution (injected by the e2e test proxy)"},"status":429}`)
		return
	}
	plan := &bulkPlan{refused: make([]bool, len(ids))}
	var fwd []byte
	for i, id := range ids {
		if i%10 == 0 || i%10 == 3 || i%10 == 6 { // 30%
			plan.refused[i] = true
			p.refused[id] = true
			p.itemsRefused++
			continue
		}
		fwd = append(fwd, lines[2*i]...)
		fwd = append(fwd, '\n')
		fwd = append(fwd, lines[2*i+1]...)
		fwd = append(fwd, '\n')
	}
	p.mu.Unlock()
	if len(fwd) == 0 { // every item refused: nothing to forward
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"errors":true,"items":[`+strings.TrimSuffix(strings.Repeat(item429+",", len(ids)), ",")+`]}`)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), planKey{}, plan))
	r.Body = io.NopCloser(bytes.NewReader(fwd))
	r.ContentLength = int64(len(fwd))
	p.rp.ServeHTTP(w, r)
}

// merge puts the refused items back into Elasticsearch's answer, in their
// places.
func (p *faultProxy) merge(res *http.Response) error {
	plan, _ := res.Request.Context().Value(planKey{}).(*bulkPlan)
	if plan == nil || res.StatusCode != http.StatusOK {
		return nil // not rewritten, or failed as a whole: passed on as is
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	var a struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("proxy: decoding the bulk answer: %w", err)
	}
	out := []byte(`{"errors":true,"items":[`)
	k := 0
	for i, refused := range plan.refused {
		if i > 0 {
			out = append(out, ',')
		}
		if refused {
			out = append(out, item429...)
			continue
		}
		if k >= len(a.Items) {
			return fmt.Errorf("proxy: bulk answer has %d items, fewer than forwarded", len(a.Items))
		}
		out = append(out, a.Items[k]...)
		k++
	}
	out = append(out, "]}"...)
	res.Body = io.NopCloser(bytes.NewReader(out))
	res.ContentLength = int64(len(out))
	res.Header.Set("Content-Length", fmt.Sprint(len(out)))
	res.Header.Del("Content-Encoding")
	return nil
}
