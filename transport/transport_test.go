package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/parse"
	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
)

func protoEqual(a, b *ferryv1.Kubernetes) bool {
	if a == nil || b == nil {
		return a == b
	}
	return proto.Equal(a, b)
}

// runManager follows inputs with a real tail.Manager until the test ends.
func runManager(t *testing.T, inputs []tail.Input) (*tail.Manager, *checkpoint.Store) {
	t.Helper()
	store, err := checkpoint.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log, _ := newLogger(t, "tail")
	m := tail.NewManager(inputs, store, nil, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m, store
}

func storeID(t *testing.T, store *checkpoint.Store, path string) string {
	t.Helper()
	for _, e := range store.All() {
		if e.Path == path {
			return e.ID
		}
	}
	t.Fatalf("no position for %s", path)
	return ""
}

// TestEventFields tails real files with a tail.Manager and checks every
// field of every event the sink gets, and that the positions advance to the
// end of the files only through acknowledged batches.
func TestEventFields(t *testing.T) {
	root := t.TempDir()
	podDir := filepath.Join(root, "pods", "shop_web-1_uid-77", "app")
	for _, d := range []string{podDir, filepath.Join(root, "containers"), filepath.Join(root, "plain")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cid := strings.Repeat("ab", 32)
	realPath := filepath.Join(podDir, "0.log")
	link := filepath.Join(root, "containers", "web-1_shop_app-"+cid+".log")
	plainPath := filepath.Join(root, "plain", "audit.log")

	ts := func(n int) string { return fmt.Sprintf("2025-01-02T03:04:05.%09dZ", n) }
	tm := func(n int) int64 { return time.Date(2025, 1, 2, 3, 4, 5, n, time.UTC).UnixNano() }
	const (
		stdout = ferryv1.StreamName_STREAM_STDOUT
		stderr = ferryv1.StreamName_STREAM_STDERR
	)
	type want struct {
		line   string // raw line, without '\n'
		event  bool   // the line starts an event
		msg    string
		time   int64 // 0: the reading time
		stream ferryv1.StreamName
		flags  ferryv1.Flag
	}
	criLines := []want{
		{line: ts(1) + " stdout F hello world", event: true, msg: "hello world", time: tm(1), stream: stdout},
		{line: ts(2) + " stderr F oops", event: true, msg: "oops", time: tm(2), stream: stderr},
		{line: ts(3) + " stdout P part one ", event: true, msg: "part one and two", time: tm(3), stream: stdout, flags: ferryv1.Flag_FLAG_JOINED},
		{line: ts(4) + " stdout F and two"},
		{line: ts(5) + " stdout F bad \xff byte", event: true, msg: "bad \uFFFD byte", time: tm(5), stream: stdout, flags: ferryv1.Flag_FLAG_INVALID_UTF8},
		{line: "not a cri line", event: true, msg: "not a cri line", flags: ferryv1.Flag_FLAG_UNPARSED},
		// MaxLineBytes is 64: the raw line is cut at 64 bytes, 40 of
		// which are time, stream and tag.
		{line: ts(7) + " stdout F " + strings.Repeat("x", 100), event: true, msg: strings.Repeat("x", 24), time: tm(7), stream: stdout, flags: ferryv1.Flag_FLAG_TRUNCATED},
		{line: ts(8) + " stderr F \"quoted\" \\ and\ttab", event: true, msg: "\"quoted\" \\ and\ttab", time: tm(8), stream: stderr},
	}
	plainLines := []want{
		{line: "plain one", event: true, msg: "plain one"},
		{line: "plain two", event: true, msg: "plain two"},
	}
	write := func(path string, lines []want) []byte {
		var b []byte
		for _, l := range lines {
			b = append(b, l.line...)
			b = append(b, '\n')
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return b
	}
	criData := write(realPath, criLines)
	if err := os.Symlink(realPath, link); err != nil {
		t.Fatal(err)
	}
	plainData := write(plainPath, plainLines)
	realPath, _ = filepath.EvalSymlinks(realPath)
	plainPath, _ = filepath.EvalSymlinks(plainPath)

	before := time.Now().UnixNano()
	sink := &recSink{}
	srv := startServer(t, sink, ServerConfig{})
	mgr, store := runManager(t, []tail.Input{
		{Name: "containers", Container: true, Paths: []string{filepath.Join(root, "containers", "*.log")}, Format: parse.FormatCRI,
			MaxLineBytes: 64, PollInterval: 10 * time.Millisecond, GlobInterval: 10 * time.Millisecond},
		{Name: "audit", Paths: []string{filepath.Join(root, "plain", "*.log")}, Format: parse.FormatPlain, Dataset: "app.audit",
			PollInterval: 10 * time.Millisecond, GlobInterval: 10 * time.Millisecond},
	})
	// Small batches: the chunks of the files are split over several.
	tc := startClientFrom(t, srv.addr, nil, ClientConfig{BatchMaxEvents: 3, BatchTimeout: 20 * time.Millisecond, MaxInflight: 2}, mgr.Chunks(), mgr)

	committedTo := func(path string, size int) func() bool {
		return func() bool {
			for _, e := range store.All() {
				if e.Path == path {
					return e.Offset == int64(size)
				}
			}
			return false
		}
	}
	waitFor(t, "positions at the end of both files", func() bool {
		return committedTo(realPath, len(criData))() && committedTo(plainPath, len(plainData))()
	})
	after := time.Now().UnixNano()
	tc.com.check(t)

	got := map[evKey]*ferryv1.Event{}
	for _, w := range sink.snapshot() {
		if w.node != testNode {
			t.Errorf("batch %d from node %q", w.seq, w.node)
		}
		if len(w.events) > 3 {
			t.Errorf("batch %d holds %d events, BatchMaxEvents is 3", w.seq, len(w.events))
		}
		for _, e := range w.events {
			got[evKey{e.Source.GetFileId(), e.Source.GetOffset()}] = e
		}
	}

	criID, plainID := storeID(t, store, realPath), storeID(t, store, plainPath)
	kube := &ferryv1.Kubernetes{Namespace: "shop", Pod: "web-1", PodUid: "uid-77", Container: "app", ContainerId: cid}
	check := func(path, fileID, input string, lines []want, k *ferryv1.Kubernetes, fields map[string]string) {
		var off int64
		n := 0
		for _, l := range lines {
			lineOff := off
			off += int64(len(l.line)) + 1
			if !l.event {
				continue
			}
			n++
			e := got[evKey{fileID, lineOff}]
			if e == nil {
				t.Errorf("%s@%d (%q): no event", path, lineOff, l.line)
				continue
			}
			if wantID := event.ID(nil, testNode, fileID, lineOff); !bytes.Equal(e.Id, wantID) {
				t.Errorf("%s@%d: id %x, want %x", path, lineOff, e.Id, wantID)
			}
			if string(e.Message) != l.msg {
				t.Errorf("%s@%d: message %q, want %q", path, lineOff, e.Message, l.msg)
			}
			if l.time != 0 && e.TimeUnixNano != l.time {
				t.Errorf("%s@%d: time %d, want %d", path, lineOff, e.TimeUnixNano, l.time)
			}
			if l.time == 0 && (e.TimeUnixNano < before || e.TimeUnixNano > after) {
				t.Errorf("%s@%d: time %d, want the reading time in [%d, %d]", path, lineOff, e.TimeUnixNano, before, after)
			}
			if e.Stream != l.stream {
				t.Errorf("%s@%d: stream %v, want %v", path, lineOff, e.Stream, l.stream)
			}
			if e.Flags != uint32(l.flags) {
				t.Errorf("%s@%d: flags %b, want %b", path, lineOff, e.Flags, l.flags)
			}
			if e.Kind != ferryv1.Kind_KIND_LOG {
				t.Errorf("%s@%d: kind %v", path, lineOff, e.Kind)
			}
			src := e.Source
			if src.GetPath() != path || src.GetInput() != input || src.GetFileId() != fileID {
				t.Errorf("%s@%d: source %v, want path %s input %s file_id %s", path, lineOff, src, path, input, fileID)
			}
			if !protoEqual(e.Kubernetes, k) {
				t.Errorf("%s@%d: kubernetes %v, want %v", path, lineOff, e.Kubernetes, k)
			}
			if len(e.Fields) != len(fields) {
				t.Errorf("%s@%d: fields %v, want %v", path, lineOff, e.Fields, fields)
			}
			for name, v := range fields {
				if e.Fields[name].GetStr() != v {
					t.Errorf("%s@%d: field %s = %v, want %q", path, lineOff, name, e.Fields[name], v)
				}
			}
		}
		var inSink int
		for k := range got {
			if k.file == fileID {
				inSink++
			}
		}
		if inSink != n {
			t.Errorf("%s: %d distinct events in the sink, want %d", path, inSink, n)
		}
	}
	check(realPath, criID, "containers", criLines, kube, nil)
	check(plainPath, plainID, "audit", plainLines, nil, map[string]string{"data_stream.dataset": "app.audit"})
}

// TestCommitOrderWithOutOfOrderAcks: the aggregator acks batch 2 before
// batch 1; the file of batch 2 is committed only after batch 1's ack.
func TestCommitOrderWithOutOfOrderAcks(t *testing.T) {
	mk := newChunkMaker(t)
	var wire *wireLog
	sink := &recSink{hook: func(ctx context.Context, b *event.Batch, _ int) (sinks.Result, error) {
		if b.Seq == 1 {
			// Hold batch 1 until the client has the ack of batch 2.
			for {
				if _, ok := wire.finalAck(2); ok {
					break
				}
				select {
				case <-ctx.Done():
					return sinks.Result{}, ctx.Err()
				case <-time.After(time.Millisecond):
				}
			}
		}
		return sinks.Result{Delivered: len(b.Events)}, nil
	}}
	srv := startServer(t, sink, ServerConfig{})
	tc := startClient(t, srv.addr, mk, ClientConfig{BatchMaxEvents: 3, BatchTimeout: time.Hour, MaxInflight: 4}, 4)
	wire = tc.wire
	fa, fb := testFile("a"), testFile("b")
	tc.send(mk.chunk(fa, 0, "a0", "a1", "a2"), mk.chunk(fb, 100, "b0", "b1", "b2"))
	waitFor(t, "two commits", func() bool { return tc.com.count() == 2 })

	acks := tc.wire.allAcks()
	if len(acks) != 2 || acks[0].seq != 2 || acks[1].seq != 1 {
		t.Fatalf("acks %+v, want batch 2 acked before batch 1", acks)
	}
	got := tc.com.list()
	want := []commitRec{{fa.ID, 9, false}, {fb.ID, 109, false}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("commits %v, want %v", got, want)
	}
	tc.com.check(t)
}

// TestWindow: with a sink that blocks, the client has at most MaxInflight
// batches unacknowledged and stops taking chunks, so its input fills up.
func TestWindow(t *testing.T) {
	cases := []struct {
		name        string
		maxInflight int
		maxEvents   int
		chunks      []int // events per chunk (a multiple of maxEvents in all)
		taken       int   // chunks the client takes while the sink blocks
	}{
		{"one chunk per batch", 3, 1, []int{1, 1, 1, 1, 1, 1, 1, 1}, 3},
		// 4 | 2+2 | (2 pending): a chunk that fills a batch and
		// overflows it must not open a batch beyond the window.
		{"chunk split over batches", 2, 4, []int{4, 2, 4, 4, 4, 2}, 3},
		{"one chunk larger than the window", 2, 2, []int{20, 1, 1, 2}, 1},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			mk := newChunkMaker(t)
			g := newGate(t)
			sink := &recSink{hook: func(ctx context.Context, b *event.Batch, _ int) (sinks.Result, error) {
				if err := g.wait(ctx); err != nil {
					return sinks.Result{}, err
				}
				return sinks.Result{Delivered: len(b.Events)}, nil
			}}
			srv := startServer(t, sink, ServerConfig{MaxBatchesInFlight: 16})
			const inCap = 3
			tc := startClient(t, srv.addr, mk, ClientConfig{MaxInflight: tt.maxInflight, BatchMaxEvents: tt.maxEvents, BatchTimeout: time.Hour}, inCap)
			f := testFile("w")
			var chunks []*tail.Chunk
			var off int64
			for i, n := range tt.chunks {
				msgs := make([]string, n)
				for j := range msgs {
					msgs[j] = fmt.Sprintf("c%d e%d", i, j)
				}
				c := mk.chunk(f, off, msgs...)
				off = c.End
				chunks = append(chunks, c)
			}
			var feeder sync.WaitGroup
			feeder.Add(1)
			go func() { defer feeder.Done(); tc.send(chunks...) }()
			defer feeder.Wait()

			stuck := min(inCap, len(chunks)-tt.taken)
			waitFor(t, "a full window and a full input", func() bool {
				return sink.activeNow() == tt.maxInflight && len(tc.in) == stuck
			})
			// Nothing moves while the sink blocks. (A negative check needs
			// some time; what it watches cannot change without a bug.)
			time.Sleep(100 * time.Millisecond)
			if n := sink.count(); n != tt.maxInflight {
				t.Errorf("sink got %d batches while blocked, want %d", n, tt.maxInflight)
			}
			if n := len(tc.in); n != stuck {
				t.Errorf("input holds %d chunks, want %d", n, stuck)
			}
			if n := mk.outstanding(); n != len(chunks)-tt.taken+1 && n != len(chunks)-tt.taken {
				t.Errorf("%d chunks not released, want the %d not taken and at most one being split", n, len(chunks)-tt.taken)
			}

			g.open()
			waitFor(t, "every chunk committed", func() bool { return tc.com.count() == len(chunks) })
			if n := tc.wire.maxInFlight(); n > tt.maxInflight {
				t.Errorf("%d batches unacknowledged at once, MaxInflight is %d", n, tt.maxInflight)
			}
			if n := sink.maxActive; n > tt.maxInflight {
				t.Errorf("sink wrote %d batches at once, MaxInflight is %d", n, tt.maxInflight)
			}
			events := 0
			for _, w := range sink.snapshot() {
				events += len(w.events)
				if len(w.events) > tt.maxEvents {
					t.Errorf("batch %d holds %d events, BatchMaxEvents is %d", w.seq, len(w.events), tt.maxEvents)
				}
			}
			total := 0
			for _, n := range tt.chunks {
				total += n
			}
			if events != total {
				t.Errorf("sink got %d events, want %d", events, total)
			}
			tc.com.check(t)
		})
	}
}

// TestReconnectAfterServerRestart kills the server with batches in flight,
// checks that the client backs off while it is down, and that after the
// restart every batch is acknowledged and committed once, the unacked ones
// re-sent with the same sequence numbers and event ids.
func TestReconnectAfterServerRestart(t *testing.T) {
	mk := newChunkMaker(t)
	g := newGate(t)
	sink1 := &recSink{hook: func(ctx context.Context, b *event.Batch, _ int) (sinks.Result, error) {
		if b.Seq <= 2 {
			return sinks.Result{Delivered: len(b.Events)}, nil
		}
		_ = g.wait(ctx)
		return sinks.Result{}, errors.New("server going down")
	}}
	srv := startServer(t, sink1, ServerConfig{})
	var dials sync.Mutex
	dialCount := 0
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		dials.Lock()
		dialCount++
		dials.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	numDials := func() int { dials.Lock(); defer dials.Unlock(); return dialCount }
	tc := startClient(t, srv.addr, mk, ClientConfig{
		MaxInflight: 4, BatchMaxEvents: 2, BatchTimeout: time.Hour,
		BackoffInitial: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
	}, 8, grpc.WithContextDialer(dialer))
	f := testFile("r")
	tc.send(mk.seqChunks(f, 6, 2)...)
	waitFor(t, "batches 1-2 acked, 3-6 being written", func() bool {
		_, ok1 := tc.wire.finalAck(1)
		_, ok2 := tc.wire.finalAck(2)
		return ok1 && ok2 && sink1.activeNow() == 4
	})
	if n := tc.com.count(); n != 2 {
		t.Fatalf("%d commits before the restart, want 2", n)
	}

	srv.stop()
	g.open() // the killed server's writes fail; their acks go nowhere
	waitFor(t, "the client to see the stream broken", func() bool { return !tc.c.Connected() })
	d0, o0 := numDials(), tc.wire.opens.Load()
	const down = time.Second
	time.Sleep(down) // measure the attempt rate while the server is down
	dialsDown, opensDown := numDials()-d0, int(tc.wire.opens.Load()-o0)
	// Backoff from 20ms to 100ms: about 15 attempts a second; a busy loop
	// would make thousands.
	if dialsDown > 50 || opensDown > 50 {
		t.Errorf("in %v with the server down: %d dials, %d stream attempts; want backoff", down, dialsDown, opensDown)
	}
	if opensDown < 1 {
		t.Errorf("no stream attempt in %v with the server down", down)
	}
	t.Logf("server down for %v: %d dials, %d stream attempts", down, dialsDown, opensDown)

	sink2 := &recSink{}
	srv.restart(sink2)
	waitFor(t, "every chunk committed", func() bool { return tc.com.count() == 6 })
	tc.com.check(t)
	if got := fmt.Sprint(sink2.seqs()); got != "[3 4 5 6]" {
		t.Errorf("restarted server got batches %s, want [3 4 5 6]", got)
	}
	for seq := uint64(1); seq <= 6; seq++ {
		sends := tc.wire.sendsOf(seq)
		for _, s := range sends[1:] {
			if !bytes.Equal(s.ids, sends[0].ids) {
				t.Errorf("batch %d re-sent with other event ids", seq)
			}
		}
		if seq >= 3 && (len(sends) < 2 || sends[len(sends)-1].stream == sends[0].stream) {
			t.Errorf("batch %d: %d sends, want a re-send on a new stream", seq, len(sends))
		}
	}
	// Ids on the restarted server are the deterministic ones.
	for _, w := range sink2.snapshot() {
		for _, e := range w.events {
			if want := event.ID(nil, testNode, f.ID, e.Source.GetOffset()); !bytes.Equal(e.Id, want) {
				t.Errorf("event at %d: id %x, want %x", e.Source.GetOffset(), e.Id, want)
			}
		}
	}
	cs := tc.c.Counters()
	if cs["ferry_agent_reconnects_total"] < 1 || cs["ferry_agent_resends_total"] < 4 || cs["ferry_agent_batches_acked_total"] != 6 {
		t.Errorf("counters %v", cs)
	}
}

// TestRetry: a retry ack makes the client send the batch again, not before
// retry_after, with the same events; then it is committed once.
func TestRetry(t *testing.T) {
	const retryAfter = 300 * time.Millisecond
	cases := []struct {
		name    string
		first   func(b *event.Batch) (sinks.Result, error)
		message string
	}{
		{"sink error", func(*event.Batch) (sinks.Result, error) {
			return sinks.Result{}, errors.New("elasticsearch unavailable")
		}, "elasticsearch unavailable"},
		{"partial failure", func(b *event.Batch) (sinks.Result, error) {
			return sinks.Result{Delivered: len(b.Events) - 1, Failed: []sinks.ItemError{{Index: 1, Retryable: true, Err: errors.New("429 too many requests")}}}, nil
		}, "1 events not written: event 1: 429 too many requests"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			mk := newChunkMaker(t)
			sink := &recSink{hook: func(_ context.Context, b *event.Batch, attempt int) (sinks.Result, error) {
				if attempt == 0 {
					return tt.first(b)
				}
				return sinks.Result{Delivered: len(b.Events)}, nil
			}}
			srv := startServer(t, sink, ServerConfig{RetryAfter: retryAfter})
			tc := startClient(t, srv.addr, mk, ClientConfig{BatchMaxEvents: 3, BatchTimeout: time.Hour, BackoffInitial: 10 * time.Millisecond}, 1)
			f := testFile("retry")
			tc.send(mk.chunk(f, 0, "x", "y", "z"))
			waitFor(t, "the commit", func() bool { return tc.com.count() == 1 })
			tc.com.check(t)

			acks := tc.wire.acksOf(1)
			if len(acks) != 2 || acks[0].code != ferryv1.Ack_CODE_RETRY || acks[1].code != ferryv1.Ack_CODE_OK {
				t.Fatalf("acks %+v, want RETRY then OK", acks)
			}
			if acks[0].retryAfter != retryAfter.Milliseconds() || !contains(acks[0].message, tt.message) {
				t.Errorf("retry ack %+v, want retry_after %v and a message with %q", acks[0], retryAfter, tt.message)
			}
			sends := tc.wire.sendsOf(1)
			if len(sends) != 2 {
				t.Fatalf("batch sent %d times, want 2", len(sends))
			}
			if d := sends[1].at.Sub(acks[0].at); d < retryAfter {
				t.Errorf("re-sent %v after the retry ack, want at least %v", d, retryAfter)
			}
			if !bytes.Equal(sends[0].ids, sends[1].ids) {
				t.Error("re-sent with other event ids")
			}
			w := sink.snapshot()
			if len(w) != 2 || w[1].start.Sub(w[0].end) < retryAfter {
				t.Errorf("sink writes %d, second %v after the first; want 2, at least %v", len(w), w[len(w)-1].start.Sub(w[0].end), retryAfter)
			}
			if cs := tc.c.Counters(); cs["ferry_agent_resends_total"] != 1 || cs["ferry_agent_batches_acked_total"] != 1 {
				t.Errorf("counters %v", cs)
			}
			if srv.srv.BatchesRetry.Load() != 1 || srv.srv.BatchesAcked.Load() != 1 {
				t.Errorf("server counters: retry %d acked %d", srv.srv.BatchesRetry.Load(), srv.srv.BatchesAcked.Load())
			}
		})
	}
}

