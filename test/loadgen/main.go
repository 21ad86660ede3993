// Command loadgen simulates many Ferry agents against one aggregator or a
// set of replicas, for `make bench-scale` (test/bench-scale.sh).
//
// Each simulated agent is what a real agent on its own node would be: its
// own transport.Client (the agent's shipper: its own gRPC connection, or
// one per replica with a dns:/// target and round_robin, its window of
// unacknowledged batches, re-sends after RETRY acks and broken streams,
// backoff with jitter), its own node name, and events with real ids
// (pipeline/event.ID of node, file and offset), so a batch re-sent after a
// reconnect is deduplicated downstream like an agent's. Each stream ships a
// trickle: a batch of -events events every -interval, jittered by ±50%, the
// first one at a random moment within the first interval.
//
// Phases: the streams open over -ramp; once every client has a stream open
// it prints "READY open=N", stays idle for -idle (nothing is sent: the
// script measures the aggregator's memory with N idle streams), prints
// "TRICKLE", ships for -duration, prints the report and exits. Ack
// latencies (send to OK ack, as the agent's ferry_agent_ack_latency_seconds
// measures them) are recorded per stream after -warmup of the trickle.
//
// The report: per-stream ack latency percentiles (the median over streams
// of each stream's p50, the slowest stream's p50 and p99, their ratio),
// events acknowledged per replica (from a gRPC stats handler that sees on
// which connection each OK ack came back), per window of -window and in
// total, and the generator's own CPU seconds.
//
//	loadgen -target 127.0.0.1:18400 -streams 1000 -interval 1s -events 4 -duration 60s
//	loadgen -target dns:///ferry-scale.test:18400 -streams 1000 ...
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"

	"github.com/ferrylogs/ferry/ops"
	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	target   string
	streams  int
	interval time.Duration
	events   int
	msgBytes int
	ramp     time.Duration
	idle     time.Duration
	duration time.Duration
	warmup   time.Duration
	window   time.Duration
	node     string
	verbose  bool
}

