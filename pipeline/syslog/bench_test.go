package syslog

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/tail"
)

// A HAProxy httplog line as HAProxy sends it (RFC 3164 header), 230 bytes.
const benchLine = `<134>Nov 30 11:25:44 haproxy[13509]: 81.2.69.142:40001 [30/Nov/2026:11:25:44.260] fe_http be_app/app1 0/0/0/1/1 200 128 - - ---- 1/1/0/0/0 0/0 {example.com|test/1.0} {r1} "GET /index.html?a=1&b=two HTTP/1.1"`

// benchInput runs an input whose chunks are acknowledged as soon as they
// come out of the spool (the shipper is not measured), and returns the
// count of events out so far.
func benchInput(b *testing.B, listen string) (*Input, func() int, func()) {
	in, err := Open(Config{Name: "bench", Listen: listen, Dir: b.TempDir(), CommitInterval: 50 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *tail.Chunk, 4)
	done := make(chan struct{})
	go func() { defer close(done); _ = in.Run(ctx, out) }()
	count := make(chan int, 1)
	count <- 0
	go func() {
		for c := range out {
			n := <-count
			count <- n + len(c.Recs)
			in.Commit(c.End)
		}
	}()
	get := func() int { n := <-count; count <- n; return n }
	stop := func() { cancel(); <-done; _ = in.Close() }
	return in, get, stop
}

// BenchmarkIngestTCP: messages per second one TCP connection gets into
// the spool (fsynced) and out again, none lost (TCP holds the sender back).
//
//	go test -run XXX -bench IngestTCP -benchtime 200000x ./pipeline/syslog/
func BenchmarkIngestTCP(b *testing.B) {
	in, got, stop := benchInput(b, "tcp://127.0.0.1:0")
	defer stop()
	c, err := net.Dial("tcp", in.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	b.SetBytes(int64(len(benchLine) + 1))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		w.WriteString(benchLine)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	for got() < b.N {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if d := in.Counters()["ferry_agent_syslog_dropped_total"]; d != 0 {
		b.Fatalf("%d dropped", d)
	}
}

// BenchmarkIngestUDP: messages per second the input takes over UDP with
// no loss, from a sender that keeps at most 1024 datagrams ahead of what
// came out of the spool (well inside the socket buffer and the queue). It
// fails if any datagram is lost.
//
//	go test -run XXX -bench IngestUDP -benchtime 200000x ./pipeline/syslog/
func BenchmarkIngestUDP(b *testing.B) {
	in, got, stop := benchInput(b, "udp://127.0.0.1:0")
	defer stop()
	c, err := net.Dial("udp", in.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := []byte(benchLine)
	recv := func() int { return int(in.Counters()["ferry_agent_syslog_received_total"]) }
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for wait := time.Now(); i-got() >= 1024; {
			if time.Since(wait) > 5*time.Second {
				b.Fatalf("datagrams lost: %d sent, %d received, %d dropped by the input", i, recv(), in.Counters()["ferry_agent_syslog_dropped_total"])
			}
			time.Sleep(50 * time.Microsecond)
		}
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for got() < b.N && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(got())/time.Since(start).Seconds(), "msgs/s")
	if n := got(); n != b.N {
		b.Fatalf("%d of %d datagrams arrived (%d dropped by the input)", n, b.N, in.Counters()["ferry_agent_syslog_dropped_total"])
	}
}

func ExampleReadFramed() {
	r := bufio.NewReader(strings.NewReader("11 <14>1 - - -5 hello"))
	_ = ReadFramed(r, 1024, func(b []byte, _ bool) { fmt.Printf("%q\n", b) })
	// Output:
	// "<14>1 - - -"
	// "hello"
}
