// Command benche2e is the driver of `make bench-e2e` (test/bench-e2e.sh,
// which starts Elasticsearch and a private kube-apiserver, builds the
// binaries and passes them here): the real agent and aggregator end to end
// into a real Elasticsearch, with the aggregator's disk buffer (the
// Elasticsearch sink's default), Kubernetes metadata (pods of the log files
// on the agent's node in the API server, attached by the agent, enriched
// by the aggregator) and GeoIP (an HAProxy request log beside the container
// logs, clients the test databases know).
//
// Per run (a fresh node name, agent, aggregator, namespaces and data
// streams):
//
//  1. Throughput. test/loggen writes files x lines CRI lines (10% split
//     into P+F) plus one HAProxy line per -haproxy-every; once the agent
//     runs and has cached the pods, the files appear in its directories.
//     Measured from then until the agent has every line acknowledged and
//     the aggregator's disk buffer is empty (all delivered to
//     Elasticsearch): events/s, and the CPU seconds (utime+stime of
//     /proc/PID/stat) of agent, aggregator and Elasticsearch over that
//     interval. Then every line must be in Elasticsearch exactly once
//     (count, and distinct _id and distinct file/offset over a scroll of
//     every document), with Kubernetes metadata on the container lines and
//     GeoIP fields on the HAProxy lines of known clients.
//  2. Latency. New pods' files get one line each (their data stream is
//     created), its refresh interval is set to 1 s, then loggen writes
//     -lat-rate lines/s for -lat-seconds, each stamped with its write time
//     (loggen --stamp); every -probe-every-th line of a pod is a probe. A
//     poller searches the probes written in the last -window every -poll
//     and records when each is first seen; latency = the answer's arrival
//     less the stamp (an upper bound, resolution -poll). Probes seen only
//     by the final search count as later than -window.
//
// It prints one table, a column per run.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferrylogs/ferry/test/geoipdb"
	"github.com/ferrylogs/ferry/test/harness"
)

type config struct {
	es, bin, loggen, work, kubeconfig, agentKubeconfig string
	sinkOpts, bufferOpts                               string
	esPID, ports, runs, files, lines, hapEvery         int
	latRate, probeEvery                                int
	latSeconds                                         float64
	poll, window, pprof, pprof2, perf                  time.Duration
	keep, warmup                                       bool
}

func main() {
	var c config
	flag.StringVar(&c.es, "es", "", "Elasticsearch URL")
	flag.IntVar(&c.esPID, "es-pid", 0, "Elasticsearch's pid (0: its CPU is not measured)")
	flag.StringVar(&c.bin, "bin", "", "directory of the agent and aggregator binaries")
	flag.StringVar(&c.loggen, "loggen", "", "test/loggen binary")
	flag.StringVar(&c.work, "work", "", "work directory (state, buffers, logs)")
	flag.StringVar(&c.kubeconfig, "kubeconfig", "", "the API server's admin kubeconfig")
	flag.StringVar(&c.agentKubeconfig, "agent-kubeconfig", "", "the agent's kubeconfig (user ferry-agent)")
	flag.IntVar(&c.ports, "ports", 17400, "first of 4 TCP ports")
	flag.IntVar(&c.runs, "runs", 1, "runs (a column each)")
	flag.IntVar(&c.files, "files", 10, "container log files (pods) of phase 1 and of phase 2")
	flag.IntVar(&c.lines, "lines", 30000, "phase 1: lines per file")
	flag.IntVar(&c.hapEvery, "haproxy-every", 10, "one HAProxy line after every N container lines (0: none)")
	flag.IntVar(&c.latRate, "lat-rate", 5000, "phase 2: container lines per second")
	flag.Float64Var(&c.latSeconds, "lat-seconds", 60, "phase 2: seconds of steady load (0: no phase 2)")
	flag.IntVar(&c.probeEvery, "probe-every", 25, "phase 2: every Nth line of a pod is a probe")
	flag.DurationVar(&c.poll, "poll", 150*time.Millisecond, "phase 2: search interval")
	flag.DurationVar(&c.window, "window", 10*time.Second, "phase 2: how far back each search looks")
	flag.DurationVar(&c.pprof, "pprof", 0, "phase 1: CPU profiles of agent and aggregator over its first this long, into the run's directory (needs FERRY_PPROF=1 in the environment)")
	flag.DurationVar(&c.pprof2, "pprof2", 0, "phase 2: CPU profiles of agent and aggregator over its first this long, into the run's directory as {agent,aggregator}-steady.pprof (needs FERRY_PPROF=1)")
	flag.DurationVar(&c.perf, "perf", 0, "phase 1: `perf record -g` of agent and aggregator over its first this long, into the run's directory as {agent,aggregator}.perf (kernel time by call path: see docs/benchmarks.md for why pprof alone misleads here)")
	flag.StringVar(&c.sinkOpts, "sink-opts", "", `more keys of the Elasticsearch sink, YAML flow style, e.g. "flush_interval: 200ms"`)
	flag.StringVar(&c.bufferOpts, "buffer-opts", "", `more keys of the aggregator's buffer, YAML flow style, e.g. "concurrency: 8"`)
	flag.BoolVar(&c.keep, "keep", false, "keep going after a failed check (report it in the table)")
	flag.BoolVar(&c.warmup, "warmup", false, "one run of phase 1 first, not reported: Elasticsearch just started (its JIT cold costs it up to twice the CPU per event, which halves the ratio)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "benche2e:", err)
		os.Exit(1)
	}
}

