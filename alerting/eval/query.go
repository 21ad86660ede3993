package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
	"github.com/ferrylogs/ferry/alerting/rules"
)

// sample is one group's outcome of a rule's query.
type sample struct {
	group map[string]string // group_by field -> value
	value float64
	// active: the condition holds; keep: it holds for an alert that is
	// already firing (the clear bound of hysteresis).
	active, keep bool
}

// bucket is one group's aggregation answer.
type bucket struct {
	group map[string]string
	count int64
	aggs  map[string]json.RawMessage
}

type obj = map[string]any

func timeRange(field string, from, to time.Time) obj {
	return obj{"range": obj{field: obj{"gte": from.UnixMilli(), "lt": to.UnixMilli(), "format": "epoch_millis"}}}
}

// query is the rule's filter and a time range.
func query(r *rules.Rule, from, to time.Time) obj {
	must := []any{timeRange(r.TimestampField, from, to)}
	if r.Filter != nil {
		must = append(must, r.Filter)
	}
	return obj{"bool": obj{"filter": must}}
}

// metricAgg is the aggregation of a threshold or baseline rule; nil for
// count (the document count is the value).
func metricAgg(r *rules.Rule) obj {
	switch r.Aggregation {
	case "count", "":
		return nil
	case "percentile":
		return obj{"percentiles": obj{"field": r.Field, "percents": []float64{r.Percentile}}}
	default:
		return obj{r.Aggregation: obj{"field": r.Field}}
	}
}