// TestServerRejectsMalformed sends what a Client never would, on one raw
// stream: every malformed batch gets PERMANENT naming the problem, and the
// stream keeps serving the good ones.
func TestServerRejectsMalformed(t *testing.T) {
	sink := &recSink{}
	srv := startServer(t, sink, ServerConfig{MaxMessageBytes: 1024})
	raw := dialRaw(t, srv.addr)
	mut := func(b *ferryv1.Batch, f func(*ferryv1.Batch)) *ferryv1.Batch { f(b); return b }
	cases := []struct {
		name  string
		batch *ferryv1.Batch
		code  ferryv1.Ack_Code
		msg   string
	}{
		{"valid", validBatch(1, 2), ferryv1.Ack_CODE_OK, ""},
		{"seq 0", mut(validBatch(0, 1), func(*ferryv1.Batch) {}), ferryv1.Ack_CODE_PERMANENT, "without sequence number"},
		{"no node", mut(validBatch(3, 1), func(b *ferryv1.Batch) { b.Node = "" }), ferryv1.Ack_CODE_PERMANENT, "without node name"},
		{"3-byte id", mut(validBatch(4, 3), func(b *ferryv1.Batch) { b.Events[2].Id = []byte{1, 2, 3} }), ferryv1.Ack_CODE_PERMANENT, "event 2: id of 3 bytes, want 16"},
		{"no id", mut(validBatch(5, 1), func(b *ferryv1.Batch) { b.Events[0].Id = nil }), ferryv1.Ack_CODE_PERMANENT, "event 0: id of 0 bytes"},
		{"message too long", mut(validBatch(6, 1), func(b *ferryv1.Batch) { b.Events[0].Message = make([]byte, 2000) }), ferryv1.Ack_CODE_PERMANENT, "message of 2000 bytes exceeds 1024"},
		{"valid after", validBatch(7, 1), ferryv1.Ack_CODE_OK, ""},
	}
	for _, tt := range cases {
		if err := raw.st.Send(tt.batch); err != nil {
			t.Fatal(err)
		}
	}
	acks := raw.recvAcks(t, len(cases))
	for _, tt := range cases {
		a := acks[tt.batch.Seq]
		if a == nil {
			t.Errorf("%s: no ack", tt.name)
			continue
		}
		if a.Code != tt.code || !contains(a.Message, tt.msg) {
			t.Errorf("%s: ack %v %q, want %v with %q", tt.name, a.Code, a.Message, tt.code, tt.msg)
		}
	}
	if got := fmt.Sprint(sink.seqs()); got != "[1 7]" {
		t.Errorf("sink got batches %s, want [1 7]", got)
	}
	if n := srv.srv.BatchesFailed.Load(); n != 5 {
		t.Errorf("BatchesFailed %d, want 5", n)
	}
}