// result is one run's column.
type result struct {
	events                      int
	wall                        time.Duration
	agentCPU, aggCPU, esCPU     float64 // seconds
	esSys                       float64 // seconds of esCPU in the kernel
	agentHWM, aggHWM            int64   // KiB
	checks                      []string
	latN, latLate, latRate      int
	p50, p99, pmax              time.Duration
	latAgentCPU, latAggCPU      float64
	latESCPU                    float64
	rttP50, rttMax              time.Duration
	bufP50, bufP99              string // from the aggregator's histogram
	latWall                     time.Duration
	kubeDocs, conDocs, geoDocs  int
	hapDocs, hapKnown           int
	hapDocsWant, conDocsWant    int
	exactlyOnce                 bool
	latExactlyOnce, latMeasured bool
	batches                     uint64 // agent batches the aggregator acknowledged in phase 1
	bulks, bulkBytes            int64  // Elasticsearch shard bulk operations and their bytes in phase 1
}

func run(c config) error {
	if c.es == "" || c.bin == "" || c.loggen == "" || c.work == "" || c.kubeconfig == "" || c.agentKubeconfig == "" {
		return errors.New("-es, -bin, -loggen, -work, -kubeconfig and -agent-kubeconfig are required")
	}
	kube, err := openKube(c.kubeconfig)
	if err != nil {
		return err
	}
	if err := kube.grant("ferry-bench-agent", "ferry-agent", "pods", "namespaces"); err != nil {
		return err
	}
	city, asn, shared, err := geoipdb.Databases(".", filepath.Join(c.work, "geoip"))
	if err != nil {
		return fmt.Errorf("GeoIP databases: %w", err)
	}
	es := &esClient{url: strings.TrimRight(c.es, "/"), http: &http.Client{Timeout: 60 * time.Second}}
	fmt.Fprintf(os.Stderr, "GeoIP: %s, %s (MaxMind's test databases: %v)\n", city, asn, shared)
	if c.warmup {
		w := c
		w.latSeconds, w.pprof, w.pprof2 = 0, 0, 0
		fmt.Fprintln(os.Stderr, "warm-up run (Elasticsearch just started), not reported:")
		if _, err := oneRun(w, kube, es, city, asn, -1); err != nil {
			return fmt.Errorf("warm-up run: %w", err)
		}
	}
	var results []*result
	failed := false
	for r := range c.runs {
		res, err := oneRun(c, kube, es, city, asn, r)
		if err != nil {
			return fmt.Errorf("run %d: %w", r+1, err)
		}
		results = append(results, res)
		if !res.exactlyOnce || (res.latMeasured && !res.latExactlyOnce) {
			failed = true
		}
	}
	printTable(c, results)
	if failed {
		return errors.New("a check failed (see the table and the messages above)")
	}
	return nil
}

