package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ferrylogs/ferry/alerting/esq"
	"github.com/ferrylogs/ferry/alerting/eval"
	"github.com/ferrylogs/ferry/alerting/leader"
	"github.com/ferrylogs/ferry/alerting/rules"
	"github.com/ferrylogs/ferry/config"
)

// startAlerting starts the rule evaluator of cfg.Alerting (nil when
// alerting is off): the rules of rules_dir (none while they do not
// validate),
// reloaded when they change and on SIGHUP, evaluated by the one replica
// that leads (see alerting/leader) and handed to sink.
func startAlerting(ctx context.Context, cfg *config.Aggregator, log *slog.Logger, sink eval.Sink) (*eval.Evaluator, error) {
	a := cfg.Alerting
	if a == nil {
		return nil, nil
	}
	log = log.With("component", "alerting")
	// Rules that do not validate must not stop the log pipeline: they are
	// logged, no rule of rules_dir runs until they are fixed (the watch
	// below applies the fixed set).
	rs, err := rules.LoadDir(a.RulesDir)
	valid := err == nil
	if err != nil {
		log.Error("alerting: rules do not validate; no rule of rules_dir is evaluated until they do (aggregator rules check)", "rules_dir", a.RulesDir, "err", err)
		rs = nil
	}
	if err := leader.Check(a.LeaderElection); err != nil {
		return nil, err
	}
	client, err := esq.New(a.Elasticsearch)
	if err != nil {
		return nil, fmt.Errorf("alerting: %w", err)
	}
	ev := eval.New(eval.Options{
		Client:     client,
		StateIndex: a.Elasticsearch.StateIndex,
		Sink:       sink,
		Interval:   time.Duration(a.Interval),
		Delay:      time.Duration(a.Delay),
		KibanaURL:  a.KibanaURL,
		Builtin:    a.BuiltinRulesOn(),
		Log:        log,
	})
	if valid {
		ev.SetRules(rs) // else the state of the rules stays until they validate
	}
	// SIGHUP reloads the rules too (signal.Notify delivers to every
	// channel registered, so the configuration's reload still gets it).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	hup := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				select {
				case hup <- struct{}{}:
				default:
				}
			}
		}
	}()
	go rules.Watch(ctx, a.RulesDir, hup, ev.SetRules, log)
	go func() {
		err := leader.Run(ctx, a.LeaderElection, log, func(lctx context.Context) {
			if err := ev.Run(lctx); err != nil {
				log.Error("alerting: evaluator stopped", "err", err)
			}
		})
		if err != nil {
			log.Error("alerting: rules are not evaluated", "err", err)
		}
	}()
	log.Info("alerting: started", "rules", len(rs), "rules_dir", a.RulesDir, "interval", a.Interval, "delay", a.Delay,
		"builtin_rules", a.BuiltinRulesOn())
	return ev, nil
}

// addAlertingStats adds the evaluator's counters (none without alerting).
func addAlertingStats(m map[string]uint64, ev *eval.Evaluator) {
	if ev != nil {
		ev.Stats(m)
	}
}
