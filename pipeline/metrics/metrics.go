// Package metrics samples the node the agent runs on (CPU, load, memory,
// swap, filesystems, disk I/O, network, uptime; gopsutil over the host's
// /proc and /sys) and its Kubernetes containers (cgroup v2, v1 as a
// fallback) at a fixed interval aligned to the clock, and turns each cycle
// into KIND_METRIC events under Metricbeat's field names, handed on through
// a bounded queue that drops the oldest cycle when the shipper is behind.
//
// One file per metric set, each a collector. Rates come from counters
// (counters.go): the first sample of a series has no rate, and neither has
// an interval over which a counter went down (reset, wrap, device re-added).
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"sync/atomic"
	"time"

	"github.com/shirou/gopsutil/v4/common"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// The metric sets and the defaults of what they leave out are the
// configuration's (config.MetricSets and the others).
var (
	Sets                     = config.MetricSets
	DefaultSets              = config.DefaultMetricSets
	DefaultExcludeMountTypes = config.DefaultExcludeMountTypes
	DefaultExcludeInterfaces = config.DefaultExcludeInterfaces
)

// DefaultQueueCycles is how many sampled cycles wait for the shipper at
// most (10 minutes at the default interval); older ones are dropped.
const DefaultQueueCycles = 60

// Config says what to sample and how often.
type Config struct {
	Node     string        // host.name and the events' ids
	Interval time.Duration // default 10s
	// HostRoot is where the host's / is mounted (its proc, sys and mount
	// points below it); empty: this machine's own.
	HostRoot string
	Sets     []string // default DefaultSets
	// CgroupRoot is the cgroup hierarchy the containers set reads;
	// default <HostRoot>/sys/fs/cgroup.
	CgroupRoot        string
	ExcludeMountTypes []string // default DefaultExcludeMountTypes
	ExcludeInterfaces []string // regular expressions; default DefaultExcludeInterfaces
	// Environment is the data stream namespace of node metrics
	// (default "default"). Container metrics get their pod's, from
	// enrichment.
	Environment string
	QueueCycles int // default DefaultQueueCycles
	// Pods, if not nil, names the pods of the containers set by uid (the
	// agent's Kubernetes metadata, pipeline/kube), so that their events
	// carry namespace and pod name as the pods' lines do and are enriched
	// alike. Each lookup gets at most PodLookupTimeout.
	Pods PodNamer
}

// PodNamer finds a pod's metadata by its uid (k.PodUid); nil if unknown.
type PodNamer interface {
	Pod(ctx context.Context, k *ferryv1.Kubernetes) *ferryv1.Pod
}

// PodLookupTimeout bounds the wait for one pod's metadata in a cycle: a
// pod the metadata does not know yet is sent with its uid only.
const PodLookupTimeout = 100 * time.Millisecond

// collector samples one metric set.
type collector interface {
	// collect appends the events of one sample to c.
	collect(ctx context.Context, c *cycle) error
}

// Sampler samples the configured sets every interval.
type Sampler struct {
	cfg   Config
	env   common.EnvMap // nil: this machine's own /proc and /sys
	names []string
	sets  []collector
	q     *queue
	log   *slog.Logger
	cores int

	cycles  atomic.Uint64
	skipped atomic.Uint64 // ticks not sampled because a cycle ran late
	errors  atomic.Uint64
	lastDur atomic.Int64
}

// New returns a sampler for cfg, with defaults applied.
func New(cfg Config, log *slog.Logger) (*Sampler, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Sets == nil {
		cfg.Sets = DefaultSets
	}
	if cfg.ExcludeMountTypes == nil {
		cfg.ExcludeMountTypes = DefaultExcludeMountTypes
	}
	if cfg.ExcludeInterfaces == nil {
		cfg.ExcludeInterfaces = DefaultExcludeInterfaces
	}
	if cfg.Environment == "" {
		cfg.Environment = "default"
	}
	if cfg.QueueCycles <= 0 {
		cfg.QueueCycles = DefaultQueueCycles
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = filepath.Join(cfg.HostRoot, "/sys/fs/cgroup")
	}
	s := &Sampler{cfg: cfg, q: newQueue(cfg.QueueCycles), log: log}
	if cfg.HostRoot != "" {
		s.env = hostEnv(cfg.HostRoot)
	}
	s.cores = s.countCores()
	var ifExcl []*regexp.Regexp
	for _, p := range cfg.ExcludeInterfaces {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("metrics: exclude_interfaces %q: %w", p, err)
		}
		ifExcl = append(ifExcl, re)
	}
	for _, name := range Sets {
		if !slices.Contains(cfg.Sets, name) {
			continue
		}
		var c collector
		switch name {
		case "cpu":
			c = &cpuSet{s: s}
		case "core":
			c = &coreSet{s: s}
		case "load":
			c = &loadSet{s: s}
		case "memory":
			c = &memorySet{}
		case "swap":
			c = &swapSet{}
		case "filesystem":
			c = &filesystemSet{s: s, exclude: cfg.ExcludeMountTypes}
		case "diskio":
			c = &diskioSet{}
		case "network":
			c = &networkSet{exclude: ifExcl}
		case "uptime":
			c = uptimeSet{s: s}
		case "containers":
			c = &containerSet{s: s, root: cfg.CgroupRoot, names: newLogNames(cfg.HostRoot)}
		}
		s.names = append(s.names, name)
		s.sets = append(s.sets, c)
	}
	for _, name := range cfg.Sets {
		if !slices.Contains(Sets, name) {
			return nil, fmt.Errorf("metrics: unknown metric set %q (known: %v)", name, Sets)
		}
	}
	return s, nil
}