func oneRun(c config, kube *kubeAPI, es *esClient, city, asn string, r int) (*result, error) {
	res := &result{}
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	node := "bench-" + id
	env1, env2 := "b"+id, "l"+id // data stream namespaces (no '-')
	w := filepath.Join(c.work, "run-"+id)
	for _, d := range []string{"node/containers", "node/haproxy", "p0", "p1", "p2"} {
		if err := os.MkdirAll(filepath.Join(w, d), 0o755); err != nil {
			return nil, err
		}
	}
	// Pods: phase 1's in namespace bench-<id> (environment env1), phase 2's
	// in benchlat-<id> (env2), all on the agent's node.
	podsFile := func(ns, env, file, prefix string, n int) error {
		if env != "" {
			if err := kube.createNamespace(ns, map[string]string{"environment": env, "team": "bench"}); err != nil {
				return err
			}
		}
		var b strings.Builder
		for i := range n {
			name := fmt.Sprintf("%s-7d9f8b6c5d-%05d", prefix, i)
			uid, err := kube.createPod(ns, name, node)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s %s %s\n", ns, name, uid)
		}
		return os.WriteFile(filepath.Join(w, file), []byte(b.String()), 0o644)
	}
	if err := podsFile("bench-"+id, env1, "pods1", "checkout", c.files); err != nil {
		return nil, err
	}
	if err := podsFile("bench-"+id, "", "pods0", "warmup", 1); err != nil {
		return nil, err
	}
	if err := podsFile("benchlat-"+id, env2, "pods2", "checkout", c.files); err != nil {
		return nil, err
	}
	hap := []string{}
	if c.hapEvery > 0 {
		hap = []string{"--haproxy", filepath.Join(w, "p1", "haproxy.log"), "--haproxy-every", strconv.Itoa(c.hapEvery)}
	}
	fmt.Fprintf(os.Stderr, "run %d: node %s, writing %d x %d lines\n", r+1, node, c.files, c.lines)
	con1, hap1, err := loggen(c, append([]string{"write", "--dir", filepath.Join(w, "p1"), "--pods-file", filepath.Join(w, "pods1"),
		"--rate", "0", "--lines", strconv.Itoa(c.lines), "--rotate-bytes", "0", "--stamp"}, hap...)...)
	if err != nil {
		return nil, err
	}
	total1 := con1 + hap1
	res.events, res.conDocsWant, res.hapDocsWant = total1, con1, hap1

	agentHTTP := fmt.Sprintf("127.0.0.1:%d", c.ports+1)
	aggListen := fmt.Sprintf("127.0.0.1:%d", c.ports+2)
	aggHTTP := fmt.Sprintf("127.0.0.1:%d", c.ports+3)
	aggYAML := fmt.Sprintf(`listen: %s
http: %s
log: { level: warn }
buffer: { dir: %s%s }
sinks:
  - { type: elasticsearch, urls: ["%s"]%s }
enrich:
  environment: { namespace_label: environment, default: default }
  geoip: { city_db: %s, asn_db: %s, fields: [source.ip] }
`, aggListen, aggHTTP, filepath.Join(w, "buffer"), opts(c.bufferOpts), es.url, opts(c.sinkOpts), city, asn)
	agentYAML := fmt.Sprintf(`node: %s
state_dir: %s
http: %s
log: { level: warn }
aggregator: { address: %s }
kubernetes: { kubeconfig: %s }
inputs:
  - { type: container, paths: ["%s/node/containers/*.log", "%s/p2/containers/*.log"] }
  - { type: file, paths: ["%s/node/haproxy/*.log", "%s/p2/haproxy.log"], parser: haproxy, dataset: haproxy.log, environment: %s }
`, node, filepath.Join(w, "agent-state"), agentHTTP, aggListen, c.agentKubeconfig, w, w, w, w, env1)
	if err := os.WriteFile(filepath.Join(w, "aggregator.yaml"), []byte(aggYAML), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(w, "agent.yaml"), []byte(agentYAML), 0o644); err != nil {
		return nil, err
	}
	agg, err := start(filepath.Join(c.bin, "aggregator"), filepath.Join(w, "aggregator.yaml"), filepath.Join(w, "aggregator.log"))
	if err != nil {
		return nil, err
	}
	defer agg.stop()
	if err := waitFor(60*time.Second, "the aggregator's /healthz", agg, func() bool { return healthy(aggHTTP) }); err != nil {
		return nil, err
	}
	agent, err := start(filepath.Join(c.bin, "agent"), filepath.Join(w, "agent.yaml"), filepath.Join(w, "agent.log"))
	if err != nil {
		return nil, err
	}
	defer agent.stop()
	if err := waitFor(60*time.Second, "the agent's cache of its pods", agent, func() bool {
		n, err := stat(agentHTTP, "ferry_agent_kube_pods_cached")
		return err == nil && n == uint64(2*c.files+1)
	}); err != nil {
		return nil, err
	}
	// Warm-up: one container line and one HAProxy line create phase 1's
	// data streams (and the sink's checks of them) outside the measurement.
	con0, hap0, err := loggen(c, "write", "--dir", filepath.Join(w, "p0"), "--pods-file", filepath.Join(w, "pods0"),
		"--rate", "0", "--lines", "1", "--rotate-bytes", "0", "--stamp", "--haproxy", filepath.Join(w, "p0", "haproxy.log"), "--haproxy-every", "1")
	if err != nil {
		return nil, err
	}
	if err := moveInto(w, "p0", "warmup.log"); err != nil {
		return nil, err
	}
	acked := uint64(con0 + hap0)
	if err := waitDelivered(agent, agg, agentHTTP, aggHTTP, acked, 2*time.Minute); err != nil {
		return nil, err
	}

	// Phase 1.
	esUser0, esSys0 := cpuSplit(c.esPID)
	a0, g0, e0 := cpuOf(agent.pid()), cpuOf(agg.pid()), esUser0+esSys0
	b0, _ := stat(aggHTTP, "ferry_aggregator_batches_acked_total")
	k0, kb0, _ := es.bulkStats()
	t0 := time.Now()
	var profiles sync.WaitGroup
	if c.pprof > 0 {
		for name, addr := range map[string]string{"agent": agentHTTP, "aggregator": aggHTTP} {
			profiles.Add(1)
			go func() {
				defer profiles.Done()
				if err := profile(addr, c.pprof, filepath.Join(w, name+".pprof")); err != nil {
					fmt.Fprintf(os.Stderr, "profile of the %s: %v\n", name, err)
				}
			}()
		}
	}
	if c.perf > 0 {
		for name, pid := range map[string]int{"agent": agent.pid(), "aggregator": agg.pid()} {
			profiles.Go(func() {
				if err := perfRecord(pid, c.perf, filepath.Join(w, name+".perf")); err != nil {
					fmt.Fprintf(os.Stderr, "perf record of the %s: %v\n", name, err)
				}
			})
		}
	}
	if err := moveInto(w, "p1", "phase1.log"); err != nil {
		return nil, err
	}
	acked += uint64(total1)
	if err := waitDelivered(agent, agg, agentHTTP, aggHTTP, acked, 10*time.Minute); err != nil {
		return nil, err
	}
	res.wall = time.Since(t0)
	esUser1, esSys1 := cpuSplit(c.esPID)
	res.agentCPU, res.aggCPU, res.esCPU = cpuOf(agent.pid())-a0, cpuOf(agg.pid())-g0, esUser1+esSys1-e0
	res.esSys = esSys1 - esSys0
	if b1, err := stat(aggHTTP, "ferry_aggregator_batches_acked_total"); err == nil {
		res.batches = b1 - b0
	}
	if k1, kb1, err := es.bulkStats(); err == nil {
		res.bulks, res.bulkBytes = k1-k0, kb1-kb0
	}
	fmt.Fprintf(os.Stderr, "run %d: phase 1: %d events in %s\n", r+1, total1, res.wall.Round(time.Millisecond))
	profiles.Wait()
	if c.pprof > 0 {
		fmt.Fprintf(os.Stderr, "run %d: CPU profiles of phase 1's first %s: %s/{agent,aggregator}.pprof\n", r+1, c.pprof, w)
	}
	if c.perf > 0 {
		fmt.Fprintf(os.Stderr, "run %d: perf records of phase 1's first %s: %s/{agent,aggregator}.perf (perf report -i FILE --children)\n", r+1, c.perf, w)
	}

	// Phase 1's checks, outside the measured interval.
	if err := es.refresh(); err != nil {
		return nil, err
	}
	nodeQ := term("host.name", node)
	ids, keys, n, err := es.scan("logs-*", nodeQ)
	if err != nil {
		return nil, err
	}
	want := int(acked)
	res.exactlyOnce = n == want && ids == want && keys == want
	if !res.exactlyOnce {
		msg := fmt.Sprintf("run %d: phase 1: %d documents, %d distinct _id, %d distinct file/offset; want %d each", r+1, n, ids, keys, want)
		fmt.Fprintln(os.Stderr, "FAIL", msg)
		res.checks = append(res.checks, msg)
	}
	conQ := boolQ(nodeQ, term("data_stream.dataset", "kubernetes.container"))
	if res.conDocs, err = es.count("logs-*", conQ); err != nil {
		return nil, err
	}
	if res.kubeDocs, err = es.count("logs-*", boolQ(conQ, term("kubernetes.namespace", "bench-"+id), exists("kubernetes.pod.uid"),
		term("kubernetes.labels.team", "payments"), term("service.environment", env1))); err != nil {
		return nil, err
	}
	hapQ := boolQ(nodeQ, term("data_stream.dataset", "haproxy.log"))
	if res.hapDocs, err = es.count("logs-*", hapQ); err != nil {
		return nil, err
	}
	if res.geoDocs, err = es.count("logs-*", boolQ(hapQ, exists("source.geo.country_iso_code"))); err != nil {
		return nil, err
	}
	res.hapKnown = hap0   // the warm-up's line is loggen's first client, a known one
	for i := range hap1 { // loggen's clients: all but the last (private) are in the City database
		if i%len(hapClientsKnown) != len(hapClientsKnown)-1 {
			res.hapKnown++
		}
	}
	res.conDocsWant = con0 + con1
	if res.kubeDocs != res.conDocsWant || res.conDocs != res.conDocsWant || res.hapDocs != hap0+hap1 || res.geoDocs != res.hapKnown {
		msg := fmt.Sprintf("run %d: enrichment: %d of %d container documents with the pod's metadata, %d of %d HAProxy documents with source.geo (want %d)",
			r+1, res.kubeDocs, res.conDocsWant, res.geoDocs, hap0+hap1, res.hapKnown)
		fmt.Fprintln(os.Stderr, "FAIL", msg)
		res.checks = append(res.checks, msg)
		res.exactlyOnce = false
	}
	if !res.exactlyOnce && !c.keep {
		return nil, errors.New(strings.Join(res.checks, "; "))
	}

	// Phase 2.
	if c.latSeconds > 0 {
		res.latMeasured = true
		if err := latency(c, es, res, w, node, env2, agent, agg, agentHTTP, aggHTTP, acked); err != nil {
			return nil, err
		}
	}
	res.agentHWM, res.aggHWM = hwm(agent.pid()), hwm(agg.pid())
	agent.stop()
	agg.stop()
	return res, nil
}

