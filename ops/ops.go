// Package ops holds what both binaries need to be operated: their structured
// logger and their /healthz and /readyz HTTP endpoints.
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewLogger returns a slog logger writing to w in format "json" or "text"
// at level "debug", "info", "warn" or "error".
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: ParseLevel(level)}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Health serves /healthz (the process runs), /readyz (ready() returns nil),
// and the counters from stats() as plain "name value" lines on /stats and,
// with the rest of Checks.Registry, in the Prometheus format on /metrics.
type Health struct {
	srv *http.Server
	ln  net.Listener
}

// Checks are what /healthz and /readyz answer: nil is healthy or ready;
// an error is the reason why not, served with status 503. A nil Live is
// always healthy.
type Checks struct {
	Live  func() error
	Ready func() error
	// Handlers are served besides the built-in paths, by pattern (e.g.
	// "/api/silences" and "/api/silences/").
	Handlers map[string]http.Handler
	// Registry is what /metrics serves (see NewRegistry); the counters of
	// stats are added to it. Nil serves a fresh registry with those only.
	Registry *prometheus.Registry
}

// StartHealth listens on addr and serves until Shutdown. /healthz answers
// 200 "ok" while checks.Live returns nil, else 503 "unhealthy: " and the
// error (the orchestrator restarts the process); /readyz answers 200
// "ready" while checks.Ready returns nil, else 503 "not ready: " and the
// error, so that the reason shows in the probe's events.
func StartHealth(addr string, checks Checks, stats func() map[string]uint64, log *slog.Logger) (*Health, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if checks.Live != nil {
			if err := checks.Live(); err != nil {
				http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := checks.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		m := stats()
		for _, k := range slices.Sorted(maps.Keys(m)) {
			fmt.Fprintf(w, "%s %d\n", k, m[k])
		}
	})
	if os.Getenv("FERRY_PPROF") == "1" {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	for pattern, h := range checks.Handlers {
		mux.Handle(pattern, h)
	}
	reg := checks.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := reg.Register(statsCollector{stats: stats, log: log}); err != nil {
		return nil, fmt.Errorf("register the counters: %w", err)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError), ErrorHandling: promhttp.ContinueOnError}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health listen %s: %w", addr, err)
	}
	h := &Health{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", "err", err)
		}
	}()
	return h, nil
}

// Addr is the address the health server listens on.
func (h *Health) Addr() string { return h.ln.Addr().String() }

// Shutdown stops the health server.
func (h *Health) Shutdown(ctx context.Context) error { return h.srv.Shutdown(ctx) }