// hostEnv is gopsutil's environment for a host mounted at root, as
// HOST_PROC, HOST_SYS, HOST_ROOT and the others would set it.
func hostEnv(root string) common.EnvMap {
	return common.EnvMap{
		common.HostProcEnvKey: filepath.Join(root, "proc"),
		common.HostSysEnvKey:  filepath.Join(root, "sys"),
		common.HostEtcEnvKey:  filepath.Join(root, "etc"),
		common.HostVarEnvKey:  filepath.Join(root, "var"),
		common.HostRunEnvKey:  filepath.Join(root, "run"),
		common.HostDevEnvKey:  filepath.Join(root, "dev"),
		common.HostRootEnvKey: root,
	}
}

// context returns ctx carrying the host's environment for gopsutil.
func (s *Sampler) context(ctx context.Context) context.Context {
	if s.env == nil {
		return ctx
	}
	return context.WithValue(ctx, common.EnvKey, s.env)
}

// proc returns the path of name under the host's /proc.
func (s *Sampler) proc(name string) string {
	if p := s.env[common.HostProcEnvKey]; p != "" {
		return filepath.Join(p, name)
	}
	return filepath.Join("/proc", name)
}

// Samples returns the channel the sampled cycles come out of, oldest first.
// The shipper calls each Sample's Done once it is acknowledged.
func (s *Sampler) Samples() <-chan *event.Sample { return s.q.out }

// Counters returns the sampler's counters by name.
func (s *Sampler) Counters() map[string]uint64 {
	return map[string]uint64{
		"ferry_agent_metric_cycles_total":          s.cycles.Load(),
		"ferry_agent_metric_cycles_skipped_total":  s.skipped.Load(),
		"ferry_agent_metric_errors_total":          s.errors.Load(),
		"ferry_agent_metric_samples_dropped_total": s.q.dropped.Load(),
		"ferry_agent_metric_samples_queued":        uint64(s.q.len()),
		"ferry_agent_metric_cycle_micros":          uint64(s.lastDur.Load() / 1e3),
	}
}

// Run samples every interval, on multiples of it since the epoch, until ctx
// ends. A cycle that starts late (the machine was busy) is sampled once,
// at the time it runs; the ticks it missed are not caught up.
func (s *Sampler) Run(ctx context.Context) error {
	go s.q.pump(ctx)
	s.log.Info("sampling metrics", "interval", s.cfg.Interval, "sets", s.names, "host_root", s.cfg.HostRoot, "cgroup_root", s.cfg.CgroupRoot)
	due := nextTick(time.Now(), s.cfg.Interval)
	timer := time.NewTimer(time.Until(due))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		start := time.Now()
		evs := s.Collect(ctx, start)
		s.lastDur.Store(int64(time.Since(start)))
		if len(evs) > 0 {
			s.q.push(&event.Sample{Events: evs})
		}
		next, missed := schedule(due, time.Now(), s.cfg.Interval)
		s.skipped.Add(uint64(missed))
		due = next
		timer.Reset(time.Until(next))
	}
}

// nextTick returns the first multiple of interval after t.
func nextTick(t time.Time, interval time.Duration) time.Time {
	return t.Truncate(interval).Add(interval)
}

// schedule returns when the cycle after the one due at due, which ended at
// end, runs: the first tick after end. missed counts the ticks after due
// and before next that are not sampled (the cycle ran late or long).
func schedule(due, end time.Time, interval time.Duration) (next time.Time, missed int) {
	next = nextTick(end, interval)
	return next, max(int(next.Sub(due)/interval)-1, 0)
}

// Collect samples every set once, at t, and returns the events. A set that
// fails is logged at debug level and counted; the others are kept.
func (s *Sampler) Collect(ctx context.Context, t time.Time) []*ferryv1.Event {
	c := &cycle{node: s.cfg.Node, env: s.cfg.Environment, t: t}
	gctx := s.context(ctx)
	for i, set := range s.sets {
		if err := set.collect(gctx, c); err != nil {
			s.errors.Add(1)
			s.log.Debug("metric set failed", "set", s.names[i], "err", err)
		}
	}
	s.cycles.Add(1)
	return c.out
}

// cycle is one sampling cycle: its time and the events made so far.
type cycle struct {
	node string
	env  string
	t    time.Time
	out  []*ferryv1.Event
}

// emit adds the event of one series: dataset (system.cpu,
// kubernetes.container, ...), series (what tells it apart from the other
// series of its dataset on this node: a mount point, a container id; "" for
// a node-wide set), kube (nil for node metrics) and its metric fields.
// Node metrics go to the configured environment; container metrics to
// their pod's, which enrichment sets.
func (c *cycle) emit(dataset, series string, kube *ferryv1.Kubernetes, fields map[string]*ferryv1.Value) {
	ts := c.t.UnixNano()
	fields["data_stream.dataset"] = event.Str(dataset)
	if kube == nil {
		fields["data_stream.namespace"] = event.Str(c.env)
	}
	c.out = append(c.out, &ferryv1.Event{
		Id:           event.MetricID(nil, c.node, dataset, series, ts),
		TimeUnixNano: ts,
		Kind:         ferryv1.Kind_KIND_METRIC,
		Kubernetes:   kube,
		Fields:       fields,
	})
}

func (s *Sampler) countCores() int {
	n, err := cpuCount(s.context(context.Background()))
	if err != nil || n <= 0 {
		return 1
	}
	return n
}