var hapClientsKnown = []string{"81.2.69.142", "216.160.83.56", "89.160.20.115", "2001:218::1", "10.1.2.3"}

func latency(c config, es *esClient, res *result, w, node, env string, agent, agg *proc, agentHTTP, aggHTTP string, acked uint64) error {
	// One line per pod creates the data stream; then its refresh interval
	// is set to 1 s (Ferry's template says 5 s).
	p2 := filepath.Join(w, "p2")
	con, _, err := loggen(c, "write", "--dir", p2, "--pods-file", filepath.Join(w, "pods2"), "--rate", "0", "--lines", "1", "--rotate-bytes", "0", "--stamp", "--probe-every", "0")
	if err != nil {
		return err
	}
	acked += uint64(con)
	if err := waitDelivered(agent, agg, agentHTTP, aggHTTP, acked, 2*time.Minute); err != nil {
		return err
	}
	stream := "logs-kubernetes.container-" + env
	if err := es.do(http.MethodPut, "/"+stream+"/_settings", map[string]any{"index": map[string]any{"refresh_interval": "1s"}}, nil); err != nil {
		return fmt.Errorf("refresh interval of %s: %w", stream, err)
	}
	if err := es.refresh(); err != nil {
		return err
	}
	probeQ := func(from time.Time) map[string]any {
		return boolQ(term("host.name", node), map[string]any{"match": map[string]any{"message": "probe"}},
			map[string]any{"range": map[string]any{"@timestamp": map[string]any{"gte": from.UTC().Format(time.RFC3339Nano)}}})
	}
	seen := map[int64]time.Duration{} // stamp -> latency
	var rtts []time.Duration
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan error, 1)
	t0 := time.Now()
	size := min(10000, 2*int(float64(c.latRate)/float64(c.probeEvery)*c.window.Seconds())+100)
	go func() {
		t := time.NewTicker(c.poll)
		defer t.Stop()
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-t.C:
			}
			var out searchResult
			sent := time.Now()
			err := es.do(http.MethodPost, "/"+stream+"/_search?filter_path=hits.hits._source.message", map[string]any{
				"size": size, "_source": []string{"message"}, "query": probeQ(time.Now().Add(-c.window))}, &out)
			at := time.Now()
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			rtts = append(rtts, at.Sub(sent))
			for _, h := range out.Hits.Hits {
				s, ok := stampOf(h.Source.Message)
				if !ok {
					continue
				}
				if _, ok := seen[s]; !ok {
					seen[s] = at.Sub(time.Unix(0, s))
				}
			}
			mu.Unlock()
		}
	}()
	h0, err := histogram(aggHTTP, "ferry_aggregator_event_latency_seconds")
	if err != nil {
		return err
	}
	a0, g0, e0 := cpuOf(agent.pid()), cpuOf(agg.pid()), cpuOf(c.esPID)
	fmt.Fprintf(os.Stderr, "phase 2: %d lines/s for %gs\n", c.latRate, c.latSeconds)
	var profiles sync.WaitGroup
	defer profiles.Wait()
	if c.pprof2 > 0 {
		for name, addr := range map[string]string{"agent": agentHTTP, "aggregator": aggHTTP} {
			profiles.Go(func() {
				if err := profile(addr, c.pprof2, filepath.Join(w, name+"-steady.pprof")); err != nil {
					fmt.Fprintf(os.Stderr, "profile of the %s: %v\n", name, err)
				}
			})
		}
	}
	hapArgs := []string{}
	if c.hapEvery > 0 {
		hapArgs = []string{"--haproxy", filepath.Join(p2, "haproxy.log"), "--haproxy-every", strconv.Itoa(c.hapEvery)}
	}
	con2, hap2, err := loggen(c, append([]string{"write", "--dir", p2, "--pods-file", filepath.Join(w, "pods2"), "--rate", strconv.Itoa(c.latRate),
		"--seconds", strconv.FormatFloat(c.latSeconds, 'f', -1, 64), "--rotate-bytes", "0", "--stamp", "--probe-every", strconv.Itoa(c.probeEvery)}, hapArgs...)...)
	if err != nil {
		close(stop)
		return err
	}
	res.latWall = time.Since(t0)
	res.latAgentCPU, res.latAggCPU, res.latESCPU = cpuOf(agent.pid())-a0, cpuOf(agg.pid())-g0, cpuOf(c.esPID)-e0
	res.latRate = int(float64(con2) / res.latWall.Seconds())
	acked += uint64(con2 + hap2)
	if err := waitDelivered(agent, agg, agentHTTP, aggHTTP, acked, 5*time.Minute); err != nil {
		close(stop)
		return err
	}
	h1, err := histogram(aggHTTP, "ferry_aggregator_event_latency_seconds")
	if err != nil {
		return err
	}
	res.bufP50, res.bufP99 = h1.minus(h0).quantile(0.5), h1.minus(h0).quantile(0.99)
	time.Sleep(3 * time.Second) // two refresh intervals for the poller: only the last lines are searched for now
	close(stop)
	if err := <-done; err != nil {
		return fmt.Errorf("poller: %w", err)
	}
	// Every probe, after a refresh: those the poller missed were later than
	// the window.
	if err := es.refresh(); err != nil {
		return err
	}
	all := map[int64]bool{}
	if err := es.scroll("/"+stream, probeQ(t0.Add(-time.Minute)), func(msg string, _ docKey) {
		if s, ok := stampOf(msg); ok {
			all[s] = true
		}
	}); err != nil {
		return err
	}
	slices.Sort(rtts)
	if len(rtts) > 0 {
		res.rttP50, res.rttMax = rtts[len(rtts)/2], rtts[len(rtts)-1]
	}
	var lat []time.Duration
	for s := range all {
		if d, ok := seen[s]; ok {
			lat = append(lat, d)
		} else {
			res.latLate++
			lat = append(lat, c.window+time.Hour) // later than the window: sorts last
		}
	}
	slices.Sort(lat)
	res.latN = len(lat)
	if len(lat) > 0 {
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		res.p50, res.p99, res.pmax = q(0.50), q(0.99), lat[len(lat)-1]
	}
	// Exactly once over phase 2 as well.
	ids, keys, n, err := es.scan("logs-*", term("host.name", node))
	if err != nil {
		return err
	}
	want := int(acked)
	res.latExactlyOnce = n == want && ids == want && keys == want
	if !res.latExactlyOnce {
		msg := fmt.Sprintf("phase 2: node %s has %d documents, %d distinct _id, %d distinct file/offset; want %d each", node, n, ids, keys, want)
		fmt.Fprintln(os.Stderr, "FAIL", msg)
		res.checks = append(res.checks, msg)
	}
	return nil
}