func run() error {
	var o options
	flag.StringVar(&o.target, "target", "127.0.0.1:18400", "aggregator address: host:port or dns:///name:port")
	flag.IntVar(&o.streams, "streams", 1000, "simulated agents, one client (connection, stream) each")
	flag.DurationVar(&o.interval, "interval", time.Second, "mean time between two batches of one stream (jittered ±50%)")
	flag.IntVar(&o.events, "events", 4, "events per batch")
	flag.IntVar(&o.msgBytes, "msg-bytes", 120, "bytes of each event's message")
	flag.DurationVar(&o.ramp, "ramp", 10*time.Second, "time over which the clients start")
	flag.DurationVar(&o.idle, "idle", 0, "time to hold every stream open and idle before the trickle")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "time of the trickle")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "start of the trickle whose ack latencies are not recorded")
	flag.DurationVar(&o.window, "window", 10*time.Second, "window of the per-replica event counts")
	flag.StringVar(&o.node, "node-prefix", "scale-node", "node names are PREFIX-NNNN")
	flag.BoolVar(&o.verbose, "v", false, "log the clients' warnings (reconnects, refused streams)")
	flag.Parse()
	if o.streams <= 0 || o.events <= 0 || o.interval <= 0 {
		return fmt.Errorf("-streams, -events and -interval must be positive")
	}
	// Every connection is a descriptor; with dns:/// and round_robin one
	// per replica and simulated agent.
	fl, err := ops.RaiseFileLimit()
	if err != nil {
		return err
	}
	fmt.Printf("loadgen: target=%s streams=%d interval=%v events=%d msg_bytes=%d open_files_limit=%d\n",
		o.target, o.streams, o.interval, o.events, o.msgBytes, fl.Soft)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	level := slog.LevelError
	if o.verbose {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	rep := newReplicas()
	agents := make([]*agent, o.streams)
	runCtx, stopClients := context.WithCancel(context.Background())
	defer stopClients()
	var clientsDone sync.WaitGroup
	start := time.Now()
	for i := range agents {
		a, err := newAgent(i, o, rep, log)
		if err != nil {
			return err
		}
		agents[i] = a
		clientsDone.Add(1)
		go func() {
			defer clientsDone.Done()
			if err := a.client.RunWithSamples(runCtx, nil, a.samples); err != nil {
				log.Error("client ended", "node", a.node, "err", err)
			}
		}()
		// Spread the connections over the ramp, as agents starting.
		if o.ramp > 0 {
			if !sleep(ctx, time.Until(start.Add(o.ramp*time.Duration(i+1)/time.Duration(o.streams)))) {
				break
			}
		}
	}
	shutdown := func() {
		stopClients()
		clientsDone.Wait()
		for _, a := range agents {
			if a != nil {
				a.client.Close()
			}
		}
	}
	defer shutdown()
	// Every client has its stream open: the idle phase.
	for {
		n := 0
		for _, a := range agents {
			if a != nil && a.client.Connected() {
				n++
			}
		}
		if n == len(agents) {
			fmt.Printf("READY open=%d after=%.1fs\n", n, time.Since(start).Seconds())
			break
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("interrupted with %d of %d streams open", n, len(agents))
		}
	}
	if !sleep(ctx, o.idle) {
		return nil
	}
	fmt.Printf("TRICKLE duration=%v\n", o.duration)
	trickle := time.Now()
	recordFrom := trickle.Add(o.warmup)
	end := trickle.Add(o.duration)
	var producers sync.WaitGroup
	for _, a := range agents {
		a.recordFrom = recordFrom
		producers.Add(1)
		go func() { defer producers.Done(); a.produce(ctx, end, o) }()
	}
	// Per-replica counts per window, printed as they close.
	windows := rep.watch(ctx, o.window, end)
	producers.Wait()
	// The last batches' acks, before the report.
	for wait := time.Now().Add(5 * time.Second); time.Now().Before(wait); {
		var sent int64
		for _, a := range agents {
			sent += a.sent.Load()
		}
		if rep.total() >= sent || !sleep(ctx, 50*time.Millisecond) {
			break
		}
	}
	<-windows
	report(agents, rep, o)
	return nil
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// agent is one simulated agent: a client, its node, its event source.
type agent struct {
	node    string
	client  *transport.Client
	samples chan *event.Sample
	offset  int64
	msg     []byte

	recordFrom time.Time
	mu         sync.Mutex
	latencies  []float64   // seconds, OK acks after recordFrom
	ackedAt    []int64     // the Unix second each of them came in
	slow       []time.Time // when the acks over slowAck came
	sent       atomic.Int64
}

func newAgent(i int, o options, rep *replicas, log *slog.Logger) (*agent, error) {
	a := &agent{
		node:    fmt.Sprintf("%s-%04d", o.node, i),
		samples: make(chan *event.Sample),
		msg:     []byte(strings.Repeat("x", o.msgBytes)),
	}
	c, err := transport.NewClient(transport.ClientConfig{
		Address:     o.target,
		Node:        a.node,
		MaxInflight: 4,
		// A trickle's batches are small: builders sized for them. With
		// the agent's defaults (2048 events, 1 MiB) each client would
		// preallocate about 1.6 MB per batch of its window, some 6 GB
		// of heap for 1,000 clients, whose GC would load the machine
		// and stall every stream the report measures.
		BatchMaxEvents:  max(4*o.events, 64),
		BatchMaxBytes:   max(4*o.events*(o.msgBytes+256), 16<<10),
		BatchTimeout:    10 * time.Millisecond,
		BackoffInitial:  100 * time.Millisecond,
		BackoffMax:      5 * time.Second,
		ShutdownTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithStatsHandler(rep),
		},
		AckLatency: a,
	}, nil, log)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", a.node, err)
	}
	a.client = c
	return a, nil
}

// Observe records one ack latency (transport.Observer).
func (a *agent) Observe(sec float64) {
	if time.Now().Before(a.recordFrom) {
		return
	}
	a.mu.Lock()
	a.latencies = append(a.latencies, sec)
	a.ackedAt = append(a.ackedAt, time.Now().Unix())
	if sec > slowAck.Seconds() {
		a.slow = append(a.slow, time.Now())
	}
	a.mu.Unlock()
}

// slowAck is the ack latency from which the report says when acks came:
// in bursts across streams (the process or machine stalled) or spread.
const slowAck = 100 * time.Millisecond

// produce hands the client a batch of events every interval (±50%) until
// end; the first one at a random moment within the first interval.
func (a *agent) produce(ctx context.Context, end time.Time, o options) {
	next := time.Now().Add(time.Duration(rand.Int64N(int64(o.interval))))
	for {
		if next.After(end) || !sleep(ctx, time.Until(next)) {
			return
		}
		evs := make([]*ferryv1.Event, o.events)
		now := time.Now().UnixNano()
		for j := range evs {
			evs[j] = &ferryv1.Event{
				Id:           event.ID(nil, a.node, "loadgen", a.offset),
				TimeUnixNano: now,
				Message:      a.msg,
				Stream:       ferryv1.StreamName_STREAM_STDOUT,
				Kind:         ferryv1.Kind_KIND_LOG,
				Source:       &ferryv1.Source{Path: "/var/log/containers/loadgen.log", Offset: a.offset, Input: "loadgen", FileId: "loadgen"},
				Kubernetes:   &ferryv1.Kubernetes{Namespace: "scale", Pod: a.node, Container: "loadgen"},
			}
			a.offset += int64(len(a.msg)) + 1
		}
		select {
		case a.samples <- &event.Sample{Events: evs}:
			a.sent.Add(int64(len(evs)))
		case <-ctx.Done():
			return
		}
		next = next.Add(o.interval/2 + time.Duration(rand.Int64N(int64(o.interval))))
	}
}

