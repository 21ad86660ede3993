package elasticsearch

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
)

// TestPooledBuffersSurviveRetries: Writes run concurrently, in rounds,
// while the proxy answers every other item of several bulk requests with a
// 429, so that some Writes' items wait for a retry while other Writes end
// and give their document buffers back to the pool, which later Writes
// reuse. Every document stored must still be its own event's: a buffer
// given back while an item of it was still to be sent would have it carry
// another event's document under its _id.
func TestPooledBuffersSurviveRetries(t *testing.T) {
	p := newRejectingProxy(t, esURL, 0, 8)
	cfg := testConfig()
	cfg.URLs = []string{p.URL()}
	s := newSink(t, cfg)
	ns := uniqueNS(t)
	const writers, rounds, n = 4, 4, 150
	want := map[string]string{} // _id: message
	for r := range rounds {
		var wg sync.WaitGroup
		for w := range writers {
			b := makeBatch(ns, (r*writers+w)*n, n)
			for _, e := range b.Events {
				want[string(event.AppendIDString(nil, e.GetId()))] = string(e.GetMessage())
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				res, err := s.Write(ctx, b)
				if err != nil || !res.OK() || res.Delivered != n {
					t.Errorf("Write: %+v, %v; want %d delivered", res, err, n)
				}
			}()
			if w%2 == 1 {
				time.Sleep(5 * time.Millisecond) // stagger: some Writes end while others retry
			}
		}
		wg.Wait()
	}
	if len(p.Requests()) < 8 {
		t.Fatalf("%d bulk requests: the proxy's 429s were not all used", len(p.Requests()))
	}
	index := "logs-kubernetes.container-" + ns
	if got := count(t, index); got != len(want) {
		t.Fatalf("_count %d, want %d", got, len(want))
	}
	res := esDo(t, http.MethodPost, "/"+index+"/_search?size=10000", `{"_source":["message"],"query":{"match_all":{}}}`)
	hits, _ := dig(res, "hits", "hits").([]any)
	if len(hits) != len(want) {
		t.Fatalf("%d hits, want %d", len(hits), len(want))
	}
	for _, h := range hits {
		id, _ := dig(h, "_id").(string)
		msg, _ := dig(h, "_source", "message").(string)
		if want[id] != msg {
			t.Fatalf("document %s holds message %q, want %q: its buffer was reused while it was still to be sent", id, msg, want[id])
		}
	}
}
