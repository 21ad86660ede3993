package transport

import (
	"strings"
	"testing"

	"google.golang.org/grpc"
)

func TestLimitProblems(t *testing.T) {
	lines := map[string]int{"app": 256 << 10, "haproxy": 16 << 10, "huge": 16 << 20}
	cases := []struct {
		name     string
		limit    int64
		batchMax int
		want     []string // the inputs (or "batch") named, in order
	}{
		{"defaults fit", 16 << 20, 1 << 20, []string{"huge"}},
		{"everything fits", 64 << 20, 1 << 20, nil},
		{"small aggregator", 64 << 10, 1 << 20, []string{"app", "huge", "batch"}},
		{"line at the limit less framing", int64(256<<10 + lineFraming), 32 << 10, []string{"huge"}},
		{"line one byte over with framing", int64(256<<10 + lineFraming - 1), 32 << 10, []string{"app", "huge"}},
		{"batch only", 17 << 20, 17 << 20, []string{"batch"}},
	}
	for _, c := range cases {
		var got []string
		for _, p := range limitProblems(c.limit, lines, c.batchMax) {
			name := "batch"
			for i := 0; i+1 < len(p.attrs); i += 2 {
				if p.attrs[i] == "input" {
					name = p.attrs[i+1].(string)
				}
			}
			if name == "batch" && !strings.Contains(p.msg, "batch_max_bytes") ||
				name != "batch" && !strings.Contains(p.msg, "max_line_bytes of input "+name) ||
				name != "batch" && !strings.Contains(p.msg, "raise max_recv_message_bytes on the aggregator") {
				t.Errorf("%s: message does not name the fix: %s", c.name, p.msg)
			}
			got = append(got, name)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: problems for %v, want %v", c.name, got, c.want)
		}
	}
}

// TestAnnouncedMaxRecv: the server announces its limit (64 KiB) when a
// stream opens; the client warns once, at stream open and before any
// long line, about the input whose max_line_bytes cannot fit and not about
// the one that can, and not again after reconnects. A line over the limit
// is refused: the client's error names the input and the two settings that
// fix it, the server logs the refusal at WARN and counts it, and nothing
// is committed.
func TestAnnouncedMaxRecv(t *testing.T) {
	const limit = 64 << 10
	mk := newChunkMaker(t)
	srv := startServer(t, &recSink{}, ServerConfig{MaxRecvMessageBytes: limit}, grpc.MaxRecvMsgSize(limit))
	cfg := fastRetry
	cfg.ShutdownTimeout = 5e9
	cfg.BatchMaxBytes = 32 << 10
	cfg.MaxLineBytes = map[string]int{"containers": 256 << 10, "small": 16 << 10}
	tc := startClient(t, srv.addr, mk, cfg, 4)
	warning := "a line of input containers can be larger than the aggregator accepts"
	waitFor(t, "the client's warning at stream open", func() bool { return tc.logs.Count(warning) == 1 })
	if line := tc.logs.Lines(warning)[0]; !strings.Contains(line, "level=WARN") || !strings.Contains(line, "aggregator_max_recv_message_bytes=65536") ||
		!strings.Contains(line, "raise max_recv_message_bytes on the aggregator") || !strings.Contains(line, "lower max_line_bytes of input containers") {
		t.Fatalf("warning does not say what to change: %s", line)
	}
	if n := tc.logs.Count("input small"); n != 0 {
		t.Fatalf("warned about input small, whose lines fit: %s", tc.logs.String())
	}
	shipOne(t, tc, mk, "fits")

	// A line over the limit.
	tc.send(mk.chunk(testFile("big"), 0, strings.Repeat("x", 100<<10)))
	refusal := "a line of input containers is larger than the aggregator accepts"
	waitFor(t, "the client's error about the refused batch", func() bool { return tc.logs.Count(refusal) > 0 })
	line := tc.logs.Lines(refusal)[0]
	for _, want := range []string{"level=ERROR", "raise max_recv_message_bytes on the aggregator", "lower max_line_bytes of input containers", "line_bytes=102400", "aggregator_max_recv_message_bytes=65536"} {
		if !strings.Contains(line, want) {
			t.Errorf("refusal lacks %q: %s", want, line)
		}
	}
	waitFor(t, "the server to count the refusal", func() bool { return srv.srv.OversizeMessages.Load() > 0 })
	if n := srv.logs.Count("level=WARN msg=\"refused a message larger than max_recv_message_bytes"); n != 1 {
		t.Errorf("server logged %d warnings about the oversize message, want 1 (rate-limited):\n%s", n, srv.logs.String())
	}
	// The client retries on new streams; the announcement is not warned
	// about again.
	waitFor(t, "two reconnects", func() bool { return tc.c.Counters()["ferry_agent_reconnects_total"] >= 2 })
	if n := tc.logs.Count(warning); n != 1 {
		t.Errorf("the warning was logged %d times, want once", n)
	}
	if n := tc.com.count(); n != 1 {
		t.Fatalf("%d commits, want 1: the refused batch must be kept", n)
	}
}