// replicas counts the events acknowledged OK per server address: a gRPC
// stats handler on every client sees each batch go out and each ack come
// back on its stream, and the stream's remote address.
type replicas struct {
	mu     sync.Mutex
	acked  map[string]int64
	window map[string]int64
}

func newReplicas() *replicas {
	return &replicas{acked: map[string]int64{}, window: map[string]int64{}}
}

func (r *replicas) total() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, v := range r.acked {
		n += v
	}
	return n
}

type rpcKey struct{}

// rpcState is one stream's: its remote address and the events of each
// batch sent on it and not answered yet.
type rpcState struct {
	mu     sync.Mutex
	addr   string
	events map[uint64]int
}

func (r *replicas) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, rpcKey{}, &rpcState{events: map[uint64]int{}})
}

func (r *replicas) HandleRPC(ctx context.Context, s stats.RPCStats) {
	st, _ := ctx.Value(rpcKey{}).(*rpcState)
	if st == nil {
		return
	}
	switch s := s.(type) {
	case *stats.OutHeader:
		if s.RemoteAddr != nil {
			st.mu.Lock()
			st.addr = s.RemoteAddr.String()
			st.mu.Unlock()
		}
	case *stats.OutPayload:
		if b, ok := s.Payload.(*ferryv1.Batch); ok {
			st.mu.Lock()
			st.events[b.Seq] = len(b.Events)
			st.mu.Unlock()
		}
	case *stats.InPayload:
		a, ok := s.Payload.(*ferryv1.Ack)
		if !ok {
			return
		}
		st.mu.Lock()
		n, addr := st.events[a.Seq], st.addr
		delete(st.events, a.Seq)
		st.mu.Unlock()
		if a.Code == ferryv1.Ack_CODE_OK && n > 0 {
			r.mu.Lock()
			r.acked[addr] += int64(n)
			r.window[addr] += int64(n)
			r.mu.Unlock()
		}
	}
}

func (r *replicas) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (r *replicas) HandleConn(context.Context, stats.ConnStats)                       {}

// watch prints the events acknowledged per replica in each window until
// end; the returned channel closes after the last one.
func (r *replicas) watch(ctx context.Context, every time.Duration, end time.Time) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t0 := time.Now()
		for {
			more := sleep(ctx, min(every, time.Until(end)))
			r.mu.Lock()
			w := r.window
			r.window = map[string]int64{}
			r.mu.Unlock()
			fmt.Printf("window t=%4.0fs %s\n", time.Since(t0).Seconds(), shares(w))
			if !more || !time.Now().Before(end) {
				return
			}
		}
	}()
	return done
}