// metricValue reads the value of metricAgg named name from b (the count
// for count); false when there is none (no document had the field).
func metricValue(r *rules.Rule, count int64, aggs map[string]json.RawMessage, name string) (float64, bool) {
	if metricAgg(r) == nil {
		return float64(count), true
	}
	raw, ok := aggs[name]
	if !ok {
		return 0, false
	}
	var v struct {
		Value  *float64            `json:"value"`
		Values map[string]*float64 `json:"values"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return 0, false
	}
	if v.Value != nil {
		return *v.Value, true
	}
	for _, x := range v.Values {
		if x != nil && !math.IsNaN(*x) {
			return *x, true
		}
	}
	return 0, false
}

// groups runs one search of r.Index with q and aggs per group (composite
// over group_by, paged) and returns a bucket per group. Without group_by
// it returns one bucket (the whole match), even when nothing matched.
func (e *Evaluator) groups(ctx context.Context, r *rules.Rule, q obj, aggs obj, runtime obj) ([]bucket, error) {
	if len(r.GroupBy) == 0 {
		body := obj{"size": 0, "track_total_hits": true, "query": q}
		if len(aggs) > 0 {
			body["aggs"] = aggs
		}
		if runtime != nil {
			body["runtime_mappings"] = runtime
		}
		var res struct {
			Hits struct {
				Total struct {
					Value int64 `json:"value"`
				} `json:"total"`
			} `json:"hits"`
			Aggregations map[string]json.RawMessage `json:"aggregations"`
		}
		if err := e.o.Client.Search(ctx, r.Index, body, &res); err != nil {
			return nil, err
		}
		return []bucket{{group: map[string]string{}, count: res.Hits.Total.Value, aggs: res.Aggregations}}, nil
	}
	sources := make([]any, len(r.GroupBy))
	for i, f := range r.GroupBy {
		sources[i] = obj{"g" + strconv.Itoa(i): obj{"terms": obj{"field": f, "missing_bucket": true}}}
	}
	var out []bucket
	var after any
	for page := 0; ; page++ {
		comp := obj{"size": 1000, "sources": sources}
		if after != nil {
			comp["after"] = after
		}
		g := obj{"composite": comp}
		if len(aggs) > 0 {
			g["aggs"] = aggs
		}
		body := obj{"size": 0, "query": q, "aggs": obj{"groups": g}}
		if runtime != nil {
			body["runtime_mappings"] = runtime
		}
		var res struct {
			Aggregations struct {
				Groups struct {
					AfterKey json.RawMessage              `json:"after_key"`
					Buckets  []map[string]json.RawMessage `json:"buckets"`
				} `json:"groups"`
			} `json:"aggregations"`
		}
		if err := e.o.Client.Search(ctx, r.Index, body, &res); err != nil {
			return nil, err
		}
		for _, b := range res.Aggregations.Groups.Buckets {
			var key map[string]any
			var n int64
			json.Unmarshal(b["key"], &key)
			json.Unmarshal(b["doc_count"], &n)
			gr := make(map[string]string, len(r.GroupBy))
			for i, f := range r.GroupBy {
				switch v := key["g"+strconv.Itoa(i)].(type) {
				case nil:
					gr[f] = ""
				case string:
					gr[f] = v
				case float64:
					gr[f] = strconv.FormatFloat(v, 'f', -1, 64)
				default:
					gr[f] = fmt.Sprint(v)
				}
			}
			out = append(out, bucket{group: gr, count: n, aggs: b})
		}
		bs := res.Aggregations.Groups.Buckets
		if len(bs) < 1000 || len(res.Aggregations.Groups.AfterKey) == 0 || page > 1000 {
			return out, nil
		}
		var ak any
		json.Unmarshal(res.Aggregations.Groups.AfterKey, &ak)
		after = ak
	}
}

// evaluate runs rule r for the window ending at end and returns a sample
// per group it saw.
func (e *Evaluator) evaluate(ctx context.Context, r *rules.Rule, end time.Time) ([]sample, error) {
	switch r.Type {
	case rules.Frequency:
		return e.frequency(ctx, r, end)
	case rules.Threshold:
		return e.threshold(ctx, r, end)
	case rules.Baseline:
		return e.baseline(ctx, r, end)
	case rules.Absence:
		return e.absence(ctx, r, end)
	case rules.Spike:
		return e.spike(ctx, r, end)
	}
	return nil, fmt.Errorf("rule %s: unknown type %q", r.Name, r.Type)
}

func (e *Evaluator) frequency(ctx context.Context, r *rules.Rule, end time.Time) ([]sample, error) {
	bs, err := e.groups(ctx, r, query(r, end.Add(-r.Window), end), nil, nil)
	if err != nil {
		return nil, err
	}
	out := make([]sample, 0, len(bs))
	for _, b := range bs {
		s := sample{group: b.group, value: float64(b.count)}
		if r.MinCount != nil {
			s.active = b.count >= *r.MinCount
		} else {
			s.active = b.count <= *r.MaxCount
		}
		s.keep = s.active
		out = append(out, s)
	}
	if r.MaxCount != nil && len(r.GroupBy) > 0 {
		out = append(out, e.silentGroups(r, bs)...)
	}
	return out, nil
}

// silentGroups are the groups of r's active alerts that have no document
// in the window: a count of 0, which "at most max_count" still holds for.
func (e *Evaluator) silentGroups(r *rules.Rule, bs []bucket) []sample {
	seen := map[string]bool{}
	for _, b := range bs {
		seen[alert.Fingerprint(b.group)] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []sample
	for _, ent := range e.active {
		if ent.Rule != r.Name {
			continue
		}
		g := make(map[string]string, len(r.GroupBy))
		for _, f := range r.GroupBy {
			g[f] = ent.Labels[f]
		}
		if !seen[alert.Fingerprint(g)] {
			seen[alert.Fingerprint(g)] = true
			out = append(out, sample{group: g, value: 0, active: true, keep: true})
		}
	}
	return out
}

// terms reads a terms aggregation's buckets.
func terms(raw json.RawMessage) []alert.Count {
	var t struct {
		Buckets []struct {
			Key   any   `json:"key"`
			Count int64 `json:"doc_count"`
			V     *struct {
				Value *float64 `json:"value"`
			} `json:"v"`
		} `json:"buckets"`
	}
	if json.Unmarshal(raw, &t) != nil {
		return nil
	}
	out := make([]alert.Count, 0, len(t.Buckets))
	for _, b := range t.Buckets {
		c := alert.Count{Key: fmt.Sprint(b.Key), Count: b.Count}
		if b.V != nil && b.V.Value != nil {
			c.Value = *b.V.Value
		}
		out = append(out, c)
	}
	return out
}

func (e *Evaluator) threshold(ctx context.Context, r *rules.Rule, end time.Time) ([]sample, error) {
	var aggs obj
	if m := metricAgg(r); m != nil {
		aggs = obj{"v": m}
	}
	bs, err := e.groups(ctx, r, query(r, end.Add(-r.Window), end), aggs, nil)
	if err != nil {
		return nil, err
	}
	out := make([]sample, 0, len(bs))
	for _, b := range bs {
		v, ok := metricValue(r, b.count, b.aggs, "v")
		if !ok {
			continue
		}
		s := sample{group: b.group, value: v}
		s.active = r.Above != nil && v > *r.Above || r.Below != nil && v < *r.Below
		s.keep = s.active
		if r.Clear != nil { // hysteresis: firing until back past clear
			s.keep = r.Above != nil && v > *r.Clear || r.Below != nil && v < *r.Clear
		}
		out = append(out, s)
	}
	return out, nil
}

// historyRanges are the baseline's history windows, oldest first.
func historyRanges(r *rules.Rule, end time.Time) [][2]time.Time {
	var rs [][2]time.Time
	if r.HistoryDays > 0 {
		for d := r.HistoryDays; d >= 1; d-- {
			to := end.Add(-time.Duration(d) * 24 * time.Hour)
			rs = append(rs, [2]time.Time{to.Add(-r.Window), to})
		}
		return rs
	}
	n := int(time.Duration(r.HistoryHours) * time.Hour / r.Window)
	for i := n; i >= 1; i-- {
		to := end.Add(-time.Duration(i) * r.Window)
		rs = append(rs, [2]time.Time{to.Add(-r.Window), to})
	}
	return rs
}

func (e *Evaluator) baseline(ctx context.Context, r *rules.Rule, end time.Time) ([]sample, error) {
	hist := historyRanges(r, end)
	ranges := []any{obj{"key": "c", "from": end.Add(-r.Window).UnixMilli(), "to": end.UnixMilli()}}
	for i, h := range hist {
		ranges = append(ranges, obj{"key": "h" + strconv.Itoa(i), "from": h[0].UnixMilli(), "to": h[1].UnixMilli()})
	}
	w := obj{"date_range": obj{"field": r.TimestampField, "format": "epoch_millis", "keyed": true, "ranges": ranges}}
	if m := metricAgg(r); m != nil {
		w["aggs"] = obj{"v": m}
	}
	from := hist[0][0]
	bs, err := e.groups(ctx, r, query(r, from, end), obj{"w": w}, nil)
	if err != nil {
		return nil, err
	}
	var out []sample
	for _, b := range bs {
		var wr struct {
			Buckets map[string]map[string]json.RawMessage `json:"buckets"`
		}
		if json.Unmarshal(b.aggs["w"], &wr) != nil {
			continue
		}
		val := func(key string) (float64, bool) {
			rb := wr.Buckets[key]
			if rb == nil {
				return 0, false
			}
			var n int64
			json.Unmarshal(rb["doc_count"], &n)
			if metricAgg(r) != nil && n == 0 {
				return 0, false
			}
			return metricValue(r, n, rb, "v")
		}
		cur, ok := val("c")
		if !ok {
			continue
		}
		var h []float64
		started := false
		for i := range hist {
			v, ok := val("h" + strconv.Itoa(i))
			if !ok {
				continue
			}
			// A count series starts at its first non-empty window.
			if started = started || v != 0 || metricAgg(r) != nil; started {
				h = append(h, v)
			}
		}
		s := sample{group: b.group, value: cur}
		if len(h) >= r.MinHistory {
			s.active = outside(r, cur, h)
		}
		s.keep = s.active
		out = append(out, s)
	}
	return out, nil
}

// outside reports whether v is out of the band the history h gives.
func outside(r *rules.Rule, v float64, h []float64) bool {
	var lo, hi float64
	if r.Stddev > 0 {
		mean, sd := meanStddev(h)
		lo, hi = mean-r.Stddev*sd, mean+r.Stddev*sd
	} else {
		s := slices.Clone(h)
		sort.Float64s(s)
		lo, hi = percentile(s, r.Band[0]), percentile(s, r.Band[1])
	}
	up, down := v > hi, v < lo
	switch r.Direction {
	case "up":
		return up
	case "down":
		return down
	}
	return up || down
}

func meanStddev(h []float64) (float64, float64) {
	var sum float64
	for _, v := range h {
		sum += v
	}
	mean := sum / float64(len(h))
	var sq float64
	for _, v := range h {
		sq += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(sq / float64(len(h)))
}

// percentile of sorted s by linear interpolation, p in [0, 100].
func percentile(s []float64, p float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	x := p / 100 * float64(len(s)-1)
	i := int(x)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (x-float64(i))*(s[i+1]-s[i])
}

func (e *Evaluator) absence(ctx context.Context, r *rules.Rule, end time.Time) ([]sample, error) {
	aggs := obj{"last": obj{"max": obj{"field": r.TimestampField}}}
	bs, err := e.groups(ctx, r, query(r, end.Add(-r.Lookback), end), aggs, nil)
	if err != nil {
		return nil, err
	}
	var out []sample
	for _, b := range bs {
		if b.count == 0 {
			continue // never seen in the lookback: nothing is missing
		}
		var m struct {
			Value *float64 `json:"value"`
		}
		if json.Unmarshal(b.aggs["last"], &m) != nil || m.Value == nil {
			continue
		}
		last := time.UnixMilli(int64(*m.Value))
		s := sample{group: b.group, value: end.Sub(last).Seconds()}
		s.active = last.Before(end.Add(-r.Window))
		s.keep = s.active
		out = append(out, s)
	}
	return out, nil
}

func (e *Evaluator) spike(ctx context.Context, r *rules.Rule, end time.Time) ([]sample, error) {
	aggs := obj{"cur": obj{"filter": timeRange(r.TimestampField, end.Add(-r.Window), end)}}
	bs, err := e.groups(ctx, r, query(r, end.Add(-2*r.Window), end), aggs, nil)
	if err != nil {
		return nil, err
	}
	var out []sample
	for _, b := range bs {
		var c struct {
			N int64 `json:"doc_count"`
		}
		json.Unmarshal(b.aggs["cur"], &c)
		cur, prev := float64(c.N), float64(b.count-c.N)
		ratio := cur / max(prev, 1) // a previous count of 0 counts as 1
		up := cur >= float64(*r.MinCount) && cur >= r.Ratio*prev
		down := prev >= float64(*r.MinCount) && prev >= r.Ratio*cur
		s := sample{group: b.group, value: ratio}
		switch r.Direction {
		case "up":
			s.active = up
		case "down":
			s.active = down
		default:
			s.active = up || down
		}
		s.keep = s.active
		out = append(out, s)
	}
	return out, nil
}