// perfRecord samples the process pid for d with `perf record -g` (user
// and kernel stacks) into path. Go's pprof sees a system call as one frame
// and, on this virtual machine, charges it time that perf does not (see
// docs/benchmarks.md); perf shows what the kernel does inside it, and the
// runtime's own threads (sysmon).
func perfRecord(pid int, d time.Duration, path string) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return fmt.Errorf("perf is not installed (Debian: linux-perf): %w", err)
	}
	out, err := exec.Command(perf, "record", "-q", "-g", "-p", strconv.Itoa(pid), "-o", path, "--",
		"sleep", strconv.FormatFloat(d.Seconds(), 'f', -1, 64)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("perf record: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// profile saves a CPU profile of d from the pprof endpoint at addr.
func profile(addr string, d time.Duration, path string) error {
	cl := &http.Client{Timeout: d + time.Minute}
	res, err := cl.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/debug/pprof/profile: HTTP %d (FERRY_PPROF=1?)", addr, res.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// hist is a cumulative Prometheus histogram: counts by upper bound.
type hist struct {
	le     []string
	counts []float64
}

// histogram reads histogram name from the aggregator's /metrics.
func histogram(addr, name string) (hist, error) {
	res, err := local.Get("http://" + addr + "/metrics")
	if err != nil {
		return hist{}, err
	}
	defer res.Body.Close()
	var h hist
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, v, ok := strings.Cut(rest, `"} `)
		n, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			return hist{}, fmt.Errorf("%s/metrics: %q", addr, sc.Text())
		}
		h.le, h.counts = append(h.le, le), append(h.counts, n)
	}
	if len(h.le) == 0 {
		return hist{}, fmt.Errorf("no %s in %s/metrics", name, addr)
	}
	return h, sc.Err()
}

func (h hist) minus(o hist) hist {
	d := hist{le: h.le, counts: slices.Clone(h.counts)}
	for i := range d.counts {
		if i < len(o.counts) {
			d.counts[i] -= o.counts[i]
		}
	}
	return d
}

// quantile returns the upper bound of the bucket holding quantile q, as
// "<=Xs".
func (h hist) quantile(q float64) string {
	total := h.counts[len(h.counts)-1]
	if total == 0 {
		return "n/a"
	}
	for i, n := range h.counts {
		if n >= q*total {
			return "<=" + h.le[i] + "s"
		}
	}
	return "n/a"
}

// opts returns ", "+o, or "" for an empty o.
func opts(o string) string {
	if strings.TrimSpace(o) == "" {
		return ""
	}
	return ", " + o
}

// moveInto makes the files loggen wrote into w/from appear in the agent's
// directories: the container links into node/containers, the HAProxy log
// (if any) as node/haproxy/<hapName>.
func moveInto(w, from, hapName string) error {
	links, _ := filepath.Glob(filepath.Join(w, from, "containers", "*.log"))
	for _, l := range links {
		if err := os.Rename(l, filepath.Join(w, "node", "containers", filepath.Base(l))); err != nil {
			return err
		}
	}
	err := os.Rename(filepath.Join(w, from, "haproxy.log"), filepath.Join(w, "node", "haproxy", hapName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// stampOf returns the stamp of a message loggen --stamp wrote.
func stampOf(msg string) (int64, bool) {
	rest, ok := strings.CutPrefix(msg, "stamp=")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, " ")
	s, err := strconv.ParseInt(num, 10, 64)
	return s, err == nil
}

// waitDelivered waits until the agent has want events acknowledged and the
// aggregator's disk buffer holds nothing undelivered.
//
// The agent's count only grows, so it is asked until it is reached and not
// again: a scrape of the agent's /stats (counters, a stat of every file it
// follows) every 100 ms while Elasticsearch indexes would be charged to the
// agent's CPU, at a rate no real scraper has (about a tenth of the agent's
// CPU in this run when it was asked throughout).
func waitDelivered(agent, agg *proc, agentHTTP, aggHTTP string, want uint64, timeout time.Duration) error {
	acked := false
	return waitFor(timeout, fmt.Sprintf("%d events acknowledged and delivered", want), agent, func() bool {
		if !agg.running() {
			return false
		}
		if !acked {
			n, err := stat(agentHTTP, "ferry_agent_events_acked_total")
			if err != nil || n < want {
				return false
			}
			acked = true
		}
		b, err := stat(aggHTTP, "ferry_aggregator_buffer_bytes")
		return err == nil && b == 0
	})
}

func loggen(c config, args ...string) (con, hap int, err error) {
	cmd := exec.Command(c.loggen, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("loggen %s: %w", strings.Join(args, " "), err)
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "container=%d haproxy=%d", &con, &hap); err != nil {
		return 0, 0, fmt.Errorf("loggen said %q: %w", out, err)
	}
	return con, hap, nil
}

// A proc is a started binary with its log.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	once sync.Once
}

func start(bin, config, log string) (*proc, error) {
	f, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config", config)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, and SIGKILL after 30 s.
func (p *proc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func waitFor(timeout time.Duration, what string, p *proc, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if !p.running() {
			return fmt.Errorf("waiting for %s: %s exited:\n%s", what, p.cmd.Path, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: timed out after %s; %s's log ends:\n%s", what, timeout, p.cmd.Path, p.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

var local = &http.Client{Timeout: 5 * time.Second}

func healthy(addr string) bool {
	res, err := local.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// stat returns the sum of the /stats lines of name (any labels).
func stat(addr, name string) (uint64, error) {
	res, err := local.Get("http://" + addr + "/stats")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var sum uint64
	found := false
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || (f[0] != name && !strings.HasPrefix(f[0], name+"{")) {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/stats %s: %w", sc.Text(), err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no %s in %s/stats", name, addr)
	}
	return sum, sc.Err()
}

var clockTick = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 100
	}
	return v
}()

// cpuOf returns utime+stime of pid in seconds (0 for pid 0 or an error).
func cpuOf(pid int) float64 {
	u, st := cpuSplit(pid)
	return u + st
}

// cpuSplit returns the user and system CPU seconds of pid (0, 0 if unknown).
func cpuSplit(pid int) (user, sys float64) {
	if pid == 0 {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // from field 3 on
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return u / clockTick, st / clockTick
}

// hwm returns VmHWM of pid in KiB.
func hwm(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// Elasticsearch.

type esClient struct {
	url  string
	http *http.Client
}

func (e *esClient) do(method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: HTTP %d: %.500s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// bulkStats returns the shard bulk operations Elasticsearch's nodes have
// done and their bytes (_nodes/stats indices.bulk): one bulk request makes
// one per shard it touches.
func (e *esClient) bulkStats() (ops, bytes int64, err error) {
	var out struct {
		Nodes map[string]struct {
			Indices struct {
				Bulk struct {
					Ops   int64 `json:"total_operations"`
					Bytes int64 `json:"total_size_in_bytes"`
				} `json:"bulk"`
			} `json:"indices"`
		} `json:"nodes"`
	}
	if err := e.do(http.MethodGet, "/_nodes/stats/indices/bulk", nil, &out); err != nil {
		return 0, 0, err
	}
	for _, n := range out.Nodes {
		ops += n.Indices.Bulk.Ops
		bytes += n.Indices.Bulk.Bytes
	}
	return ops, bytes, nil
}

func (e *esClient) refresh() error { return e.do(http.MethodPost, "/logs-*/_refresh", nil, nil) }

func (e *esClient) count(index string, q map[string]any) (int, error) {
	var out struct {
		Count int `json:"count"`
	}
	err := e.do(http.MethodPost, "/"+index+"/_count", map[string]any{"query": q}, &out)
	return out.Count, err
}

type docKey struct {
	id, path string
	offset   int64
}

type searchResult struct {
	ScrollID string `json:"_scroll_id"`
	Hits     struct {
		Hits []struct {
			ID     string `json:"_id"`
			Source struct {
				Message string `json:"message"`
				Log     struct {
					Offset int64 `json:"offset"`
					File   struct {
						Path string `json:"path"`
					} `json:"file"`
				} `json:"log"`
			} `json:"_source"`
		} `json:"hits"`
	} `json:"hits"`
}

// scroll calls f for every document of index matching q.
func (e *esClient) scroll(index string, q map[string]any, f func(msg string, k docKey)) error {
	var out searchResult
	if err := e.do(http.MethodPost, index+"/_search?scroll=1m", map[string]any{
		"size": 10000, "_source": []string{"message", "log.offset", "log.file.path"}, "query": q, "sort": []string{"_doc"}}, &out); err != nil {
		return err
	}
	defer func() {
		if out.ScrollID != "" {
			_ = e.do(http.MethodDelete, "/_search/scroll", map[string]any{"scroll_id": out.ScrollID}, nil)
		}
	}()
	for len(out.Hits.Hits) > 0 {
		for _, h := range out.Hits.Hits {
			f(h.Source.Message, docKey{id: h.ID, path: h.Source.Log.File.Path, offset: h.Source.Log.Offset})
		}
		id := out.ScrollID
		out = searchResult{}
		if err := e.do(http.MethodPost, "/_search/scroll", map[string]any{"scroll": "1m", "scroll_id": id}, &out); err != nil {
			return err
		}
	}
	return nil
}

// scan counts the documents of q, their distinct _id and their distinct
// (log.file.path, log.offset): one line of a file is one offset.
func (e *esClient) scan(index string, q map[string]any) (ids, keys, n int, err error) {
	idSet := map[string]struct{}{}
	keySet := map[docKey]struct{}{}
	err = e.scroll("/"+index, q, func(_ string, k docKey) {
		n++
		idSet[k.id] = struct{}{}
		keySet[docKey{path: k.path, offset: k.offset}] = struct{}{}
	})
	return len(idSet), len(keySet), n, err
}

func term(field, value string) map[string]any {
	return map[string]any{"term": map[string]any{field: value}}
}

func exists(field string) map[string]any {
	return map[string]any{"exists": map[string]any{"field": field}}
}

func boolQ(filters ...map[string]any) map[string]any {
	var all []any
	for _, f := range filters {
		if b, ok := f["bool"].(map[string]any); ok {
			all = append(all, b["filter"].([]any)...)
			continue
		}
		all = append(all, f)
	}
	return map[string]any{"bool": map[string]any{"filter": all}}
}

// Kubernetes.

// kubeAPI is the admin's view of the API server (test/harness reads the
// kubeconfig and sends the requests).
type kubeAPI struct{ *harness.KubeAPI }

func openKube(path string) (*kubeAPI, error) {
	k, err := harness.OpenKube(path)
	if err != nil {
		return nil, err
	}
	return &kubeAPI{k}, nil
}

// post creates an object; okConflict accepts one that exists.
func (k *kubeAPI) post(path string, body, out any, okConflict bool) error {
	status, err := k.Do(http.MethodPost, path, "", body, out)
	if okConflict && status == http.StatusConflict {
		return nil
	}
	return err
}

func (k *kubeAPI) grant(name, user string, resources ...string) error {
	if err := k.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": name},
		"rules": []map[string]any{{"apiGroups": []string{""}, "resources": resources, "verbs": []string{"get", "list", "watch"}}},
	}, nil, true); err != nil {
		return err
	}
	return k.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": map[string]any{"name": name},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
		"subjects": []map[string]any{{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}},
	}, nil, true)
}

// createNamespace creates namespace name with labels and its default
// ServiceAccount (no controller-manager makes it here).
func (k *kubeAPI) createNamespace(name string, labels map[string]string) error {
	if err := k.post("/api/v1/namespaces", map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name, "labels": labels}}, nil, false); err != nil {
		return err
	}
	return k.post("/api/v1/namespaces/"+name+"/serviceaccounts", map[string]any{
		"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "default"}}, nil, true)
}

// createPod creates a pod of a Deployment's ReplicaSet bound to node and
// returns its uid.
func (k *kubeAPI) createPod(ns, name, node string) (string, error) {
	var out struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	err := k.post("/api/v1/namespaces/"+ns+"/pods", map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": ns,
			"labels": map[string]string{"app.kubernetes.io/name": "checkout", "app.kubernetes.io/version": "1.42.0", "pod-template-hash": "7d9f8b6c5d", "team": "payments"},
			"ownerReferences": []map[string]any{{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7d9f8b6c5d",
				"uid": "00000000-0000-4000-8000-000000000001", "controller": true}}},
		"spec": map[string]any{"nodeName": node, "containers": []map[string]any{{"name": "app", "image": "registry.example/checkout:1.42.0"}}},
	}, &out, false)
	return out.Metadata.UID, err
}

// The table.

func printTable(c config, rs []*result) {
	row := func(name string, f func(r *result) string) {
		fmt.Printf("%-46s", name)
		for _, r := range rs {
			fmt.Printf(" %14s", f(r))
		}
		fmt.Println()
	}
	fmt.Printf("\nbench-e2e: %d files x %d lines + 1 HAProxy line per %d (GeoIP), Kubernetes metadata, disk buffer -> %s\n",
		c.files, c.lines, c.hapEvery, c.es)
	if c.sinkOpts != "" || c.bufferOpts != "" {
		fmt.Printf("sink: {%s}, buffer: {%s}\n", c.sinkOpts, c.bufferOpts)
	}
	row("", func(r *result) string { return fmt.Sprintf("run %d", slices.Index(rs, r)+1) })
	row("events (phase 1)", func(r *result) string { return strconv.Itoa(r.events) })
	row("events/s into Elasticsearch", func(r *result) string { return fmt.Sprintf("%.0f", float64(r.events)/r.wall.Seconds()) })
	row("agent CPU-s", func(r *result) string { return fmt.Sprintf("%.2f", r.agentCPU) })
	row("aggregator CPU-s", func(r *result) string { return fmt.Sprintf("%.2f", r.aggCPU) })
	es := func(v float64) string {
		if c.esPID == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", v)
	}
	row("Elasticsearch CPU-s", func(r *result) string { return es(r.esCPU) })
	// Elasticsearch's cost per event varies between runs and machines
	// (JIT, merges, the host): the ratio moves with it.
	row("Elasticsearch CPU-µs per event (% system)", func(r *result) string {
		if c.esPID == 0 || r.esCPU == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.0f (%.0f%%)", r.esCPU*1e6/float64(r.events), 100*r.esSys/r.esCPU)
	})
	row("(agent+aggregator)/Elasticsearch", func(r *result) string {
		if c.esPID == 0 || r.esCPU == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f%%", 100*(r.agentCPU+r.aggCPU)/r.esCPU)
	})
	row("agent / aggregator CPU-s per million events", func(r *result) string {
		return fmt.Sprintf("%.2f / %.2f", r.agentCPU*1e6/float64(r.events), r.aggCPU*1e6/float64(r.events))
	})
	row("events per agent batch (batches)", func(r *result) string {
		if r.batches == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.0f (%d)", float64(r.events)/float64(r.batches), r.batches)
	})
	row("events per shard bulk (bulks, avg KiB)", func(r *result) string {
		if r.bulks == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.0f (%d, %.0f)", float64(r.events)/float64(r.bulks), r.bulks, float64(r.bulkBytes)/float64(r.bulks)/1024)
	})
	row("exactly once (count, _id, file/offset)", func(r *result) string {
		ok := r.exactlyOnce && (!r.latMeasured || r.latExactlyOnce)
		return map[bool]string{true: "yes", false: "NO"}[ok]
	})
	row("container documents with pod metadata", func(r *result) string { return fmt.Sprintf("%d/%d", r.kubeDocs, r.conDocsWant) })
	row("HAProxy documents with source.geo", func(r *result) string { return fmt.Sprintf("%d/%d", r.geoDocs, r.hapKnown) })
	if c.latSeconds > 0 {
		row(fmt.Sprintf("latency lines/s (target %d, %gs)", c.latRate, c.latSeconds), func(r *result) string { return strconv.Itoa(r.latRate) })
		ms := func(d time.Duration) string {
			if d > c.window {
				return ">" + c.window.String()
			}
			return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond))
		}
		row("write->searchable p50 ms (refresh 1s)", func(r *result) string { return ms(r.p50) })
		row("write->searchable p99 ms", func(r *result) string { return ms(r.p99) })
		row("write->searchable max ms", func(r *result) string { return ms(r.pmax) })
		row("probes (later than window)", func(r *result) string { return fmt.Sprintf("%d (%d)", r.latN, r.latLate) })
		row("write->aggregator's buffer p50/p99 (buckets)", func(r *result) string { return r.bufP50 + "/" + r.bufP99 })
		row("search round trip p50/max ms", func(r *result) string {
			return fmt.Sprintf("%d/%d", r.rttP50.Milliseconds(), r.rttMax.Milliseconds())
		})
		row("steady: agent / aggregator % of a core", func(r *result) string {
			return fmt.Sprintf("%.1f%% / %.1f%%", 100*r.latAgentCPU/r.latWall.Seconds(), 100*r.latAggCPU/r.latWall.Seconds())
		})
		row("steady: Elasticsearch % of a core", func(r *result) string {
			return es(100*r.latESCPU/r.latWall.Seconds()) + "%"
		})
	}
	row("agent peak RSS (VmHWM) MiB", func(r *result) string { return fmt.Sprintf("%.1f", float64(r.agentHWM)/1024) })
	row("aggregator peak RSS (VmHWM) MiB", func(r *result) string { return fmt.Sprintf("%.1f", float64(r.aggHWM)/1024) })
	if len(rs) > 1 {
		// CPU-seconds on a shared machine drift run to run for every
		// process at once (±15% here): the medians are the figures to
		// compare between two builds.
		med := func(f func(r *result) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			slices.Sort(v)
			if n := len(v); n%2 == 0 {
				return (v[n/2-1] + v[n/2]) / 2
			}
			return v[len(v)/2]
		}
		perM := func(cpu func(r *result) float64) func(r *result) float64 {
			return func(r *result) float64 { return cpu(r) * 1e6 / float64(r.events) }
		}
		fmt.Printf("median of %d runs: agent / aggregator CPU-s per million events %.2f / %.2f", len(rs),
			med(perM(func(r *result) float64 { return r.agentCPU })), med(perM(func(r *result) float64 { return r.aggCPU })))
		if c.esPID != 0 {
			fmt.Printf(", Elasticsearch %.1f, (agent+aggregator)/Elasticsearch %.1f%%",
				med(perM(func(r *result) float64 { return r.esCPU })),
				med(func(r *result) float64 { return 100 * (r.agentCPU + r.aggCPU) / max(r.esCPU, 1e-9) }))
		}
		fmt.Println()
	}
	for _, r := range rs {
		for _, m := range r.checks {
			fmt.Println("FAILED:", m)
		}
	}
}
