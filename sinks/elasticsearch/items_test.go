package elasticsearch

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferrylogs/ferry/pipeline/event"
)

// checkItems compares the sink's item counts with want.
func checkItems(t *testing.T, s *Sink, want ItemCounts, when string) {
	t.Helper()
	if got := s.Items(); got != want {
		t.Fatalf("%s: items %+v, want %+v", when, got, want)
	}
}

// TestItemCounts: against the real Elasticsearch, each bulk item is
// counted once by what it answered: new documents created, re-sent ones
// duplicate, a mapping conflict dead-lettered (and its re-send too, its
// dead letter being there already), 429s retried, and a document too large
// for the cluster dropped.
func TestItemCounts(t *testing.T) {
	cfg := testConfig()
	ns := uniqueNS(t)
	cfg.DeadLetterDataStream = "logs-ferry.deadletter-" + ns
	s := newSink(t, cfg)
	checkItems(t, s, ItemCounts{}, "new sink")

	b := makeBatch(ns, 0, 50)
	checkResult(t, write(t, s, b), 50, 0)
	checkItems(t, s, ItemCounts{Created: 50}, "first write")
	checkResult(t, write(t, s, b), 50, 0)
	checkItems(t, s, ItemCounts{Created: 50, Duplicate: 50}, "same batch again")

	bad := makeBatch(ns, 50, 10)
	event.SetField(bad.Events[4], "http.response.status_code", event.Str("not-a-number"))
	event.SetField(bad.Events[7], "http.response.status_code", event.Str("nor-this"))
	checkResult(t, write(t, s, bad), 8, 2)
	checkItems(t, s, ItemCounts{Created: 58, Duplicate: 50, DeadLettered: 2}, "two mapping conflicts")
	checkResult(t, write(t, s, bad), 8, 2)
	checkItems(t, s, ItemCounts{Created: 58, Duplicate: 58, DeadLettered: 4}, "mapping conflicts again")
	if n := count(t, cfg.DeadLetterDataStream); n != 2 {
		t.Fatalf("dead-letter _count %d, want 2", n)
	}

	// 429s: the first request has every second item refused, then all pass.
	p := newRejectingProxy(t, esURL, 0, 1)
	pcfg := testConfig()
	pcfg.URLs = []string{p.URL()}
	ps := newSink(t, pcfg)
	checkResult(t, write(t, ps, makeBatch(ns, 100, 40)), 40, 0)
	checkItems(t, ps, ItemCounts{Created: 40, Retried: 20}, "20 of 40 refused with 429 once")

	// A document larger than the cluster takes is dropped; the others of
	// its batch are created.
	var refused atomic.Int64
	lcfg := testConfig()
	lcfg.URLs = []string{sizeLimitProxy(t, 64<<10, &refused)}
	ls := newSink(t, lcfg)
	big := makeBatch(ns, 200, 10)
	big.Events[3].Message = []byte(strings.Repeat("x", 100<<10))
	res := write(t, ls, big)
	if res.Delivered != 9 || len(res.Failed) != 1 {
		t.Fatalf("result %+v: want 9 delivered, 1 failed", res)
	}
	checkItems(t, ls, ItemCounts{Created: 9, Dropped: 1}, "one document too large")
}
