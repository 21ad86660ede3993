package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/pipeline/enrich"
)

// geoIP opens the GeoIP databases the configuration names; nil when
// enrich.geoip is not configured. Errors name the key and the file.
func geoIP(ctx context.Context, cfg *config.Aggregator, log *slog.Logger) (*enrich.GeoIP, error) {
	c := cfg.Enrich.GeoIP
	if c == nil {
		return nil, nil
	}
	g, err := enrich.NewGeoIP(ctx, enrich.GeoIPConfig{CityDB: c.CityDB, ASNDB: c.ASNDB, Fields: c.Fields, CacheSize: c.CacheSize}, log)
	if err != nil {
		return nil, fmt.Errorf("enrich.geoip.%w", err)
	}
	log.Info("geoip: databases open", "city_db", c.CityDB, "asn_db", c.ASNDB, "fields", c.Fields, "cache_size", c.CacheSize)
	return g, nil
}

// addGeoIPStats adds GeoIP's counters to m (nothing without GeoIP). They
// count per sink write, as the enrichment counters do.
func addGeoIPStats(m map[string]uint64, g *enrich.GeoIP) {
	if g == nil {
		return
	}
	m["ferry_aggregator_geoip_cache_hits_total"] = g.Hits.Load()
	m["ferry_aggregator_geoip_cache_misses_total"] = g.Misses.Load()
	m["ferry_aggregator_geoip_skipped_total"] = g.Skipped.Load()
	m["ferry_aggregator_geoip_lookup_errors_total"] = g.Errors.Load()
	m["ferry_aggregator_geoip_reloads_total"] = g.Reloads.Load()
	m["ferry_aggregator_geoip_reload_errors_total"] = g.ReloadErrors.Load()
}
