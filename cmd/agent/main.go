// Command agent tails container and plain log files on a node and ships them
// to the aggregator; see the README for its configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/ops"
	"github.com/ferrylogs/ferry/pipeline/budget"
	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/multiline"
	"github.com/ferrylogs/ferry/pipeline/tail"
	"github.com/ferrylogs/ferry/transport"
	"github.com/ferrylogs/ferry/transport/tlsconf"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: agent [run] [--config FILE]
       agent validate --config FILE

Without --config the agent runs with its embedded defaults.
`)
}

func run(args []string) int {
	cmd := "run"
	if len(args) > 0 && (args[0] == "run" || args[0] == "validate") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.Usage = usage
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var hup chan os.Signal
	if cmd == "run" {
		hup = ops.Hangups() // first: a SIGHUP while starting must not kill the agent
	}
	cfg := config.DefaultAgent()
	if *path != "" {
		var err error
		if cfg, err = config.LoadAgent(*path); err != nil {
			if cmd == "validate" {
				// Files the configuration names may live only on the
				// host it is meant for: warnings here, errors at start.
				out, ok := config.ValidateResult(*path, err)
				if ok {
					fmt.Print(out)
					return 0
				}
			}
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	} else if cmd == "validate" {
		usage()
		return 2
	}
	if cmd == "validate" {
		fmt.Printf("%s: ok\n", *path)
		return 0
	}
	if err := runAgent(cfg, *path, hup); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}
	return 0
}

// runAgent runs until SIGTERM or SIGINT; on SIGHUP (hup) it reloads the
// configuration file at path (see agentReload).
func runAgent(cfg *config.Agent, path string, hup <-chan os.Signal) error {
	level := ops.NewLevel(cfg.Log.Level)
	log := ops.NewLoggerLevel(os.Stderr, level, cfg.Log.Format).With("node", cfg.Node)
	// The one registry /metrics serves; what exports metrics registers here.
	reg := ops.NewRegistry()
	ml, err := ops.ApplyMemoryLimit(int64(cfg.MemoryLimit), "/sys/fs/cgroup")
	if err != nil {
		log.Warn("cannot read the container memory limit", "err", err)
	}
	// Every tailed file holds a descriptor.
	if fl, err := ops.RaiseFileLimit(); err != nil {
		log.Warn("cannot raise the limit of open files", "err", err, "soft", fl.Soft, "hard", fl.Hard)
	} else {
		log.Info("open files limit", "soft", fl.Soft, "hard", fl.Hard, "raised", fl.Raised)
	}
	ac := cfg.Aggregator
	// A quarter of the budget at most for the window of batches not yet
	// acknowledged; a sixteenth for lines read and not yet batched (see
	// readAheadBytes).
	window := int64(ac.MaxInflightBatches+1) * int64(ac.BatchMaxBytes)
	if window > ml.Bytes/4 {
		return fmt.Errorf("memory budget %s (from %s) too small: (aggregator.max_inflight_batches + 1) × aggregator.batch_max_bytes = %s must fit in a quarter of it",
			config.ByteSize(ml.Bytes), ml.From, config.ByteSize(window))
	}
	readAhead := budget.New(readAheadBytes(ml.Bytes))
	store, err := checkpoint.Open(cfg.StateDir)
	if err != nil {
		return err
	}
	for _, p := range store.Problems() {
		positionsDamaged.Add(1)
		log.Error("positions damaged, recovered what could be", "err", p)
	}
	inputs, err := tailInputs(cfg.Inputs)
	if err != nil {
		return err
	}
	mgr := tail.NewManager(inputs, store, readAhead, log)
	sys, err := syslogInputs(cfg, log)
	if err != nil {
		return err
	}
	defer closeSyslog(sys) // after the shipper: commits its last acks
	dial, files, err := linkOptions(ac, log)
	if err != nil {
		return err
	}
	kubeCtx, stopKube := context.WithCancel(context.Background())
	defer stopKube()
	meta, err := kubeMeta(kubeCtx, cfg, log)
	if err != nil {
		return err
	}
	podRules.set(kubeCtx, meta) // pods may now choose their multiline rule
	ackLatency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ferry_agent_ack_latency_seconds",
		Help:    "Seconds from sending a batch to the aggregator to its acknowledgement.",
		Buckets: ops.LatencyBuckets,
	})
	reg.MustRegister(ackLatency)
	ps, releaseFields, appenders := parserSet(cfg.Inputs)
	client, err := transport.NewClient(transport.ClientConfig{
		Address:         ac.Address,
		Addresses:       ac.Addresses,
		Node:            cfg.Node,
		Compression:     ac.Compression,
		MaxInflight:     ac.MaxInflightBatches,
		BatchMaxEvents:  ac.BatchMaxEvents,
		BatchMaxBytes:   int(ac.BatchMaxBytes),
		BatchTimeout:    time.Duration(ac.BatchTimeout),
		BackoffInitial:  time.Duration(ac.BackoffInitial),
		BackoffMax:      time.Duration(ac.BackoffMax),
		ShutdownTimeout: time.Duration(ac.ShutdownTimeout),
		DialOptions:     dial,
		MaxLineBytes:    maxLineBytes(cfg.Inputs),
		Parsers:         ps,
		ReleaseFields:   releaseFields,
		FieldAppenders:  appenders,
		Pods:            podMeta(meta),
		AckLatency:      ackLatency,
	}, newCommits(mgr, sys), log)
	if err != nil {
		return err
	}
	defer client.Close()
	sampler, err := newSampler(cfg, podNamer(meta), log)
	if err != nil {
		return err
	}

	counters := func() map[string]uint64 {
		m := client.Counters()
		if sampler != nil {
			for k, v := range sampler.Counters() {
				m[k] = v
			}
		}
		for k, v := range mgr.Counters() {
			m[k] = v
		}
		syslogCounters(m, sys)
		if meta != nil {
			for k, v := range meta.Counters() {
				m[k] = v
			}
		}
		m["ferry_agent_read_budget_bytes"] = uint64(readAhead.Limit())
		m["ferry_agent_read_budget_used_bytes"] = uint64(readAhead.Used())
		m["ferry_agent_read_budget_peak_bytes"] = uint64(readAhead.Peak())
		m["ferry_agent_memory_limit_bytes"] = uint64(ml.Bytes)
		addSelfMetrics(m, client.Connected())
		return m
	}
	connected := func() error {
		if !client.Connected() {
			return errors.New("not connected to the aggregator")
		}
		return nil
	}
	health, err := ops.StartHealth(cfg.HTTP, ops.Checks{Ready: connected, Registry: reg}, counters, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("agent started", "memory_limit", config.ByteSize(ml.Bytes), "memory_limit_from", ml.From, "go_memory_limit", config.ByteSize(ml.Runtime), "aggregator", ac.Address, "aggregators", ac.Addresses, "tls", ac.TLS.Enabled, "client_cert", ac.TLS.CertFile != "",
		"bearer_token", ac.BearerToken != "" || ac.BearerTokenFile != "", "inputs", len(inputs), "state_dir", cfg.StateDir, "http", health.Addr())

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = mgr.Run(ctx) }()
	running := *cfg
	rl := &agentReload{path: path, cur: &running, level: level, inputs: mgr, files: files, log: log}
	go func() { defer wg.Done(); ops.OnHangup(ctx, hup, rl.reload) }()
	saveDone := make(chan struct{})
	go func() {
		defer wg.Done()
		// Every second, on the second: with the polls and globs of the
		// files (on multiples of their intervals), one wake of the agent.
		untilSecond := func() time.Duration { return time.Second - time.Duration(time.Now().UnixNano()%int64(time.Second)) }
		t := time.NewTimer(untilSecond())
		defer t.Stop()
		for {
			select {
			case <-saveDone:
				return
			case <-t.C:
				t.Reset(untilSecond())
				if err := store.Save(); err != nil {
					positionErrors.Add(1)
					log.Error("saving positions failed", "err", err)
				}
			}
		}
	}()
	var samples <-chan *event.Sample
	if sampler != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = sampler.Run(ctx) }()
		samples = sampler.Samples()
	}
	chunks, waitSyslog := runSyslog(ctx, mgr.Chunks(), sys, log)
	runErr := client.RunWithSamples(ctx, chunks, samples)
	stop()
	waitSyslog()
	close(saveDone)
	wg.Wait()
	if err := store.Save(); err != nil {
		log.Error("saving positions failed", "err", err)
		runErr = errors.Join(runErr, err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = health.Shutdown(sctx)
	if runErr != nil {
		return runErr
	}
	log.Info("agent stopped; positions saved")
	return nil
}

// linkOptions returns the transport credentials to the aggregator (TLS, or
// plaintext when aggregator.tls is off) and the bearer token, if any, and
// the material of theirs that SIGHUP reads again. The files are read now
// and again when they change.
func linkOptions(ac config.AggregatorClient, log *slog.Logger) ([]grpc.DialOption, []ops.Reloadable, error) {
	if !ac.TLS.Enabled {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil, nil
	}
	o := tlsconf.Options{Log: log}
	tc, err := tlsconf.NewClient(tlsconf.ClientFiles{
		CAFile:             ac.TLS.CAFile,
		CertFile:           ac.TLS.CertFile,
		KeyFile:            ac.TLS.KeyFile,
		ServerName:         ac.TLS.ServerName,
		InsecureSkipVerify: ac.TLS.InsecureSkipVerify,
	}, o)
	if err != nil {
		return nil, nil, fmt.Errorf("aggregator.tls: %w", err)
	}
	files := []ops.Reloadable{tc}
	if ac.TLS.InsecureSkipVerify {
		log.Warn("aggregator.tls.insecure_skip_verify is set: the aggregator's certificate is not verified")
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(tc.Credentials())}
	if ac.BearerToken != "" || ac.BearerTokenFile != "" {
		b, err := tlsconf.NewBearer(string(ac.BearerToken), ac.BearerTokenFile, o)
		if err != nil {
			return nil, nil, fmt.Errorf("aggregator: %w", err)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(b))
		files = append(files, b)
	}
	return opts, files, nil
}

// maxLineBytes returns max_line_bytes by input name.
func maxLineBytes(ins []config.Input) map[string]int {
	m := make(map[string]int, len(ins))
	for _, in := range ins {
		m[in.Name] = int(in.MaxLineBytes)
		if in.Multiline.Rule != "none" && in.Multiline.MaxBytes > in.MaxLineBytes {
			m[in.Name] = int(in.Multiline.MaxBytes) // a joined event is one message
		}
	}
	return m
}

func tailInputs(ins []config.Input) ([]tail.Input, error) {
	out := make([]tail.Input, 0, len(ins))
	for _, in := range ins {
		if in.Type == "syslog" {
			continue // see syslogInputs
		}
		f, err := tail.FormatOf(in.Format)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in.Name, err)
		}
		ml := in.Multiline
		spec, err := multiline.Compile(multiline.Config{Rule: ml.Rule, Start: ml.Start, Continue: ml.Continue, Negate: ml.Negate,
			MaxLines: ml.MaxLines, MaxBytes: int(ml.MaxBytes), FlushAfter: time.Duration(ml.FlushAfter)})
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in.Name, err)
		}
		out = append(out, tail.Input{
			Name:              in.Name,
			Container:         in.Type == "container",
			Paths:             in.Paths,
			Exclude:           in.Exclude,
			Format:            f,
			StartAtEnd:        in.StartAt == "end",
			MaxLineBytes:      int(in.MaxLineBytes),
			PollInterval:      time.Duration(in.PollInterval),
			ReadDelay:         time.Duration(in.ReadDelay),
			GlobInterval:      time.Duration(in.GlobInterval),
			Dataset:           in.Dataset,
			Environment:       in.Environment,
			PartialFlushAfter: time.Duration(in.PartialFlushAfter),
			Multiline:         spec,
		})
		if in.Type == "container" {
			out[len(out)-1].RuleFor = podRules.ruleFor
		}
	}
	return out, nil
}

// readAheadShare is the part of the memory budget for lines read and not
// yet batched (the followers' chunks and read buffers): a sixteenth, 8 MiB
// of the default 128 MiB. That keeps the shipper fed (it holds a few
// chunks at a time; one follower reads far faster than a batch is acked)
// while a thousand files waiting to be read hold no more than it; the heap
// the runtime lets grow is about twice what is live, so every byte here
// costs two of RSS.
const readAheadShare = 16

// readAheadBytes is the read-ahead budget of a memory budget of limit bytes.
func readAheadBytes(limit int64) int64 { return limit / readAheadShare }
