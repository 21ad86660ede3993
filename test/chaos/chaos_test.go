//go:build chaos

// Package chaos runs the real agent and aggregators (with the disk buffer)
// against a private Elasticsearch while a writer produces numbered lines
// into rotating container logs, and kills, stops and restarts every part at
// seeded random moments. At the end every line written must be in
// Elasticsearch exactly once.
//
// The tests build only with the chaos tag, so `go test ./...` leaves them
// out: `make chaos` (CHAOS_SCALE=full) and .ci/run (`make chaos
// CHAOS_SCALE=ci`) run them. CHAOS_SEED replays a
// schedule; CHAOS_LOG_DIR keeps the processes' logs.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/test/harness"
)

// scale is the size of a chaos run.
type scale struct {
	name        string
	files       int           // container log files written
	run         time.Duration // how long the writer writes (and the chaos lasts)
	linesPerSec int           // over all files
	rotateEvery int           // lines per file between two rotations
	agentKills  int           // kill -9 of the agent during the run
	aggKills    int           // kill -9 of the aggregator during the run
	esStop      time.Duration // SIGSTOP of Elasticsearch

	replicaRun   time.Duration // TestChaosTwoReplicas: writing time
	replicaKills int           // kill -9 of each replica

	drain time.Duration // deadline for everything to arrive after the run
}

var scales = map[string]scale{
	// Fits CI: both tests, with two Elasticsearch starts, in about 4.5 minutes
	// on 2 cores.
	"ci": {
		name: "ci", files: 20, run: 150 * time.Second, linesPerSec: 600, rotateEvery: 500,
		agentKills: 4, aggKills: 4, esStop: 30 * time.Second,
		replicaRun: 75 * time.Second, replicaKills: 3,
		drain: 4 * time.Minute,
	},
	"full": {
		name: "full", files: 50, run: 12 * time.Minute, linesPerSec: 800, rotateEvery: 1000,
		agentKills: 10, aggKills: 10, esStop: 2 * time.Minute,
		replicaRun: 4 * time.Minute, replicaKills: 10,
		drain: 10 * time.Minute,
	},
}

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// env is what a chaos test runs in: its scale and random source (see
// setup), a private Elasticsearch and a client of it, the node's root
// directory (see harness.NodeRoot), the processes' log directory (see
// logDir) and the node name.
type env struct {
	sc               scale
	rng              *rand.Rand
	es               *harness.PrivateES
	esc              *harness.ESClient
	root, logs, node string
}

// newEnv sets up a chaos test: the scale and random source, a private
// Elasticsearch, the node's root and log directories and a node name of the
// test's own.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{}
	e.sc, e.rng = setup(t)
	e.es = harness.StartPrivateES(t)
	e.esc = harness.NewESClient(t, e.es.URL)
	e.root = harness.NodeRoot(t)
	e.logs = logDir(t, e.root)
	e.node = harness.UniqueNode(t, "chaos")
	return e
}

