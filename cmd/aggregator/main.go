// Command aggregator receives batches from agents, writes them to its sinks
// (file, stdout, Elasticsearch) and acknowledges them; see the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // agents may compress
	"google.golang.org/grpc/keepalive"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/ops"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/transport"
	"github.com/ferrylogs/ferry/transport/tlsconf"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: aggregator [run] [--config FILE]
       aggregator validate --config FILE
       aggregator setup [--config FILE]   install Elasticsearch templates and exit
       aggregator kibana import --url URL  import Ferry's Kibana dashboards (kibana -h: options)
       aggregator silence add|list|expire [--config FILE] ...   silences of alerts (silence: usage)
       aggregator notify test RECEIVER [--config FILE]           send one test notice, print the answer
       aggregator rules check DIR [--config FILE] | rules test FILE   validate or test alert rules (rules: usage)

Without --config the aggregator runs with its embedded defaults (a file sink).
`)
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "kibana" {
		return kibanaCommand(context.Background(), args[1:], os.Stdout, os.Stderr)
	}
	if len(args) > 0 && args[0] == "silence" {
		return silenceCmd(args[1:])
	}
	if len(args) > 0 && args[0] == "notify" {
		return notifyCmd(args[1:])
	}
	if len(args) > 0 && args[0] == "rules" {
		return rulesCmd(args[1:], os.Stdout, os.Stderr)
	}
	cmd := "run"
	if len(args) > 0 && (args[0] == "run" || args[0] == "validate" || args[0] == "setup") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
	fs.Usage = usage
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var hup chan os.Signal
	if cmd == "run" {
		hup = ops.Hangups() // first: a SIGHUP while starting must not kill the aggregator
	}
	cfg := config.DefaultAggregator()
	if *path != "" {
		var err error
		if cfg, err = config.LoadAggregator(*path); err != nil {
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
	level := ops.NewLevel(cfg.Log.Level)
	log := ops.NewLoggerLevel(os.Stderr, level, cfg.Log.Format)
	var err error
	switch cmd {
	case "validate":
		fmt.Printf("%s: ok\n", *path)
		return 0
	case "setup":
		err = setup(cfg, log)
	default:
		err = runAggregator(cfg, log, newAggregatorReload(*path, cfg, level, log), hup)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "aggregator:", err)
		return 1
	}
	return 0
}

// defaultGCPercent is the aggregator's garbage collector percentage (GOGC)
// unless GOGC is set: most of what it allocates lives for one batch, and
// collecting at three times the live heap instead of twice costs less CPU
// per event; the soft memory limit (80% of memory_limit) still bounds the
// heap, the collector running earlier when it nears it.
const defaultGCPercent = 300

// runAggregator runs until SIGTERM or SIGINT; on SIGHUP (hup) rl reloads
// the configuration.
func runAggregator(cfg *config.Aggregator, log *slog.Logger, rl *aggregatorReload, hup <-chan os.Signal) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The one registry /metrics serves; what exports metrics registers here.
	reg := ops.NewRegistry()
	ml, err := ops.ApplyMemoryLimit(int64(cfg.MemoryLimit), "/sys/fs/cgroup")
	if err != nil {
		log.Warn("cannot read the container memory limit", "err", err)
	}
	gcPercent, gcFrom := ops.ApplyGCPercent(defaultGCPercent)
	log.Info("memory budget", "memory_limit", config.ByteSize(ml.Bytes), "from", ml.From, "go_memory_limit", config.ByteSize(ml.Runtime),
		"gc_percent", gcPercent, "gc_percent_from", gcFrom)
	maxConns, err := connectionLimit(cfg, log)
	if err != nil {
		return err
	}
	// A quarter of the budget for batches received and not yet written,
	// over all agents; a batch must fit in it.
	inFlight := ml.Bytes / 4
	if int64(cfg.MaxRecvMessageBytes) > inFlight {
		return fmt.Errorf("memory budget %s (from %s) too small: max_recv_message_bytes %s must fit in a quarter of it",
			config.ByteSize(ml.Bytes), ml.From, cfg.MaxRecvMessageBytes)
	}
	enr, geo, err := enricher(ctx, cfg, log)
	if err != nil {
		return err
	}
	if geo != nil {
		defer geo.Close() // after the sinks: they enrich until closed
	}
	sink, bufs, ess, err := buildSinks(ctx, cfg.Sinks, cfg.Buffer, enr, log)
	if err != nil {
		return err
	}
	eventLatency := ops.NewBatchHistogram("ferry_aggregator_event_latency_seconds",
		"Seconds from an event's time (the line's own, or when the agent read it) to its sink (or the sink's disk buffer) accepting it.",
		ops.LatencyBuckets)
	reg.MustRegister(eventLatency)
	srv := transport.NewServer(sink, transport.ServerConfig{
		MaxBatchesInFlight:  cfg.MaxBatchesInFlight,
		MaxMessageBytes:     int(cfg.MaxRecvMessageBytes),
		MaxRecvMessageBytes: int(cfg.MaxRecvMessageBytes),
		MaxBytesInFlight:    inFlight,
		AckTimeout:          time.Duration(cfg.AckTimeout),
		WriteTimeout:        time.Duration(cfg.WriteTimeout),
		Health:              buffersHealth(bufs),
		EventLatency:        eventLatency,
	}, log)
	security, files, err := linkSecurity(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	// TCPUserTimeout: what gRPC sets from its keepalive timeout (20s, the
	// default, below) on connections it can see are TCP.
	lim := transport.LimitListener(ln, transport.ConnLimits{Max: maxConns, HandshakeTimeout: time.Duration(cfg.HandshakeTimeout), TCPUserTimeout: 20 * time.Second,
		TLS: cfg.TLS.Enabled}, log)
	security = append(security, lim.ServerOptions()...)
	// Agents' ingest streams, counted without touching the receive path.
	streams := &transport.StreamStats{}
	security = append(security, grpc.StatsHandler(streams))
	gs := grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(cfg.MaxRecvMessageBytes)),
		// gRPC's buffer pool, without clearing each buffer it reuses.
		transport.ReceiveBufferPool(),
		// An agent uses one stream; a few more leave room for a stream
		// being replaced.
		grpc.MaxConcurrentStreams(16),
		// Fixed flow-control windows: what a connection may have sent and
		// not yet been read stays small and known (gRPC's default grows
		// each window to 16 MiB), so memory is the in-flight budget plus
		// about one window per agent.
		grpc.InitialWindowSize(flowWindow),
		grpc.InitialConnWindowSize(flowWindow),
		// An idle agent costs no I/O buffer: the write buffer is taken
		// from a pool per flush (gRPC's default today, kept explicit), and
		// reads take theirs from a pool when data arrives (the limiter's
		// connections offer gRPC that), or with TLS read through
		// crypto/tls's own (lim.ServerOptions: no gRPC read buffer). What
		// stays per agent is about 15 KiB of heap (18 with TLS) and 22 KiB
		// of goroutine stacks (make bench-scale, transport's
		// TestIdleStreamMemory).
		grpc.SharedWriteBuffer(true),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			// Agents re-resolve and rebalance over replicas; the grace
			// outlasts one batch and its ack.
			MaxConnectionAge:      time.Duration(cfg.MaxConnectionAge),
			MaxConnectionAgeGrace: time.Duration(cfg.MaxConnectionAgeGrace),
			Time:                  time.Minute,
		}),
	}, security...)...)
	ferryv1.RegisterIngestServer(gs, srv)
	// Alerting's notify side: the dispatcher the evaluator hands alerts to
	// (nil without alerting.route), and /api/silences.
	notices, err := startNotify(ctx, cfg, log)
	if err != nil {
		return err
	}
	// Alerting's rules side: the evaluator (nil without alerting).
	evaluator, err := startAlerting(ctx, cfg, log, notices)
	if err != nil {
		return err
	}
	health, err := ops.StartHealth(cfg.HTTP, ops.Checks{Live: liveness(bufs), Ready: readiness(srv.Ready, bufs), Handlers: notices.handlers(), Registry: reg}, func() map[string]uint64 {
		m := map[string]uint64{
			"ferry_aggregator_batches_acked_total":       srv.BatchesAcked.Load(),
			"ferry_aggregator_events_acked_total":        srv.EventsAcked.Load(),
			"ferry_aggregator_batches_retry_total":       srv.BatchesRetry.Load(),
			"ferry_aggregator_batches_failed_total":      srv.BatchesFailed.Load(),
			"ferry_aggregator_bytes_in_flight":           uint64(srv.BytesInFlight()),
			"ferry_aggregator_bytes_in_flight_max":       uint64(inFlight),
			"ferry_aggregator_budget_waits_total":        srv.BudgetWaits.Load(),
			"ferry_aggregator_ack_timeouts_total":        srv.AckTimeouts.Load(),
			"ferry_aggregator_not_ready_streams_total":   srv.NotReadyStreams.Load(),
			"ferry_aggregator_memory_limit_bytes":        uint64(ml.Bytes),
			"ferry_aggregator_connections_open":          uint64(lim.Open()),
			"ferry_aggregator_connections_max":           uint64(lim.Max()),
			"ferry_aggregator_connections_refused_total": lim.Refused.Load(),
			"ferry_aggregator_handshake_timeouts_total":  lim.HandshakeTimeouts.Load(),
			"ferry_aggregator_oversize_messages_total":   srv.OversizeMessages.Load(),
			"ferry_aggregator_streams_revoked_total":     srv.Revoked.Load(),
			// Per sink write: an event written to two sinks, or replayed
			// from a disk buffer, counts each time.
			"ferry_aggregator_events_without_pod_metadata_total": enr.WithoutMetadata.Load(),
			"ferry_aggregator_events_metadata_truncated_total":   enr.Truncated.Load(),
		}
		addBufferStats(m, bufs)
		addGeoIPStats(m, geo)
		addElasticsearchStats(m, ess)
		notices.addStats(m)
		addAlertingStats(m, evaluator)
		addSelfMetrics(m, srv.EventsDropped.Load(), streams)
		return m
	}, log)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lim) }()
	rl.files = files
	go ops.OnHangup(ctx, hup, rl.reload)
	log.Info("aggregator started", "listen", ln.Addr().String(), "tls", cfg.TLS.Enabled, "mutual_tls", cfg.TLS.ClientCAFile != "",
		"bearer_auth", hasAuth(cfg.Auth), "http", health.Addr(), "sinks", len(cfg.Sinks))

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("grpc server: %w", err)
	}
	log.Info("draining: finishing batches in flight")
	timeout := time.Duration(cfg.ShutdownTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	drainErr := srv.Drain(dctx)
	// Streams of agents are long-lived: end them once in-flight batches are
	// acknowledged; agents reconnect elsewhere or later.
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Second):
		gs.Stop()
	}
	closeErr := sink.Close(dctx)
	_ = health.Shutdown(dctx)
	if err := errors.Join(drainErr, closeErr); err != nil {
		return err
	}
	log.Info("aggregator stopped; sinks flushed")
	return nil
}

// flowWindow is the HTTP/2 flow-control window of every agent stream and
// connection: enough for a batch of 1 MiB (the agents' default) to stream
// without waiting for a window update over a link of several milliseconds.
const flowWindow = 1 << 20

// connectionLimit raises the limit of open files to its hard limit and
// returns max_connections, or when it is 0 the limit that leaves
// transport.ConnReserve descriptors to the rest of the process.
func connectionLimit(cfg *config.Aggregator, log *slog.Logger) (int, error) {
	fl, err := ops.RaiseFileLimit()
	if err != nil {
		if fl.Soft == 0 {
			return 0, err
		}
		log.Warn("cannot raise the limit of open files", "err", err)
	}
	n, from := cfg.MaxConnections, "max_connections"
	if n == 0 {
		n, from = transport.DefaultMaxConnections(fl.Soft), "open files limit"
	}
	log.Info("open files limit", "soft", fl.Soft, "hard", fl.Hard, "raised", fl.Raised, "max_connections", n, "max_connections_from", from)
	if uint64(n)+transport.ConnReserve > fl.Soft {
		log.Warn("max_connections leaves fewer than 256 descriptors of the open files limit to health checks, sinks and the disk buffer",
			"max_connections", n, "open_files_limit", fl.Soft)
	}
	return n, nil
}

func hasAuth(a config.Auth) bool { return a.BearerTokensFile != "" || len(a.BearerTokens) > 0 }

// linkSecurity returns the server options of TLS (mutual with a client CA)
// and bearer token checks, as configured. The files are read now and again
// when they change, and on SIGHUP (the reloadables returned).
func linkSecurity(cfg *config.Aggregator, log *slog.Logger) ([]grpc.ServerOption, []ops.Reloadable, error) {
	var opts []grpc.ServerOption
	var files []ops.Reloadable
	o := tlsconf.Options{Log: log}
	if cfg.TLS.Enabled {
		st, err := tlsconf.NewServer(tlsconf.ServerFiles{
			CertFile:     cfg.TLS.CertFile,
			KeyFile:      cfg.TLS.KeyFile,
			ClientCAFile: cfg.TLS.ClientCAFile,
		}, o)
		if err != nil {
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
		// With mutual TLS, streams whose client certificate stops verifying
		// (client CA file changed, certificate expired) are ended.
		opts = append(opts, grpc.Creds(st.Credentials()), grpc.ChainStreamInterceptor(st.StreamInterceptor()))
		files = append(files, st)
	}
	if hasAuth(cfg.Auth) {
		tokens := make([]string, len(cfg.Auth.BearerTokens))
		for i, t := range cfg.Auth.BearerTokens {
			tokens[i] = string(t)
		}
		t, err := tlsconf.NewTokens(tokens, cfg.Auth.BearerTokensFile, o)
		if err != nil {
			return nil, nil, fmt.Errorf("auth: %w", err)
		}
		opts = append(opts, grpc.ChainUnaryInterceptor(t.UnaryInterceptor()), grpc.ChainStreamInterceptor(t.StreamInterceptor()))
		files = append(files, t)
	}
	return opts, files, nil
}