// TestClientPermanent: a batch the sink refuses for good is logged,
// committed past and never sent again.
func TestClientPermanent(t *testing.T) {
	mk := newChunkMaker(t)
	sink := &recSink{hook: func(_ context.Context, b *event.Batch, _ int) (sinks.Result, error) {
		if b.Seq == 2 {
			return sinks.Result{}, sinks.Permanent(errors.New("mapping conflict on field x"))
		}
		return sinks.Result{Delivered: len(b.Events)}, nil
	}}
	srv := startServer(t, sink, ServerConfig{RetryAfter: 10 * time.Millisecond})
	tc := startClient(t, srv.addr, mk, ClientConfig{BatchMaxEvents: 1, BatchTimeout: time.Hour}, 4)
	f := testFile("p")
	tc.send(mk.seqChunks(f, 3, 1)...)
	waitFor(t, "three commits", func() bool { return tc.com.count() == 3 })
	tc.com.check(t)
	if a, _ := tc.wire.finalAck(2); a != ferryv1.Ack_CODE_PERMANENT {
		t.Errorf("batch 2: final ack %v", a)
	}
	if n := len(tc.wire.sendsOf(2)); n != 1 {
		t.Errorf("rejected batch sent %d times, want once", n)
	}
	if l := tc.logs.String(); !contains(l, "rejected a batch for good") || !contains(l, "seq=2") || !contains(l, "mapping conflict on field x") {
		t.Errorf("client log does not report the rejected batch:\n%s", l)
	}
	if err := tc.stop(); err != nil {
		t.Fatal(err)
	}
	if cs := tc.c.Counters(); cs["ferry_agent_batches_rejected_total"] != 1 || cs["ferry_agent_batches_acked_total"] != 2 || cs["ferry_agent_resends_total"] != 0 {
		t.Errorf("counters %v", cs)
	}
}