// shares formats per-address counts with each one's deviation from their
// mean: "addr=n (+d%) ... spread=±m%".
func shares(m map[string]int64) string {
	addrs := make([]string, 0, len(m))
	var total int64
	for a, n := range m {
		addrs = append(addrs, a)
		total += n
	}
	sort.Strings(addrs)
	if len(addrs) == 0 {
		return "no acks"
	}
	mean := float64(total) / float64(len(addrs))
	var b strings.Builder
	worst := 0.0
	for _, a := range addrs {
		d := 100 * (float64(m[a]) - mean) / mean
		worst = max(worst, abs(d))
		fmt.Fprintf(&b, "%s=%d (%+.1f%%) ", a, m[a], d)
	}
	fmt.Fprintf(&b, "total=%d max_deviation=%.1f%%", total, worst)
	return b.String()
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// report prints the per-stream ack latency percentiles, the events per
// replica and the generator's own CPU.
func report(agents []*agent, r *replicas, o options) {
	var p50s, p99s []float64
	var all []float64
	var sent int64
	empty := 0
	slowest, slowestP50, slowestP99 := "", 0.0, 0.0
	slowBySec := map[int64]int{}
	slowStreams := 0
	for _, a := range agents {
		sent += a.sent.Load()
		a.mu.Lock()
		l := slices.Clone(a.latencies)
		for _, t := range a.slow {
			slowBySec[t.Unix()]++
		}
		if len(a.slow) > 0 {
			slowStreams++
		}
		a.mu.Unlock()
		if len(l) == 0 {
			empty++
			continue
		}
		slices.Sort(l)
		all = append(all, l...)
		p50, p99 := pct(l, 0.50), pct(l, 0.99)
		p50s = append(p50s, p50)
		p99s = append(p99s, p99)
		if p50 > slowestP50 {
			slowest, slowestP50, slowestP99 = a.node, p50, p99
		}
	}
	slices.Sort(p50s)
	slices.Sort(p99s)
	slices.Sort(all)
	ms := func(s float64) float64 { return s * 1000 }
	fmt.Printf("streams=%d with_acks=%d without_acks=%d batches_recorded=%d events_sent=%d\n",
		len(agents), len(p50s), empty, len(all), sent)
	if len(p50s) > 0 {
		med := pct(p50s, 0.5)
		over := func(sec float64) int { return len(all) - sort.SearchFloat64s(all, sec) }
		fmt.Printf("ack latency, all batches: p50=%.2fms p99=%.2fms p999=%.2fms max=%.2fms; over 100ms: %d, over 1s: %d\n",
			ms(pct(all, 0.5)), ms(pct(all, 0.99)), ms(pct(all, 0.999)), ms(all[len(all)-1]), over(0.1), over(1))
		fmt.Printf("ack latency per stream: median_p50=%.2fms p99_of_p50s=%.2fms median_p99=%.2fms max_p99=%.2fms\n",
			ms(med), ms(pct(p50s, 0.99)), ms(pct(p99s, 0.5)), ms(p99s[len(p99s)-1]))
		fmt.Printf("slowest stream: %s p50=%.2fms p99=%.2fms ratio_slowest_p50/median_p50=%.2f\n",
			slowest, ms(slowestP50), ms(slowestP99), slowestP50/med)
		fmt.Printf("SUMMARY median_p50_ms=%.3f slowest_p50_ms=%.3f slowest_p99_ms=%.3f ratio=%.2f max_p99_ms=%.3f without_acks=%d\n",
			ms(med), ms(slowestP50), ms(slowestP99), slowestP50/med, ms(p99s[len(p99s)-1]), empty)
	}
	if len(slowBySec) > 0 {
		secs := slices.Collect(maps.Keys(slowBySec))
		slices.SortFunc(secs, func(a, b int64) int { return slowBySec[b] - slowBySec[a] })
		var b strings.Builder
		n := 0
		for i, s := range secs {
			n += slowBySec[s]
			if i < 5 {
				fmt.Fprintf(&b, " %s:%d", time.Unix(s, 0).UTC().Format("15:04:05"), slowBySec[s])
			}
		}
		fmt.Printf("acks over %v: %d on %d streams, in %d distinct seconds; busiest seconds:%s\n", slowAck, n, slowStreams, len(secs), b.String())
	}
	stallAdjusted(agents)
	r.mu.Lock()
	fmt.Printf("events acked per replica, whole run: %s\n", shares(r.acked))
	r.mu.Unlock()
	if ut, st, err := cpuSeconds(); err == nil {
		fmt.Printf("loadgen cpu: user=%.2fs system=%.2fs\n", ut, st)
	}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("machine load average: %s", l) // a shared machine's latencies depend on it
	}
}

// stallAdjusted prints each stream's ack latency relative to that of all
// streams in the same second: every batch's latency divided by the median
// latency of the batches acknowledged in the second it was, and per
// stream the median of those ratios. A stall of the whole process or
// machine (GC, a saturated shared machine) raises every stream's latency
// in that second alike and leaves the ratios near 1; a stream the
// aggregator serves worse than the others (starved) stands out.
func stallAdjusted(agents []*agent) {
	bySec := map[int64][]float64{}
	for _, a := range agents {
		a.mu.Lock()
		for i, l := range a.latencies {
			bySec[a.ackedAt[i]] = append(bySec[a.ackedAt[i]], l)
		}
		a.mu.Unlock()
	}
	med := make(map[int64]float64, len(bySec))
	for s, l := range bySec {
		slices.Sort(l)
		med[s] = pct(l, 0.5)
	}
	var rel []float64
	worst, worstNode := 0.0, ""
	for _, a := range agents {
		a.mu.Lock()
		r := make([]float64, 0, len(a.latencies))
		for i, l := range a.latencies {
			if m := med[a.ackedAt[i]]; m > 0 {
				r = append(r, l/m)
			}
		}
		a.mu.Unlock()
		if len(r) == 0 {
			continue
		}
		slices.Sort(r)
		m := pct(r, 0.5)
		rel = append(rel, m)
		if m > worst {
			worst, worstNode = m, a.node
		}
	}
	if len(rel) == 0 {
		return
	}
	slices.Sort(rel)
	fmt.Printf("stall-adjusted (latency / median of the same second, median per stream): median stream %.2f, p99 stream %.2f, slowest %s %.2f; ratio slowest/median %.2f\n",
		pct(rel, 0.5), pct(rel, 0.99), worstNode, worst, worst/pct(rel, 0.5))
}

// pct returns the q quantile of sorted s (nearest rank).
func pct(s []float64, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// cpuSeconds returns the process's user and system CPU seconds.
func cpuSeconds() (float64, float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, err
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime), tv(ru.Stime), nil
}
