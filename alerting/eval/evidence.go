package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
	"github.com/ferrylogs/ferry/alerting/rules"
	"github.com/ferrylogs/ferry/alerting/state"
)

// nodeFields name a node in a group; a threshold or baseline rule grouped
// by one of them gets the node's top pods and error lines as evidence.
var nodeFields = []string{"host.name", "kubernetes.node.name"}

// errorLevel matches error-level log lines: log.level error, err, fatal,
// critical (any case), or a message with the word error, fatal or panic.
var errorLevel = obj{"bool": obj{"minimum_should_match": 1, "should": []any{
	obj{"terms": obj{"log.level": []string{"error", "ERROR", "Error", "err", "ERR", "fatal", "FATAL", "critical", "CRITICAL", "crit", "CRIT"}}},
	obj{"match": obj{"message": obj{"query": "error fatal panic", "operator": "or"}}},
}}}

// evidence gathers, in one extra request (a multi-search), the top 5 pods
// of a node by the rule's metric and the node's error-level log lines in
// the window. Other rules get none (ErrorLines -1).
func (e *Evaluator) evidence(ctx context.Context, r *rules.Rule, ent *state.Entry, end time.Time) alert.Evidence {
	ev := alert.Evidence{ErrorLines: -1}
	if r.Type == rules.Frequency {
		ev.TopMessages = e.topMessages(ctx, r, ent, end)
		return ev
	}
	if r.Type != rules.Threshold && r.Type != rules.Baseline {
		return ev
	}
	nodeField := ""
	for _, f := range nodeFields {
		if slices.Contains(r.GroupBy, f) && ent.Labels[f] != "" {
			nodeField = f
			break
		}
	}
	if nodeField == "" {
		return ev
	}
	from := end.Add(-r.Window)
	must := groupQuery(r, ent, from, end)
	pods := obj{"terms": obj{"field": "kubernetes.pod.name", "size": 5}}
	if m := metricAgg(r); m != nil {
		if r.Aggregation == "percentile" {
			m = obj{"max": obj{"field": r.Field}}
		}
		pods["aggs"] = obj{"v": m}
		pods["terms"].(obj)["order"] = obj{"v": "desc"}
	}
	contrib := obj{"size": 0, "query": obj{"bool": obj{"filter": must}}, "aggs": obj{"pods": pods}}
	errs := obj{"size": 0, "track_total_hits": true, "query": obj{"bool": obj{"filter": []any{
		timeRange("@timestamp", from, end), obj{"term": obj{nodeField: ent.Labels[nodeField]}}, errorLevel,
	}}}}
	var a struct {
		Aggregations struct {
			Pods json.RawMessage `json:"pods"`
		} `json:"aggregations"`
	}
	var b struct {
		Hits struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
		} `json:"hits"`
	}
	if err := e.o.Client.MSearch(ctx, []string{r.Index, "logs-*"}, []any{contrib, errs}, []any{&a, &b}); err != nil {
		e.o.Log.Warn("alerting: evidence", "rule", r.Name, "err", err)
		return ev
	}
	ev.TopContributors = terms(a.Aggregations.Pods)
	ev.ErrorLines = b.Hits.Total.Value
	return ev
}

// discoverURL links Kibana Discover to the window and group; "" without
// a Kibana URL.
func discoverURL(base string, r *rules.Rule, group map[string]string, from, to time.Time) string {
	if base == "" {
		return ""
	}
	var kql []string
	for _, f := range r.GroupBy {
		kql = append(kql, fmt.Sprintf("%s:%q", f, group[f]))
	}
	g := fmt.Sprintf("(time:(from:'%s',to:'%s'))", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	a := fmt.Sprintf("(query:(language:kuery,query:'%s'))", rison(strings.Join(kql, " and ")))
	return strings.TrimRight(base, "/") + "/app/discover#/?_g=" + url.QueryEscape(g) + "&_a=" + url.QueryEscape(a)
}

// rison escapes s for a quoted Rison string.
func rison(s string) string {
	return strings.NewReplacer("!", "!!", "'", "!'").Replace(s)
}

// groupQuery is r's query for the group of ent's alert.
func groupQuery(r *rules.Rule, ent *state.Entry, from, end time.Time) []any {
	must := []any{query(r, from, end)}
	for _, g := range r.GroupBy {
		if v := ent.Labels[g]; v != "" {
			must = append(must, obj{"term": obj{g: v}})
		} else {
			must = append(must, obj{"bool": obj{"must_not": obj{"exists": obj{"field": g}}}})
		}
	}
	return must
}

// messageSample is how many matching messages topMessages reads: their
// counts are exact when the window holds no more.
const messageSample = 1000

// topMessages returns the 5 most frequent first lines (cut to 200 bytes)
// of the messages of the group in the window, counted over the latest
// messageSample documents (the message field is full text, which has no
// exact terms aggregation without scripting).
func (e *Evaluator) topMessages(ctx context.Context, r *rules.Rule, ent *state.Entry, end time.Time) []alert.Count {
	body := obj{"size": messageSample, "_source": []string{"message"}, "sort": []any{obj{r.TimestampField: "desc"}},
		"query": obj{"bool": obj{"filter": groupQuery(r, ent, end.Add(-r.Window), end)}}}
	var res struct {
		Hits struct {
			Hits []struct {
				Source struct {
					Message any `json:"message"`
				} `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := e.o.Client.Search(ctx, r.Index, body, &res); err != nil {
		e.o.Log.Warn("alerting: evidence", "rule", r.Name, "err", err)
		return nil
	}
	counts := map[string]int64{}
	for _, h := range res.Hits.Hits {
		m, ok := h.Source.Message.(string)
		if !ok {
			continue
		}
		m, _, _ = strings.Cut(m, "\n")
		m = strings.TrimRight(m, "\r")
		if len(m) > 200 {
			m = strings.ToValidUTF8(m[:200], "")
		}
		counts[m]++
	}
	top := make([]alert.Count, 0, len(counts))
	for k, n := range counts {
		top = append(top, alert.Count{Key: k, Count: n})
	}
	slices.SortFunc(top, func(a, b alert.Count) int {
		if a.Count != b.Count {
			return int(b.Count - a.Count)
		}
		return strings.Compare(a.Key, b.Key)
	})
	return top[:min(5, len(top))]
}
