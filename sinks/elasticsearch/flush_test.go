package elasticsearch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/sinks"
)

// holdingProxy forwards to Elasticsearch and records how many events each
// bulk request carried; while held, a bulk request waits before it is
// forwarded until release.
type holdingProxy struct {
	srv *httptest.Server
	tr  *http.Transport

	mu      sync.Mutex
	gate    chan struct{} // nil: not held; else closed by release
	bulks   []int         // events per bulk request, in arrival order
	arrived chan struct{} // one per bulk request (the first 100)
}

func newHoldingProxy(t testing.TB, target string) *holdingProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{tr: &http.Transport{}, arrived: make(chan struct{}, 100)}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = p.tr
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/_bulk" {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			p.mu.Lock()
			p.bulks = append(p.bulks, bytes.Count(body, []byte("\n"))/2)
			gate := p.gate
			p.mu.Unlock()
			select {
			case p.arrived <- struct{}{}:
			default: // nobody counts arrivals this far
			}
			if gate != nil {
				select {
				case <-gate:
				case <-r.Context().Done():
					return
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		p.release()
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

func (p *holdingProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = make(chan struct{})
}

func (p *holdingProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

func (p *holdingProxy) Bulks() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.bulks)
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A Write whose items the flusher holds while nothing more is expected is
// sent at once, not after FlushInterval: with an interval far beyond the
// Write's deadline, the Write still succeeds (issue 17), as one request.
func TestLoneWriteNotHeldForInterval(t *testing.T) {
	for _, n := range []int{1, 7} {
		p := newHoldingProxy(t, esURL)
		cfg := testConfig()
		cfg.URLs = []string{p.srv.URL}
		cfg.FlushInterval = time.Hour
		s := newSink(t, cfg)
		if err := s.Setup(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := s.Write(ctx, makeBatch(uniqueNS(t), 0, n))
		cancel()
		if err != nil {
			t.Fatalf("Write of %d events: %v (held for flush_interval?)", n, err)
		}
		checkResult(t, res, n, 0)
		if b := p.Bulks(); !slices.Equal(b, []int{n}) {
			t.Errorf("bulk requests of %v events, want one of %d", b, n)
		}
	}
}

// Writes handed in while every request slot is busy share one bulk
// request, sent as soon as a slot frees (not after FlushInterval).
func TestConcurrentWritesShareBulks(t *testing.T) {
	p := newHoldingProxy(t, esURL)
	cfg := testConfig()
	cfg.URLs = []string{p.srv.URL}
	cfg.FlushInterval = time.Hour
	cfg.MaxConcurrentRequests = 1
	s := newSink(t, cfg)
	if err := s.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	ns := uniqueNS(t)
	p.hold()
	var wg sync.WaitGroup
	writeAsync := func(first, n int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			checkResult(t, write(t, s, makeBatch(ns, first, n)), n, 0)
		}()
	}
	writeAsync(0, 1) // takes the only slot, held at the proxy
	select {
	case <-p.arrived:
	case <-time.After(time.Minute):
		t.Fatal("a lone Write was not sent (held for flush_interval?)")
	}
	for w := 1; w <= 5; w++ {
		writeAsync(w*100, 100)
	}
	waitFor(t, "the five Writes to hand over their items", func() bool { return s.handed.Load() == 6 })
	if b := p.Bulks(); len(b) != 1 {
		t.Fatalf("bulk requests %v while the only slot was busy, want just the first", b)
	}
	p.release()
	wg.Wait()
	if b := p.Bulks(); !slices.Equal(b, []int{1, 500}) {
		t.Errorf("bulk requests of %v events, want [1 500]: the Writes made while the slot was busy share one", b)
	}
}

// The flusher holds items for a Write that is still preparing its own, and
// sends them once that Write leaves without items; FlushInterval bounds the
// wait when it does not.
func TestPreparingWriteIsWaitedFor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		leaves   bool // the preparing Write leaves without items
	}{
		{"leaves", time.Hour, true},
		{"interval", 300 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newHoldingProxy(t, esURL)
			cfg := testConfig()
			cfg.URLs = []string{p.srv.URL}
			cfg.FlushInterval = tc.interval
			s := newSink(t, cfg)
			if err := s.Setup(context.Background()); err != nil {
				t.Fatal(err)
			}
			s.preparing.Add(1) // a Write that has entered, its items not yet handed over
			done := make(chan sinks.Result, 1)
			go func() { done <- write(t, s, makeBatch(uniqueNS(t), 0, 3)) }()
			waitFor(t, "the Write to hand over its items", func() bool { return s.handed.Load() == 1 })
			if tc.leaves {
				if b := p.Bulks(); len(b) != 0 {
					t.Fatalf("bulk requests %v while a Write was preparing, want none before it leaves", b)
				}
				s.preparing.Add(-1) // what Write does when it returns without items
				s.poke()
			}
			checkResult(t, <-done, 3, 0)
			if !tc.leaves {
				s.preparing.Add(-1)
			}
			if b := p.Bulks(); !slices.Equal(b, []int{3}) {
				t.Errorf("bulk requests of %v events, want one of 3", b)
			}
		})
	}
}

// BenchmarkTrickleWriters: many writers (memory-buffered agent streams)
// each writing one event at a time, with the default flush settings.
// Reported: events per bulk request (bulks must not collapse into
// one-event requests) and each Write's mean time to delivery.
func BenchmarkTrickleWriters(b *testing.B) {
	for _, writers := range []int{10, 200} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			p := newHoldingProxy(b, esURL)
			cfg := testConfig()
			cfg.URLs = []string{p.srv.URL}
			cfg.FlushInterval, cfg.RetryInitial, cfg.RetryMax = 0, 0, 0 // defaults
			s, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			ns := uniqueNS(b)
			if _, err := s.Write(context.Background(), makeBatch(ns, -1, 1)); err != nil {
				b.Fatal(err)
			}
			before := len(p.Bulks())
			var next atomic.Int64
			var waited atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						eb := makeBatch(ns, int(i), 1)
						start := time.Now()
						res, err := s.Write(context.Background(), eb)
						waited.Add(int64(time.Since(start)))
						if err != nil || !res.OK() {
							b.Errorf("Write: %v %+v", err, res)
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			bulks := p.Bulks()[before:]
			b.ReportMetric(float64(b.N)/float64(len(bulks)), "events/bulk")
			b.ReportMetric(float64(waited.Load())/float64(b.N)/1e6, "ms/write")
		})
	}
}
