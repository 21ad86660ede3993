package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkEvaluate100Rules times one evaluation of 100 rules (40
// frequency, 30 threshold, 10 baseline, 10 absence, 10 spike) over
// $FERRY_BENCH_DOCS documents (default 1,000,000) spread over the last
// hour, 50 hosts and 20 services, on the real Elasticsearch:
//
//	FERRY_ES_URL=http://127.0.0.1:9201 go test -run '^$' -bench Evaluate100Rules -benchtime 5x ./alerting/eval/
func BenchmarkEvaluate100Rules(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("FERRY_BENCH_DOCS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	es := newTestES(b)
	now := time.Now().Truncate(time.Minute)
	start := time.Now()
	var buf bytes.Buffer
	msgs := []string{"ERROR db timeout", "ERROR cache miss", "WARN slow request", "INFO ok", "ERROR upstream 503"}
	for i := range n {
		at := now.Add(-time.Duration(int64(time.Hour) * int64(i) / int64(n)))
		d := map[string]any{"@timestamp": at.UTC().Format(time.RFC3339Nano), "host.name": fmt.Sprintf("node-%d", i%50),
			"service.name": fmt.Sprintf("svc-%d", i%20), "message": msgs[i%len(msgs)], "cpu": float64(i%100) / 100,
			"kubernetes.pod.name": fmt.Sprintf("pod-%d", i%500)}
		j, _ := json.Marshal(d)
		buf.WriteString("{\"create\":{}}\n")
		buf.Write(j)
		buf.WriteByte('\n')
		if (i+1)%20000 == 0 || i == n-1 {
			if err := es.c.Do(context.Background(), http.MethodPost, "/"+es.index+"/_bulk", buf.Bytes(), nil); err != nil {
				b.Fatal(err)
			}
			buf.Reset()
		}
	}
	es.c.Do(context.Background(), http.MethodPost, "/"+es.index+"/_refresh", nil, nil)
	b.Logf("indexed %d documents in %s", n, time.Since(start).Round(time.Millisecond))
	var src strings.Builder
	for i := range 100 {
		var r string
		switch {
		case i < 40:
			r = fmt.Sprintf("{name: F%d, type: frequency, index: INDEX, filter: {match: {message: ERROR}}, group_by: [service.name], window: 5m, min_count: %d}", i, 100+i)
		case i < 70:
			r = fmt.Sprintf("{name: T%d, type: threshold, index: INDEX, field: cpu, aggregation: avg, group_by: [host.name], window: 5m, above: 0.%d}", i, 40+i%50)
		case i < 80:
			r = fmt.Sprintf("{name: B%d, type: baseline, index: INDEX, group_by: [service.name], window: 5m, history_hours: 1, stddev: 3}", i)
		case i < 90:
			r = fmt.Sprintf("{name: A%d, type: absence, index: INDEX, group_by: [host.name], window: %dm, lookback: 1h}", i, 1+i%5)
		default:
			r = fmt.Sprintf("{name: S%d, type: spike, index: INDEX, group_by: [service.name], window: 5m, ratio: 2}", i)
		}
		src.WriteString("  - " + r + "\n")
	}
	e := New(Options{Client: es.c, Interval: time.Minute, MaxCatchUp: -1})
	e.SetRules(parseRule(b, strings.ReplaceAll(src.String(), "INDEX", es.index)))
	// The first evaluation fires most rules' alerts and gathers their
	// evidence (one extra query each); the benchmark times the later ones.
	first := time.Now()
	if err := e.Step(context.Background(), now); err != nil {
		b.Fatal(err)
	}
	b.Logf("first evaluation (alerts firing: %d, with their evidence): %s", len(e.Active()), time.Since(first).Round(time.Millisecond))
	b.ResetTimer()
	for i := range b.N {
		if err := e.Step(context.Background(), now.Add(time.Duration(i+1)*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/evaluation")
}
