//go:build unix

package elasticsearch

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// writeCounter records the Writes it gets.
type writeCounter struct {
	mu     sync.Mutex
	writes []int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, len(p))
	w.mu.Unlock()
	return len(p), nil
}

// TestBodyReaderWritesOnce: a pooled body reaches the server whole, sent
// chunked (so that net/http takes the body's WriteTo instead of copying it
// through a LimitReader), and WriteTo hands the whole rest of the body to
// one Write.
func TestBodyReaderWritesOnce(t *testing.T) {
	want := strings.Repeat("{\"index\":{}}\n{\"message\":\"x\"}\n", 20000) // ~600 KB
	var got []byte
	var te []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		te = r.TransferEncoding
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	cfg := testConfig()
	cfg.URLs = []string{srv.URL}
	c, _, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{client: c, reqTimeout: requestTimeout}
	var pool bodyPool
	body := pool.get()
	body.addSegment([]byte(want), nil)
	res, err := s.doBody(context.Background(), http.MethodPost, "/_bulk", "", "application/x-ndjson", body)
	body.done()
	if err != nil || res.status != 200 {
		t.Fatalf("doBody: %+v, %v", res, err)
	}
	if string(got) != want {
		t.Fatalf("server got %d bytes, want %d", len(got), len(want))
	}
	if len(te) != 1 || te[0] != "chunked" {
		t.Fatalf("Transfer-Encoding %v, want chunked", te)
	}
	if body.open != 0 || !body.finished {
		t.Fatalf("body open=%d finished=%v after the request", body.open, body.finished)
	}

	var wc writeCounter
	r := (&bodyPool{}).get()
	r.addSegment([]byte(want), nil)
	br := r.reader()
	head := make([]byte, 100)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatal(err)
	}
	n, err := br.(io.WriterTo).WriteTo(&wc)
	if err != nil || int(n) != len(want)-100 || len(wc.writes) != 1 {
		t.Fatalf("WriteTo: %d bytes, %v, writes %v; want %d bytes in one Write", n, err, wc.writes, len(want)-100)
	}
	if m, err := br.Read(head); m != 0 || err != io.EOF {
		t.Fatalf("Read after WriteTo: %d, %v; want EOF", m, err)
	}
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	started chan struct{}
	release chan struct{}
	got     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	close(w.started)
	<-w.release
	return w.got.Write(p)
}

// TestBodyReaderCloseDuringWrite: a Close while WriteTo writes (the
// transport giving up on a request) returns at once, and the body is not
// released (handed back to the pool for another request) before the Write
// is over; reads after the Close fail.
func TestBodyReaderCloseDuringWrite(t *testing.T) {
	r := (&bodyPool{}).get()
	r.addSegment([]byte("some body"), nil)
	br := r.reader()
	w := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := br.(io.WriterTo).WriteTo(w)
		done <- err
	}()
	<-w.started
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	r.done()
	r.mu.Lock()
	open := r.open
	r.mu.Unlock()
	if open != 1 {
		t.Fatalf("body has %d open readers while a Write of it is in progress, want 1", open)
	}
	close(w.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	open = r.open
	r.mu.Unlock()
	if open != 0 {
		t.Fatalf("body has %d open readers after the Write, want 0", open)
	}
	if w.got.String() != "some body" {
		t.Fatalf("wrote %q", w.got.String())
	}
	if _, err := br.Read(make([]byte, 4)); err != errBodyClosed {
		t.Fatalf("Read after Close: %v, want errBodyClosed", err)
	}
}

// BenchmarkSendBody sends a 2 MiB bulk body to a local server that
// discards it: with Content-Length (net/http copies the body through a 32
// KiB buffer) and chunked from bodyReader.WriteTo (one Write of the body).
// cpu-ns/MiB is the process's CPU (client and server) per MiB sent.
func BenchmarkSendBody(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	cfg := testConfig()
	cfg.URLs = []string{srv.URL}
	c, _, err := newClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	s := &Sink{client: c, reqTimeout: requestTimeout}
	payload := bytes.Repeat([]byte("{\"create\":{\"_id\":\"abc\"}}\n{\"message\":\"x\"}\n"), 2<<20/42)
	for _, chunked := range []bool{false, true} {
		name := "content-length"
		if chunked {
			name = "chunked-writeto"
		}
		b.Run(name, func(b *testing.B) {
			var pool bodyPool
			b.SetBytes(int64(len(payload)))
			cpu0 := cpuNow()
			for b.Loop() {
				body := pool.get()
				body.addSegment(payload, nil)
				_, err := s.perform(context.Background(), http.MethodPost, "/_bulk", "", "application/x-ndjson", body.reader, body.size, chunked)
				body.done()
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N)/(float64(len(payload))/(1<<20)), "cpu-ns/MiB")
		})
	}
}

// cpuNow returns the CPU time the process used so far, in nanoseconds.
func cpuNow() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
