package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/pipeline/enrich"
	"github.com/ferrylogs/ferry/pipeline/wal"
	"github.com/ferrylogs/ferry/sinks"
	"github.com/ferrylogs/ferry/sinks/buffer"
	"github.com/ferrylogs/ferry/sinks/elasticsearch"
	"github.com/ferrylogs/ferry/sinks/ndjson"
)

// withBuffer puts a disk buffer of its own (<buffer.dir>/<sink name>) in
// front of a sink whose buffer is disk.
func withBuffer(sink sinks.Sink, c config.Sink, b config.Buffer, log *slog.Logger) (sinks.Sink, error) {
	if c.Buffer != "disk" {
		return sink, nil
	}
	sync := map[string]wal.SyncPolicy{"always": wal.SyncAlways, "interval": wal.SyncInterval, "never": wal.SyncNever}[b.Sync]
	dir := filepath.Join(b.Dir, c.Name)
	buf, err := buffer.New(sink, buffer.Options{
		WAL: wal.Options{
			Dir: dir, MaxBytes: int64(b.MaxBytes), SegmentBytes: int64(b.SegmentBytes),
			Sync: sync, SyncInterval: time.Duration(b.SyncInterval),
		},
		Concurrency: b.Concurrency,
	}, log.With("buffer", dir))
	if err != nil {
		_ = sink.Close(context.Background())
		return nil, err
	}
	return buf, nil
}

// esSink is an Elasticsearch sink of the configuration, for its counters.
type esSink struct {
	name string
	sink *elasticsearch.Sink
}

// addElasticsearchStats adds each Elasticsearch sink's bulk items by
// result: ferry_aggregator_elasticsearch_items_total{sink,result}.
func addElasticsearchStats(m map[string]uint64, ess []esSink) {
	for _, e := range ess {
		c := e.sink.Items()
		for _, r := range []struct {
			result string
			n      uint64
		}{{"created", c.Created}, {"duplicate", c.Duplicate}, {"retried", c.Retried}, {"dead_lettered", c.DeadLettered}, {"dropped", c.Dropped}} {
			m[`ferry_aggregator_elasticsearch_items_total{sink="`+e.name+`",result="`+r.result+`"}`] = r.n
		}
	}
}

// buildSinks turns the sink configuration into one sink, and returns the
// disk buffers in it, for the health checks, and the Elasticsearch sinks,
// for their counters. Every sink gets enr (when not nil) in front of it,
// behind its disk buffer: the buffer keeps batches as received and they
// are enriched when delivered (see pipeline/enrich).
func buildSinks(ctx context.Context, cfgs []config.Sink, b config.Buffer, enr *enrich.Enricher, log *slog.Logger) (sinks.Sink, []diskBuffer, []esSink, error) {
	var (
		out  sinks.Fanout
		bufs []diskBuffer
		ess  []esSink
	)
	for _, c := range cfgs {
		l := log.With("sink_name", c.Name)
		s, err := buildSink(ctx, c, l)
		if es, ok := s.(*elasticsearch.Sink); ok && err == nil {
			ess = append(ess, esSink{name: c.Name, sink: es})
		}
		if err == nil && enr != nil {
			s = enrich.NewSink(s, enr)
		}
		if err == nil {
			s, err = withBuffer(s, c, b, l)
		}
		if err != nil {
			_ = out.Close(ctx)
			return nil, nil, nil, fmt.Errorf("sink %s: %w", c.Name, err)
		}
		if buf, ok := s.(*buffer.Sink); ok {
			bufs = append(bufs, diskBuffer{name: c.Name, buf: buf, capacity: int64(b.MaxBytes)})
		}
		out = append(out, s)
	}
	if len(out) == 1 {
		return out[0], bufs, ess, nil
	}
	return out, bufs, ess, nil
}

// enricher returns the enrichment stages the configuration asks for, and
// the GeoIP stage among them (nil when off), which the caller closes.
func enricher(ctx context.Context, cfg *config.Aggregator, log *slog.Logger) (*enrich.Enricher, *enrich.GeoIP, error) {
	r := cfg.Enrich.Environment
	env, err := enrich.NewEnvironment(r.NamespaceLabel, r.NamespaceRegex, r.Namespaces, r.Default)
	if err != nil {
		return nil, nil, fmt.Errorf("enrich.environment: %w", err)
	}
	e := enrich.New(enrich.Kubernetes{Cluster: cfg.ClusterName}, enrich.Service{}, env)
	geo, err := geoIP(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	if geo != nil {
		e.PerEvent(geo)
	}
	return e, geo, nil
}

func buildSink(ctx context.Context, c config.Sink, log *slog.Logger) (sinks.Sink, error) {
	switch c.Type {
	case "file":
		return ndjson.NewFile(c.Path, log)
	case "stdout":
		return ndjson.NewWriter("stdout", os.Stdout), nil
	case "elasticsearch":
		return elasticsearch.New(ctx, esConfig(c), log)
	}
	return nil, fmt.Errorf("unknown sink type %q", c.Type)
}

func esConfig(c config.Sink) elasticsearch.Config {
	setup := c.SetupTemplates == nil || *c.SetupTemplates
	return elasticsearch.Config{
		URLs: c.URLs, Username: c.Username, Password: c.Password, APIKey: c.APIKey,
		CAFile: c.CAFile, TLSSkipVerify: c.TLSSkipVerify,
		FlushBytes: int(c.FlushBytes), FlushEvents: c.FlushEvents, FlushInterval: time.Duration(c.FlushInterval),
		MaxConcurrentRequests: c.MaxConcurrentRequests,
		RetryInitial:          time.Duration(c.RetryInitial), RetryMax: time.Duration(c.RetryMax),
		DeadLetterDataStream: c.DeadLetterDataStream, Retention: time.Duration(c.Retention),
		SetupTemplates: setup, TemplateConflict: c.TemplateConflict,
	}
}

// setup installs the Elasticsearch templates of every elasticsearch sink.
func setup(cfg *config.Aggregator, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	for _, c := range cfg.Sinks {
		if c.Type != "elasticsearch" {
			continue
		}
		s, err := elasticsearch.New(ctx, esConfig(c), log.With("sink_name", c.Name))
		if err != nil {
			return fmt.Errorf("sink %s: %w", c.Name, err)
		}
		err = s.Setup(ctx)
		_ = s.Close(ctx)
		if err != nil {
			return fmt.Errorf("sink %s: setup: %w", c.Name, err)
		}
		n++
		log.Info("templates installed", "sink", c.Name)
	}
	if n == 0 {
		return errors.New("no elasticsearch sink configured: nothing to set up")
	}
	return nil
}