// setup returns the scale of CHAOS_SCALE (ci when unset) and a random
// source seeded with CHAOS_SEED or the clock; the seed is logged.
func setup(t *testing.T) (scale, *rand.Rand) {
	name := os.Getenv("CHAOS_SCALE")
	if name == "" {
		name = "ci"
	}
	sc, ok := scales[name]
	if !ok {
		t.Fatalf("CHAOS_SCALE=%q: want ci or full", name)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("scale %s, seed %d (CHAOS_SEED=%d replays this schedule)", sc.name, seed, seed)
	return sc, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// logDir is where the processes of a test write their logs: under
// $CHAOS_LOG_DIR (kept after the run), else in the test's root.
func logDir(t *testing.T, root string) string {
	d := os.Getenv("CHAOS_LOG_DIR")
	if d == "" {
		return root
	}
	d = filepath.Join(d, t.Name())
	_ = os.RemoveAll(d)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestChaos: one agent and one aggregator with a disk buffer, a private
// Elasticsearch. While the writer writes, the agent and the aggregator are
// killed with SIGKILL and restarted after a short pause, Elasticsearch is
// stopped (SIGSTOP) and continued, and later killed and restarted on its
// data. Then both are stopped with SIGTERM and started again to finish.
func TestChaos(t *testing.T) {
	e := newEnv(t)
	sc := e.sc

	agg := newAggregator(t, e, "aggregator")
	agent := newAgent(t, e, agg.listen)
	harness.LogTailsOnFailure(t, agent.proc, agg.proc)

	w := startWriter(t, e.root, sc.files, sc.run, sc.linesPerSec, sc.rotateEvery)

	// Three tracks side by side, each with its own random source.
	agentSeed, aggSeed, esSeed := e.rng.Uint64(), e.rng.Uint64(), e.rng.Uint64()
	start := time.Now()
	var tr tracks
	tr.run("agent", func() error {
		return killLoop(t, agentSeed, "agent", agent.proc, agent.http, start, sc.run, sc.agentKills)
	})
	tr.run("aggregator", func() error {
		return killLoop(t, aggSeed, "aggregator", agg.proc, agg.http, start, sc.run, sc.aggKills)
	})
	tr.run("elasticsearch", func() error {
		return esChaos(t, esSeed, e.es, start, sc.run, sc.esStop)
	})
	written := w.wait(t)
	tr.wait(t)
	t.Logf("chaos over after %s: %d lines written; agent started %d times, aggregator %d times",
		time.Since(start).Round(time.Second), written, agent.proc.Runs(), agg.proc.Runs())

	// Stop everything with SIGTERM, start it again and let it finish.
	checkAlive(t, agent.proc, agg.proc)
	stopAll(t, agent.proc, agg.proc)
	agg.start(t)
	agent.start(t)
	finish(t, e.esc, e.node, written, sc.drain, w, agent.http, []*aggregator{agg})
	stopAll(t, agent.proc, agg.proc)
}

// TestChaosTwoReplicas: two aggregators, each with its own disk buffer, on
// two loopback ports, and one agent given both addresses
// (aggregator.addresses, balanced by the agent as it does over a headless
// Service's dns:/// name). The replicas are killed with SIGKILL in turn, so
// that the agent's stream breaks and it reconnects to the other one while
// the killed one restarts and delivers what its buffer holds.
func TestChaosTwoReplicas(t *testing.T) {
	e := newEnv(t)
	sc, rng := e.sc, e.rng

	aggs := []*aggregator{
		newAggregator(t, e, "aggregator-a"),
		newAggregator(t, e, "aggregator-b"),
	}
	agent := newAgent(t, e, "", aggs[0].listen, aggs[1].listen)
	// Events each replica acknowledged, summed over its runs.
	var served [2]uint64
	addServed := func(i int) {
		if v, err := harness.AggregatorAcked(aggs[i].http); err == nil {
			served[i] += v
		}
	}
	harness.LogTailsOnFailure(t, agent.proc, aggs[0].proc, aggs[1].proc)

	w := startWriter(t, e.root, sc.files, sc.replicaRun, sc.linesPerSec, sc.rotateEvery)
	start := time.Now()
	// The kills end at 85% of the run, so that the agent has lines to
	// ship after the last one.
	kills := 2 * sc.replicaKills
	slot := sc.replicaRun * 85 / 100 / time.Duration(kills)
	for k := range kills {
		a := aggs[k%2]
		at := time.Duration(k)*slot + time.Duration(float64(slot)*(0.2+0.3*rng.Float64()))
		sleepUntil(start.Add(at)) // the chaos schedule: pacing, not synchronisation
		before, _ := harness.AgentAcked(agent.http)
		addServed(k % 2)
		a.proc.Kill9()
		pause := time.Duration(300+rng.IntN(2700)) * time.Millisecond
		t.Logf("%s: %s killed with SIGKILL (%d/%d); restart in %s", since(start), a.name, k/2+1, sc.replicaKills, pause)
		time.Sleep(pause) // the chaos schedule
		a.start(t)
		// The agent must be shipping again (through either replica) before
		// the next kill.
		harness.WaitFor(t, time.Minute, "the agent to get acks again after the kill", func() bool {
			v, err := harness.AgentAcked(agent.http)
			return err == nil && v > before
		})
	}
	written := w.wait(t)
	addServed(0)
	addServed(1)
	t.Logf("chaos over after %s: %d lines written; events acknowledged by %s %d, by %s %d",
		time.Since(start).Round(time.Second), written, aggs[0].name, served[0], aggs[1].name, served[1])
	if served[0] == 0 || served[1] == 0 {
		t.Errorf("the agent did not use both replicas: %v events acknowledged", served)
	}

	checkAlive(t, agent.proc, aggs[0].proc, aggs[1].proc)
	stopAll(t, agent.proc, aggs[0].proc, aggs[1].proc)
	aggs[0].start(t)
	aggs[1].start(t)
	agent.start(t)
	finish(t, e.esc, e.node, written, sc.drain, w, agent.http, aggs)
	stopAll(t, agent.proc, aggs[0].proc, aggs[1].proc)
}

// aggregator is one aggregator process with an Elasticsearch sink behind a
// disk buffer (acked once durable in <name>-buffer/, delivered from there).
type aggregator struct {
	name, listen, http string
	proc               *harness.Proc
}

func newAggregator(t *testing.T, e *env, name string) *aggregator {
	t.Helper()
	a := &aggregator{name: name, listen: harness.FreePort(t), http: harness.FreePort(t)}
	path := filepath.Join(e.root, name+".yaml")
	harness.ESAggregatorConfig{
		Listen: a.listen, HTTP: a.http, URL: e.es.URL,
		BufferDir: filepath.Join(e.root, name+"-buffer"), BufferMaxBytes: "1GiB", BufferSegmentBytes: "4MiB",
		SinkBuffer: "disk",
	}.Write(t, path)
	a.proc = harness.StartProcLog(t, filepath.Join(e.logs, name+".log"), "aggregator", "--config", path)
	harness.WaitHealthy(t, a.name, a.http)
	return a
}

func (a *aggregator) start(t *testing.T) {
	t.Helper()
	a.proc.Start()
	harness.WaitHealthy(t, a.name, a.http)
}

type agent struct {
	http string
	proc *harness.Proc
}

// newAgent starts an agent shipping to address, or to the replicas at
// addresses when given.
func newAgent(t *testing.T, e *env, address string, addresses ...string) *agent {
	t.Helper()
	a := &agent{http: harness.FreePort(t)}
	path := filepath.Join(e.root, "agent.yaml")
	harness.AgentConfig{
		Node: e.node, Root: e.root, HTTP: a.http, Address: address, Addresses: addresses,
		PollInterval: "100ms", GlobInterval: "250ms",
	}.Write(t, path)
	a.proc = harness.StartProcLog(t, filepath.Join(e.logs, "agent.log"), "agent", "--config", path)
	harness.WaitHealthy(t, "agent", a.http)
	return a
}

func (a *agent) start(t *testing.T) {
	t.Helper()
	a.proc.Start()
	harness.WaitHealthy(t, "agent", a.http)
}

// checkAlive fails the test for every process that exited on its own
// (crashed) since it was last started.
func checkAlive(t *testing.T, procs ...*harness.Proc) {
	t.Helper()
	for _, p := range procs {
		if exited, err := p.Exited(); exited {
			t.Errorf("%s exited on its own (start %d): %v", filepath.Base(p.Log), p.Runs(), err)
		}
	}
}

// stopAll stops the processes with SIGTERM, in order, each within 60 s;
// each must exit cleanly.
func stopAll(t *testing.T, procs ...*harness.Proc) {
	t.Helper()
	harness.StopAll(t, 60*time.Second, procs...)
}

// writer writes numbered lines (harness.Line) into container log files at a
// steady rate, round robin, rotating each file every rotateEvery lines (by
// rename or copytruncate, alternately per file); the files' rotations are
// spread evenly over each rotateEvery lines, not all at once.
type writer struct {
	pods []*harness.PodFile
	done chan error
}

func startWriter(t *testing.T, root string, files int, run time.Duration, perSec, rotateEvery int) *writer {
	t.Helper()
	w := &writer{pods: harness.NewPodFiles(t, root, files), done: make(chan error, 1)}
	const tick = 50 * time.Millisecond
	perTick := max(1, perSec*int(tick)/int(time.Second))
	go func() {
		w.done <- func() error {
			tk := time.NewTicker(tick)
			defer tk.Stop()
			end := time.Now().Add(run)
			n := 0
			for time.Now().Before(end) {
				<-tk.C // pacing of the writer, not synchronisation
				for range perTick {
					i := n % files
					p := w.pods[i]
					if err := p.TryWrite(i, p.Written); err != nil {
						return err
					}
					if (p.Written+i*rotateEvery/files)%rotateEvery == 0 {
						if err := p.TryRotate(); err != nil {
							return err
						}
					}
					n++
				}
			}
			return nil
		}()
	}()
	return w
}

// wait waits for the writer to finish and returns the lines written.
func (w *writer) wait(t *testing.T) int {
	t.Helper()
	if err := <-w.done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	n := 0
	for _, p := range w.pods {
		n += p.Written
	}
	return n
}

// tracks runs parts of the chaos schedule side by side.
type tracks struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []string
}

func (tr *tracks) run(name string, f func() error) {
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		if err := f(); err != nil {
			tr.mu.Lock()
			tr.errs = append(tr.errs, name+": "+err.Error())
			tr.mu.Unlock()
		}
	}()
}

func (tr *tracks) wait(t *testing.T) {
	t.Helper()
	tr.wg.Wait()
	if len(tr.errs) > 0 {
		t.Fatalf("chaos schedule: %s", strings.Join(tr.errs, "; "))
	}
}

func since(start time.Time) string { return time.Since(start).Round(100 * time.Millisecond).String() }

// sleepUntil sleeps until t: the chaos schedule is paced by the clock.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// killLoop kills p with SIGKILL n times, once at a random moment of each
// n-th of run, and restarts it after a random pause of 0.3 to 3 s; it
// returns once p is healthy after the last restart. It runs beside the test
// goroutine, so it returns errors instead of failing the test.
func killLoop(t *testing.T, seed uint64, name string, p *harness.Proc, httpAddr string, start time.Time, run time.Duration, n int) error {
	rng := rand.New(rand.NewPCG(seed, seed))
	slot := run / time.Duration(n)
	for k := range n {
		at := time.Duration(k)*slot + time.Duration(float64(slot)*(0.1+0.6*rng.Float64()))
		pause := time.Duration(300+rng.IntN(2700)) * time.Millisecond
		sleepUntil(start.Add(at)) // the chaos schedule: pacing, not synchronisation
		p.Kill9()
		t.Logf("%s: %s killed with SIGKILL (%d/%d); restart in %s", since(start), name, k+1, n, pause)
		time.Sleep(pause) // the chaos schedule
		if err := p.TryStart(); err != nil {
			return err
		}
		if !harness.Poll(30*time.Second, 100*time.Millisecond, func() bool { return harness.Healthy(httpAddr) }) {
			return fmt.Errorf("%s not healthy 30 s after restart %d", name, k+1)
		}
	}
	return nil
}

// esChaos stops Elasticsearch with SIGSTOP at a random moment of the first
// third of run for stopFor, continues it, and kills it with SIGKILL and
// restarts it on the same data at a random moment between then and the end
// of run.
func esChaos(t *testing.T, seed uint64, es *harness.PrivateES, start time.Time, run, stopFor time.Duration) error {
	rng := rand.New(rand.NewPCG(seed, seed))
	stopAt := time.Duration(float64(run) * (0.1 + 0.2*rng.Float64()))
	sleepUntil(start.Add(stopAt)) // the chaos schedule
	pid, err := es.Signal(syscall.SIGSTOP)
	if err != nil {
		return err
	}
	t.Logf("%s: Elasticsearch (pid %d) stopped with SIGSTOP for %s", since(start), pid, stopFor)
	time.Sleep(stopFor) // the chaos schedule
	if _, err := es.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	t.Logf("%s: Elasticsearch continued with SIGCONT", since(start))

	from := stopAt + stopFor + 5*time.Second
	killAt := from + time.Duration(float64(max(run-from, 0))*(0.3+0.5*rng.Float64()))
	sleepUntil(start.Add(killAt)) // the chaos schedule
	t.Logf("%s: Elasticsearch killed with SIGKILL and restarted on its data", since(start))
	began := time.Now()
	if err := es.Restart(); err != nil {
		return err
	}
	t.Logf("%s: Elasticsearch yellow again after %s", since(start), time.Since(began).Round(100*time.Millisecond))
	return nil
}

// finish waits until Elasticsearch holds at least written documents of
// node, then reads them all and checks that every line written is there
// exactly once: it logs and prints the summary line
// "written=N indexed=N lost=N duplicated=N" and fails unless lost and
// duplicated are 0.
func finish(t *testing.T, esc *harness.ESClient, node string, written int, drain time.Duration, w *writer, agentHTTP string, aggs []*aggregator) {
	t.Helper()
	if d, ok := t.Deadline(); ok && time.Until(d)-time.Minute < drain {
		drain = max(time.Until(d)-time.Minute, 10*time.Second)
	}
	began := time.Now()
	var n int
	var err error
	if !harness.Poll(drain, 2*time.Second, func() bool {
		n, err = esc.TryCount("logs-*", harness.TermQuery("host.name", node))
		return err == nil && n >= written
	}) {
		acked, aerr := harness.AgentAcked(agentHTTP)
		t.Errorf("after %s Elasticsearch holds %d documents of %d lines written (last error: %v); the restarted agent has %d acked (%v)",
			drain, n, written, err, acked, aerr)
		for _, a := range aggs {
			v, err := harness.AggregatorAcked(a.http)
			t.Logf("%s: %d events acked since its restart (%v)", a.name, v, err)
		}
	} else {
		t.Logf("all %d lines in Elasticsearch %s after the restart", written, time.Since(began).Round(100*time.Millisecond))
	}

	docs := esc.NodeDocs("logs-*", node)
	perFile := make([]int, len(w.pods))
	for i, p := range w.pods {
		perFile[i] = p.Written
	}
	seen := make(map[[2]int]int, written)
	bad, parsed := 0, 0
	for _, d := range docs {
		f, s, ok := harness.ParseLine(d.Source.Message)
		switch {
		case !ok:
			if bad++; bad <= 5 {
				t.Errorf("unexpected message %q in %s", d.Source.Message, d.Index)
			}
			continue
		case f >= len(perFile) || s >= perFile[f]:
			if bad++; bad <= 5 {
				t.Errorf("document for a line never written: file=%d seq=%d", f, s)
			}
		case d.ID != d.Source.Event.ID:
			if bad++; bad <= 5 {
				t.Errorf("document _id %s differs from its event.id %s", d.ID, d.Source.Event.ID)
			}
		}
		seen[[2]int{f, s}]++
		parsed++
	}
	var missing, dups []string
	lost := 0
	for f, nf := range perFile {
		for s := range nf {
			switch c := seen[[2]int{f, s}]; {
			case c == 0:
				lost++
				if len(missing) < 10 {
					missing = append(missing, fmt.Sprintf("%d/%d", f, s))
				}
			case c > 1 && len(dups) < 10:
				dups = append(dups, fmt.Sprintf("%d/%d×%d", f, s, c))
			}
		}
	}
	// Documents whose message is not a line are errors of their own; of
	// the others, every one beyond the first of its (file, seq) is a
	// duplicate.
	duplicated := parsed - len(seen)
	summary := fmt.Sprintf("written=%d indexed=%d lost=%d duplicated=%d", written, len(docs), lost, duplicated)
	t.Log(summary)
	fmt.Println(summary)
	if lost > 0 {
		t.Errorf("%d lines lost, e.g. file/seq %v", lost, missing)
	}
	if duplicated > 0 {
		t.Errorf("%d documents are duplicates, e.g. %v", duplicated, dups)
	}
	if lost > 0 {
		for f, p := range w.pods {
			if r := missingRanges(seen, f, p.Written); r != "" {
				t.Logf("file %d (copytruncate=%v, %d rotations, %d lines): missing seq %s", f, p.Copytruncate, p.Rotations, p.Written, r)
			}
		}
	}
}

// missingRanges lists the seq ranges of file f below n missing in seen,
// e.g. "806-1627 2900", at most 8 of them.
func missingRanges(seen map[[2]int]int, f, n int) string {
	var out []string
	for s := 0; s < n && len(out) < 8; s++ {
		if seen[[2]int{f, s}] > 0 {
			continue
		}
		e := s
		for e+1 < n && seen[[2]int{f, e + 1}] == 0 {
			e++
		}
		if e == s {
			out = append(out, strconv.Itoa(s))
		} else {
			out = append(out, fmt.Sprintf("%d-%d", s, e))
		}
		s = e
	}
	return strings.Join(out, " ")
}
