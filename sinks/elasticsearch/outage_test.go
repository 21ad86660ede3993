package elasticsearch

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/internal/testlog"
	"github.com/ferrylogs/ferry/sinks"
)

// hangingProxy forwards to Elasticsearch, except that while hang is set a
// bulk request gets no answer at all until the client gives up, as from a
// cluster stopped with SIGSTOP.
type hangingProxy struct {
	srv  *httptest.Server
	tr   *http.Transport
	hang atomic.Bool
}

func newHangingProxy(t *testing.T, target string) *hangingProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &hangingProxy{tr: &http.Transport{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = p.tr
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_bulk" && p.hang.Load() {
			// The server notices that the client gave up only once the
			// body is read.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

// TestHangingClusterLogsAtCadence (issue 19, case 10e): a cluster that
// hangs is warned about long before a request times out; while it hangs,
// failed attempts are debug lines and a warning comes at a steady cadence
// with the counts since the last one; once it answers again, one line says
// that delivery resumed, after how long and how many attempts.
func TestHangingClusterLogsAtCadence(t *testing.T) {
	p := newHangingProxy(t, esURL)
	cfg := testConfig()
	cfg.URLs = []string{p.srv.URL}
	log, logs := testlog.New(t, "sink")
	s, err := New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	// Templates and the data stream are set up by a first write at the
	// normal timeouts, so that the short ones below apply to bulk requests
	// only (on a loaded machine a template PUT can take longer than 300ms).
	ns := uniqueNS(t)
	if res, err := s.Write(context.Background(), makeBatch(ns, 100, 1)); err != nil || !res.OK() {
		t.Fatalf("first write: %+v, %v", res, err)
	}
	logs.Reset()
	p.hang.Store(true)
	const every = time.Second
	s.reqTimeout, s.slowAfter, s.outage.every = 300*time.Millisecond, 100*time.Millisecond, every

	type outcome struct {
		res sinks.Result
		err error
	}
	done := make(chan outcome, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := s.Write(ctx, makeBatch(ns, 0, 10))
		done <- outcome{res, err}
	}()

	waitLog := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	warnings := func() []string { return logs.Lines("level=WARN") }
	waitLog("the first warning", func() bool { return len(warnings()) > 0 })
	if w := warnings()[0]; !strings.Contains(w, "Elasticsearch does not answer: bulk request of 10 events unanswered for 100ms; waiting up to 300ms") {
		t.Errorf("first warning %q, want one saying the cluster does not answer, before the request times out", w)
	}
	const failures = 8
	waitLog("failed attempts", func() bool { return logs.Count("bulk request failed, retrying") >= failures })
	elapsed := time.Since(start)
	w := warnings()
	if max := 2 + int(elapsed/every); len(w) > max {
		t.Errorf("%d warnings in %v, want at most %d (one per %v):\n%s", len(w), elapsed, max, every, strings.Join(w, "\n"))
	}
	still := logs.Lines("Elasticsearch delivery still failing")
	if len(still) == 0 || !strings.Contains(still[0], "attempts_since_last_warning=") || strings.Contains(still[0], "attempts_since_last_warning=0 ") {
		t.Errorf("no cadence warning with the attempts since the last one: %q", still)
	}

	p.hang.Store(false)
	select {
	case o := <-done:
		if o.err != nil || !o.res.OK() || o.res.Delivered != 10 {
			t.Fatalf("Write after the cluster came back: %+v, %v", o.res, o.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Write did not return after the cluster came back")
	}
	// The items are resolved (and Write returns) as the answer is read;
	// the line saying so is logged right after, by the request's goroutine.
	waitLog("the recovery line", func() bool { return logs.Count("Elasticsearch delivery resumed") > 0 })
	resumed := logs.Lines("Elasticsearch delivery resumed")
	if len(resumed) != 1 || !strings.Contains(resumed[0], "level=INFO") || !strings.Contains(resumed[0], "after=") ||
		strings.Contains(resumed[0], "failed_attempts=0") {
		t.Errorf("recovery lines %q, want one at INFO with how long and how many attempts failed", resumed)
	}
	t.Logf("%d failed attempts, %d warnings; %s", logs.Count("bulk request failed, retrying"), len(warnings()), resumed)
}
