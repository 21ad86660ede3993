package syslog

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

type framed struct {
	msg string
	cut bool
}

func TestReadFramed(t *testing.T) {
	long := strings.Repeat("x", 300)
	cases := []struct {
		name string
		in   string
		max  int
		want []framed
	}{
		{"newline", "<134>a b\n<134>c\r\n\n<14>last", 1024, []framed{{"<134>a b", false}, {"<134>c", false}, {"<14>last", false}}},
		{"newline cut", "<1>" + long + "\nnext\n", 100, []framed{{("<1>" + long)[:100], true}, {"next", false}}},
		{"newline exactly max", "<1>" + long[:97] + "\n", 100, []framed{{"<1>" + long[:97], false}}},
		{"octet counting", "8 <134>a b6 <14>cd\n3 xyz", 1024, []framed{{"<134>a b", false}, {"<14>cd", false}, {"xyz", false}}},
		{"octet counting cut", fmt.Sprintf("%d <1>%s5 after", len(long)+3, long), 50, []framed{{("<1>" + long)[:50], true}, {"after", false}}},
		{"octet counting with newline between frames", "3 abc\n3 def", 1024, []framed{{"abc", false}, {"def", false}}},
		{"empty", "", 10, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []framed
			// A small reader buffer: lines longer than it take the slow path.
			r := bufio.NewReaderSize(strings.NewReader(c.in), 16)
			err := ReadFramed(r, c.max, func(b []byte, cut bool) { got = append(got, framed{string(b), cut}) })
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	for _, bad := range []string{"12x <1>", "5 ab", "1234567890 x"} {
		err := ReadFramed(bufio.NewReader(strings.NewReader(bad)), 100, func([]byte, bool) {})
		if err == nil || err == io.EOF {
			t.Errorf("%q: err %v, want a framing error", bad, err)
		}
	}
}

func open(t *testing.T, listen, dir string) *Input {
	t.Helper()
	in, err := Open(Config{Name: "sys", Listen: listen, Dir: dir, MaxMessageBytes: 1024, Location: time.UTC,
		CommitInterval: 10 * time.Millisecond,
		Fields:         map[string]*ferryv1.Value{"service.environment": {Kind: &ferryv1.Value_Str{Str: "prod"}}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

type got struct {
	msg  string
	off  int64
	time int64
	fl   uint32
}

// collect reads chunks until n events arrived.
func collect(t *testing.T, out <-chan *tail.Chunk, n int) ([]got, []*tail.Chunk) {
	t.Helper()
	var evs []got
	var chunks []*tail.Chunk
	deadline := time.After(10 * time.Second)
	for len(evs) < n {
		select {
		case c := <-out:
			chunks = append(chunks, c)
			for i := range c.Recs {
				r := &c.Recs[i]
				evs = append(evs, got{string(c.Message(r)), r.Off, r.Time, r.Flags})
			}
		case <-deadline:
			t.Fatalf("got %d events, want %d: %v", len(evs), n, evs)
		}
	}
	return evs, chunks
}

// TestSpoolRestart: messages received over TCP come out of the spool with
// their header stripped; after a restart, what was not acknowledged comes
// again with the same offsets (so the same ids) and what was does not.
func TestSpoolRestart(t *testing.T) {
	dir := t.TempDir()
	in := open(t, "tcp://127.0.0.1:0", dir)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *tail.Chunk)
	done := make(chan struct{})
	go func() { defer close(done); _ = in.Run(ctx, out) }()
	c, err := net.Dial("tcp", in.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "<134>Nov 30 11:25:44 haproxy[1]: first\n")
	evs1, chunks := collect(t, out, 1)
	if evs1[0].msg != "first" || time.Unix(0, evs1[0].time).UTC().Format("Jan 2 15:04:05") != "Nov 30 11:25:44" {
		t.Fatalf("first event %+v", evs1[0])
	}
	if in.File().Fields["service.environment"].GetStr() != "prod" || !strings.HasPrefix(in.File().ID, "syslog:") {
		t.Fatalf("file %+v", in.File())
	}
	in.Commit(chunks[len(chunks)-1].End) // acknowledged
	// Octet counting on a second connection, RFC 5424.
	c2, err := net.Dial("tcp", in.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	m := "<134>1 2026-11-30T11:25:44.5Z h app - - - second"
	fmt.Fprintf(c2, "%d %s%d %s", len(m), m, len(m), strings.Replace(m, "second", "third!", 1))
	evs2, _ := collect(t, out, 2)
	if evs2[0].msg != "second" || evs2[1].msg != "third!" {
		t.Fatalf("events %+v", evs2)
	}
	// Wait for the commit tick to persist the first chunk's ack.
	deadline := time.Now().Add(5 * time.Second)
	for in.spl.Stats().PendingRecords > 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	_ = c.Close()
	_ = c2.Close()
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}

	in2 := open(t, "tcp://127.0.0.1:0", dir)
	if in2.File().ID != in.File().ID {
		t.Fatalf("spool id changed: %s, then %s", in.File().ID, in2.File().ID)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	out2 := make(chan *tail.Chunk)
	go func() { defer close(done2); _ = in2.Run(ctx2, out2) }()
	again, _ := collect(t, out2, 2)
	if fmt.Sprint(again) != fmt.Sprint(evs2) {
		t.Fatalf("after restart %+v, want the unacknowledged %+v", again, evs2)
	}
	select {
	case c := <-out2:
		t.Fatalf("more after restart: %d events", len(c.Recs))
	case <-time.After(50 * time.Millisecond):
	}
	cancel2()
	<-done2
	_ = in2.Close()
}

// TestUDPAndDrops: datagrams are messages; long ones are cut and flagged;
// while nothing reads the spool and the queue is full, datagrams are
// dropped and counted, never blocking.
func TestUDP(t *testing.T) {
	in := open(t, "udp://127.0.0.1:0", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan *tail.Chunk, 16)
	done := make(chan struct{})
	go func() { defer close(done); _ = in.Run(ctx, out) }()
	c, err := net.Dial("udp", in.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "<134>Nov 30 11:25:44 haproxy[1]: hello\n")
	fmt.Fprintf(c, "<134>Nov 30 11:25:44 haproxy[1]: %s", strings.Repeat("y", 2000))
	evs, _ := collect(t, out, 2)
	if evs[0].msg != "hello" || evs[0].fl != 0 {
		t.Fatalf("first %+v", evs[0])
	}
	if evs[1].fl&uint32(ferryv1.Flag_FLAG_TRUNCATED) == 0 || len(evs[1].msg) != 1024-len("<134>Nov 30 11:25:44 haproxy[1]: ") {
		t.Fatalf("long one: flags %d, %d bytes", evs[1].fl, len(evs[1].msg))
	}
	if evs[0].off == evs[1].off {
		t.Fatal("two messages share an offset")
	}
	cancel()
	<-done
	_ = in.Close()
	if n := in.Counters()["ferry_agent_syslog_truncated_total"]; n != 1 {
		t.Fatalf("truncated counter %d", n)
	}
}

func openSmall(t *testing.T, listen string) *Input {
	t.Helper()
	in, err := Open(Config{Name: "small", Listen: listen, Dir: t.TempDir(), MaxMessageBytes: 1024, SpoolMaxBytes: 1,
		QueueBytes: 32 << 10, CommitInterval: 5 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func waitCounter(t *testing.T, in *Input, name string, cond func(uint64) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(in.Counters()[name]) {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed at %d", name, in.Counters()[name])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSpoolFullTCP: while the spool is full (nothing acknowledged), the
// input stops reading the TCP connection, so the sender is held back;
// once the messages are acknowledged, every one arrives, in order, none
// lost.
func TestSpoolFullTCP(t *testing.T) {
	in := openSmall(t, "tcp://127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *tail.Chunk)
	done := make(chan struct{})
	go func() { defer close(done); _ = in.Run(ctx, out) }()
	c, err := net.Dial("tcp", in.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	const n = 40000 // about 40 MB: more than the spool (2 MiB), the queue and the socket buffers
	pad := strings.Repeat("p", 1000)
	wrote := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(c)
		for i := range n {
			fmt.Fprintf(w, "<14>msg %d %s\n", i, pad)
		}
		wrote <- w.Flush()
	}()
	waitCounter(t, in, "ferry_agent_syslog_spool_full_total", func(v uint64) bool { return v > 0 })
	select {
	case err := <-wrote:
		t.Fatalf("the sender wrote everything (%v) while the spool was full: no backpressure", err)
	default:
	}
	// Acknowledge as the shipper would: everything arrives.
	next := 0
	deadline := time.After(60 * time.Second)
	for next < n {
		select {
		case ch := <-out:
			for i := range ch.Recs {
				var got int
				if _, err := fmt.Sscanf(string(ch.Message(&ch.Recs[i])), "msg %d", &got); err != nil || got != next {
					t.Fatalf("message %q, want msg %d", ch.Message(&ch.Recs[i]), next)
				}
				next++
			}
			in.Commit(ch.End)
		case <-deadline:
			t.Fatalf("%d of %d messages arrived", next, n)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if d := in.Counters()["ferry_agent_syslog_dropped_total"]; d != 0 {
		t.Fatalf("%d TCP messages dropped", d)
	}
	cancel()
	<-done
	_ = c.Close()
	_ = in.Close()
}

// TestSpoolFullUDP: while the spool is full, datagrams are dropped and
// counted; the input never blocks on them.
func TestSpoolFullUDP(t *testing.T) {
	in := openSmall(t, "udp://127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *tail.Chunk)
	done := make(chan struct{})
	go func() { defer close(done); _ = in.Run(ctx, out) }()
	c, err := net.Dial("udp", in.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("u", 1000)
	i := 0
	send := func(k int) {
		for range k {
			fmt.Fprintf(c, "<14>msg %d %s", i, pad)
			i++
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // let the reader keep up with the socket
			}
		}
	}
	for in.Counters()["ferry_agent_syslog_spool_full_total"] == 0 {
		if i > 100000 {
			t.Fatalf("spool not full after %d datagrams", i)
		}
		send(100)
	}
	// The spool is full and stays full (nothing is acknowledged): the
	// input keeps reading and drops what it cannot queue.
	before := in.Counters()["ferry_agent_syslog_dropped_total"]
	send(2000)
	waitCounter(t, in, "ferry_agent_syslog_dropped_total", func(v uint64) bool { return v >= before+1000 })
	cancel()
	<-done
	_ = c.Close()
	_ = in.Close()
}