// TestDrain: while the server drains, new batches get RETRY, batches being
// written finish and are acked, and Drain returns once they are done; if
// its ctx ends first, the sink writes are cancelled.
func TestDrain(t *testing.T) {
	const retryAfter = 250 * time.Millisecond
	t.Run("in-flight batch finishes", func(t *testing.T) {
		g := newGate(t)
		sink := &recSink{hook: func(ctx context.Context, b *event.Batch, _ int) (sinks.Result, error) {
			if b.Seq == 1 {
				if err := g.wait(ctx); err != nil {
					return sinks.Result{}, err
				}
			}
			return sinks.Result{Delivered: len(b.Events)}, nil
		}}
		srv := startServer(t, sink, ServerConfig{RetryAfter: retryAfter})
		raw := dialRaw(t, srv.addr)
		if err := raw.st.Send(validBatch(1, 3)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "batch 1 in the sink", func() bool { return sink.activeNow() == 1 })
		drained := make(chan error, 1)
		go func() { drained <- srv.srv.Drain(context.Background()) }()
		waitFor(t, "draining", func() bool { return !srv.srv.Ready() })
		if err := raw.st.Send(validBatch(2, 1)); err != nil {
			t.Fatal(err)
		}
		a, err := raw.st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if a.Seq != 2 || a.Code != ferryv1.Ack_CODE_RETRY || a.RetryAfterMillis != retryAfter.Milliseconds() || !contains(a.Message, "shutting down") {
			t.Errorf("ack %v, want RETRY for batch 2 after %v", a, retryAfter)
		}
		select {
		case err := <-drained:
			t.Fatalf("Drain returned %v with a batch being written", err)
		default:
		}
		g.open()
		a, err = raw.st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if a.Seq != 1 || a.Code != ferryv1.Ack_CODE_OK {
			t.Errorf("ack %v, want OK for batch 1", a)
		}
		if err := <-drained; err != nil {
			t.Errorf("Drain: %v", err)
		}
		if got := fmt.Sprint(sink.seqs()); got != "[1]" {
			t.Errorf("sink got %s, want [1]", got)
		}
	})
	t.Run("expiring ctx cancels the write", func(t *testing.T) {
		sink := &recSink{hook: func(ctx context.Context, b *event.Batch, _ int) (sinks.Result, error) {
			<-ctx.Done()
			return sinks.Result{}, ctx.Err()
		}}
		srv := startServer(t, sink, ServerConfig{RetryAfter: retryAfter})
		raw := dialRaw(t, srv.addr)
		if err := raw.st.Send(validBatch(1, 1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "batch 1 in the sink", func() bool { return sink.activeNow() == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := srv.srv.Drain(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Drain: %v, want a deadline error", err)
		}
		if w := sink.snapshot(); len(w) != 1 || !errors.Is(w[0].ctxErr, context.Canceled) {
			t.Errorf("sink writes %+v, want one, cancelled", w)
		}
		a, err := raw.st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if a.Seq != 1 || a.Code != ferryv1.Ack_CODE_RETRY {
			t.Errorf("ack %v, want RETRY for batch 1", a)
		}
	})
	t.Run("no write starts after Drain returned", func(t *testing.T) {
		var (
			mu       sync.Mutex
			returned bool
			late     int
		)
		sink := &recSink{hook: func(ctx context.Context, b *event.Batch, _ int) (sinks.Result, error) {
			mu.Lock()
			if returned {
				late++
			}
			mu.Unlock()
			return sinks.Result{Delivered: len(b.Events)}, nil
		}}
		srv := startServer(t, sink, ServerConfig{RetryAfter: retryAfter})
		var senders, readers sync.WaitGroup
		for i := range 4 {
			raw := dialRaw(t, srv.addr)
			stop := make(chan struct{})
			senders.Add(1)
			go func() {
				defer senders.Done()
				for seq := uint64(1); ; seq++ {
					select {
					case <-stop:
						return
					default:
					}
					if raw.st.Send(validBatch(seq, 1+i)) != nil {
						return
					}
				}
			}()
			readers.Add(1)
			go func() {
				defer readers.Done()
				var once sync.Once
				for {
					a, err := raw.st.Recv()
					if err != nil {
						once.Do(func() { close(stop) })
						return
					}
					if a.Code == ferryv1.Ack_CODE_RETRY {
						once.Do(func() { close(stop) })
					}
				}
			}()
		}
		waitFor(t, "some writes", func() bool { return sink.count() > 50 })
		if err := srv.srv.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		returned = true
		mu.Unlock()
		senders.Wait()
		srv.stop()
		readers.Wait()
		mu.Lock()
		defer mu.Unlock()
		if late != 0 {
			t.Errorf("%d sink writes started after Drain returned", late)
		}
	})
}

// TestClientShutdown: cancelling Run drains: the batch being built is
// sealed and sent, and Run waits for the acks; without them it gives up
// after ShutdownTimeout, naming what was not acknowledged.
func TestClientShutdown(t *testing.T) {
	t.Run("acks arrive", func(t *testing.T) {
		mk := newChunkMaker(t)
		g := newGate(t)
		sink := &recSink{hook: func(ctx context.Context, b *event.Batch, _ int) (sinks.Result, error) {
			if err := g.wait(ctx); err != nil {
				return sinks.Result{}, err
			}
			return sinks.Result{Delivered: len(b.Events)}, nil
		}}
		srv := startServer(t, sink, ServerConfig{})
		tc := startClient(t, srv.addr, mk, ClientConfig{MaxInflight: 4, BatchMaxEvents: 2, BatchTimeout: time.Hour}, 4)
		f := testFile("s")
		tc.send(mk.chunk(f, 0, "a", "b"), mk.chunk(f, 4, "c", "d"), mk.chunk(f, 8, "e"))
		// The third chunk waits in a batch that is not full.
		waitFor(t, "two batches in the sink, every chunk taken", func() bool {
			return sink.activeNow() == 2 && mk.outstanding() == 0
		})
		tc.cancel()
		waitFor(t, "the partial batch sealed and sent", func() bool { return sink.activeNow() == 3 })
		if tc.returned() {
			t.Fatalf("Run returned %v before the acks", tc.result)
		}
		g.open()
		if err := tc.wait(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := fmt.Sprint(tc.committedEnds()[f.ID]); got != "[4 8 10]" {
			t.Errorf("commits %s, want [4 8 10]", got)
		}
		tc.com.check(t)
	})
	cases := []struct {
		name      string
		opts      []grpc.ServerOption
		srvCfg    ServerConfig
		msgBytes  int
		kill      bool
		batches   int // unacknowledged at the end
		events    int
		wantSends int // SendMsg calls started before the shutdown
	}{
		{name: "server gone", kill: true, msgBytes: 10, batches: 2, events: 4, wantSends: 2},
		// The server reads no more (one write at a time, the sink blocks,
		// small flow control windows): the client gets stuck in the Send of
		// the fourth batch.
		{name: "server not reading", msgBytes: 200 << 10, batches: 4, events: 8, wantSends: 4,
			srvCfg: ServerConfig{MaxBatchesInFlight: 1},
			opts:   []grpc.ServerOption{grpc.InitialWindowSize(64 << 10), grpc.InitialConnWindowSize(64 << 10)}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			const timeout = 500 * time.Millisecond
			mk := newChunkMaker(t)
			g := newGate(t)
			sink := &recSink{hook: func(ctx context.Context, b *event.Batch, _ int) (sinks.Result, error) {
				if err := g.wait(ctx); err != nil {
					return sinks.Result{}, err
				}
				return sinks.Result{Delivered: len(b.Events)}, nil
			}}
			srv := startServer(t, sink, tt.srvCfg, tt.opts...)
			tc := startClient(t, srv.addr, mk, ClientConfig{
				MaxInflight: 4, BatchMaxEvents: 2, BatchMaxBytes: 1 << 20, BatchTimeout: time.Hour, ShutdownTimeout: timeout,
			}, 4)
			f := testFile("gone")
			msg := strings.Repeat("m", tt.msgBytes)
			var off int64
			for range tt.batches {
				c := mk.chunk(f, off, msg, msg)
				off = c.End
				tc.send(c)
			}
			waitFor(t, "batches sent", func() bool {
				tc.wire.mu.Lock()
				defer tc.wire.mu.Unlock()
				return len(tc.wire.sends) >= tt.wantSends && sink.activeNow() >= 1
			})
			if tt.kill {
				waitFor(t, "both batches in the sink", func() bool { return sink.activeNow() == 2 })
				srv.stop()
			}
			start := time.Now()
			err := tc.stop()
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("Run returned nil with batches unacknowledged")
			}
			if want := fmt.Sprintf("%d events in %d batches not acknowledged", tt.events, tt.batches); !contains(err.Error(), want) {
				t.Errorf("Run: %v, want %q", err, want)
			}
			if elapsed < timeout || elapsed > timeout+10*time.Second {
				t.Errorf("Run returned after %v, ShutdownTimeout is %v", elapsed, timeout)
			}
			if n := tc.com.count(); n != 0 {
				t.Errorf("%d commits without acks", n)
			}
		})
	}
}
