package transport

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ferrylogs/ferry/pipeline/parse"
	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

func chunkOf(f *tail.File, msgs ...string) *tail.Chunk {
	c := tail.NewChunk(f, nil)
	for i, m := range msgs {
		start := len(c.Arena)
		c.Arena = append(c.Arena, m...)
		c.Recs = append(c.Recs, tail.Rec{Off: int64(i * 100), MsgStart: uint32(start), MsgEnd: uint32(len(c.Arena)), Time: 1})
		c.End = int64(i*100 + 100)
	}
	return c
}

// TestParserPerInput: an input's parser refines its events as they are
// batched, and only its own; the file's shared fields stay unchanged; a
// batch of parsed events stays within BatchMaxBytes although each event
// grows by its fields.
func TestParserPerInput(t *testing.T) {
	shared := map[string]*ferryv1.Value{"data_stream.dataset": {Kind: &ferryv1.Value_Str{Str: "haproxy.log"}}}
	parsed := &tail.File{ID: "a", Input: "lb", Fields: shared}
	plain := &tail.File{ID: "b", Input: "other"}
	long := strings.Repeat("p", 300)
	parser := func(ev *ferryv1.Event, msg []byte) {
		fs := map[string]*ferryv1.Value{}
		for k, v := range ev.Fields {
			fs[k] = v
		}
		for _, k := range []string{"url.original", "url.path", "http.request.method", "source.ip", "haproxy.frontend_name"} {
			fs[k] = &ferryv1.Value{Kind: &ferryv1.Value_Str{Str: string(msg)}}
		}
		fs["http.response.status_code"] = &ferryv1.Value{Kind: &ferryv1.Value_Int{Int: 200}}
		ev.Fields = fs
		ev.TimeUnixNano = 42
	}
	const maxBytes = 64 << 10
	b := newBuilder(10000, maxBytes)
	b.parsers = map[string]Parser{"lb": parser}
	msgs := make([]string, 200)
	for i := range msgs {
		msgs[i] = long
	}
	next := b.add(testNode, chunkOf(parsed, msgs...), 0, overhead(parsed))
	if next == 0 || next == len(msgs) {
		t.Fatalf("%d of %d events in a %d-byte batch: the estimate ignores the parsed fields", next, len(msgs), maxBytes)
	}
	p := b.seal(testNode, 1)
	if n := proto.Size(p.msg); n > maxBytes {
		t.Fatalf("batch of %d parsed events is %d bytes, more than %d", next, n, maxBytes)
	}
	if len(shared) != 1 {
		t.Fatalf("shared fields modified: %v", shared)
	}
	ev := p.msg.Events[0]
	if ev.TimeUnixNano != 42 || ev.Fields["http.response.status_code"].GetInt() != 200 || ev.Fields["data_stream.dataset"].GetStr() != "haproxy.log" {
		t.Fatalf("parsed event %+v", ev)
	}
	b2 := newBuilder(10000, maxBytes)
	b2.parsers = map[string]Parser{"lb": parser}
	b2.add(testNode, chunkOf(plain, "x"), 0, overhead(plain))
	if ev := b2.seal(testNode, 2).msg.Events[0]; ev.Fields != nil || ev.TimeUnixNano != 1 {
		t.Fatalf("an input without a parser was parsed: %+v", ev)
	}
}

// TestParserFieldsReleased: the fields maps of refined events go back to
// their input's ReleaseFields when the builder is reset (its batch
// acknowledged), not before, each once; the input's shared fields never.
func TestParserFieldsReleased(t *testing.T) {
	shared := map[string]*ferryv1.Value{"data_stream.dataset": {Kind: &ferryv1.Value_Str{Str: "haproxy.log"}}}
	parsed := &tail.File{ID: "a", Input: "lb", Fields: shared}
	plain := &tail.File{ID: "b", Input: "other", Fields: shared}
	parser := func(ev *ferryv1.Event, msg []byte) {
		ev.Fields = map[string]*ferryv1.Value{"m": {Kind: &ferryv1.Value_Str{Str: string(msg)}}}
	}
	released := map[string]int{}
	release := func(fs map[string]*ferryv1.Value) {
		if len(fs) == 1 && fs["data_stream.dataset"] != nil {
			t.Fatal("the input's shared fields were released")
		}
		released[fs["m"].GetStr()]++
	}
	b := newBuilder(100, 1<<20)
	b.parsers = map[string]Parser{"lb": parser}
	b.releasers = map[string]func(map[string]*ferryv1.Value){"lb": release}
	b.add(testNode, chunkOf(parsed, "x", "y"), 0, overhead(parsed))
	b.add(testNode, chunkOf(plain, "z"), 0, overhead(plain))
	p := b.seal(testNode, 1)
	if len(released) != 0 {
		t.Fatalf("released before the batch was acknowledged: %v", released)
	}
	if got := p.msg.Events[1].Fields["m"].GetStr(); got != "y" {
		t.Fatalf("event 1 field m = %q", got)
	}
	b.reset()
	if len(released) != 2 || released["x"] != 1 || released["y"] != 1 {
		t.Fatalf("released %v, want x and y once each", released)
	}
	b.reset() // nothing more to give back
	if len(released) != 2 || released["x"] != 1 || released["y"] != 1 {
		t.Fatalf("released again: %v", released)
	}
}

// decodeSent returns what the aggregator decodes of the batch p: p as
// the codec encodes it, with the fields its FieldAppenders encoded.
func decodeSent(t *testing.T, p *pending) *ferryv1.Batch {
	t.Helper()
	data, err := rawCodec{}.Marshal(p.wireMsg())
	if err != nil {
		t.Fatal(err)
	}
	var b ferryv1.Batch
	if err := proto.Unmarshal(data.Materialize(), &b); err != nil {
		t.Fatal(err)
	}
	data.Free()
	return &b
}

// TestFieldAppenderSendsWhatParserSends: an input whose parser has a fast
// form (parse.HAProxyParser's AppendFields) sends, event for event, what
// the parser's map sends: lines that parse, lines that do not, a line
// that is not valid UTF-8 (left to the parser), beside lines of a plain
// input; a file whose fields hold a key the parser sets takes the parser.
func TestFieldAppenderSendsWhatParserSends(t *testing.T) {
	lines := []string{
		`Nov 30 11:25:44 lb1 haproxy[13509]: 81.2.69.142:40001 [30/Nov/2026:11:25:44.260] fe_http be_app/app1 0/0/0/1/1 200 128 - - ---- 1/1/0/0/0 0/0 {example.com|test/1.0} {r1} "GET /index.html?a=1&b=two HTTP/1.1"`,
		"not haproxy",
		`<134>Nov 30 11:25:47 haproxy[13509]: 127.0.0.1:46770 [30/Nov/2026:11:25:47.653] fe_https~ be_app/app1 0/0/1/1/2 200 128 - - ---- 1/1/0/0/0 0/0 "GET /tls?q=1 HTTP/1.1" 0/0000000000000000/0/0/0 -/TLSv1.3/TLS_AES_256_GCM_SHA384`,
		"bad \xff byte",
		`10.0.0.1:40004 [30/Nov/2026:11:25:44.874] fe_http be_dead/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET /dead/x HTTP/1.1"`,
	}
	for _, tt := range []struct {
		name   string
		fields map[string]*ferryv1.Value
		fast   bool
	}{
		{"input fields", map[string]*ferryv1.Value{"data_stream.dataset": {Kind: &ferryv1.Value_Str{Str: "haproxy.log"}}}, true},
		{"no input fields", nil, true},
		{"a parsed key among the input fields", map[string]*ferryv1.Value{"event.outcome": {Kind: &ferryv1.Value_Str{Str: "set by the input"}}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lb := &tail.File{ID: "a", Input: "lb", Fields: tt.fields, Kube: &ferryv1.Kubernetes{Namespace: "ns", Pod: "p"}}
			plain := &tail.File{ID: "b", Input: "other", Fields: tt.fields}
			build := func(fast bool) *pending {
				hp := parse.NewHAProxyParser(time.UTC)
				b := newBuilder(100, 1<<20)
				b.parsers = map[string]Parser{"lb": hp.Refine}
				b.releasers = map[string]func(map[string]*ferryv1.Value){"lb": hp.Release}
				if fast {
					b.appenders = map[string]FieldAppender{"lb": hp}
				}
				b.add(testNode, chunkOf(plain, "first"), 0, overhead(plain))
				b.add(testNode, chunkOf(lb, lines...), 0, overhead(lb))
				b.add(testNode, chunkOf(plain, "last"), 0, overhead(plain))
				return b.seal(testNode, 1)
			}
			slow, fast := build(false), build(true)
			if len(slow.extra) != 0 {
				t.Fatal("encoded fields without a FieldAppender")
			}
			if n := len(fast.extra); tt.fast != (n > 0) {
				t.Fatalf("%d events with encoded fields", n)
			}
			if tt.fast && fast.extra[3+1] != nil {
				t.Fatal("the line that is not valid UTF-8 has encoded fields")
			}
			want, got := decodeSent(t, slow), decodeSent(t, fast)
			if len(got.Events) != len(lines)+2 {
				t.Fatalf("%d events", len(got.Events))
			}
			if !proto.Equal(got, want) {
				t.Fatalf("sent\n%v\nthe parser's map sends\n%v", got, want)
			}
			if n := len(want.Events[1].Fields); n < 20 {
				t.Fatalf("the first HAProxy line has %d fields", n)
			}
			if len(tt.fields) > 0 && len(lb.Fields) != 1 {
				t.Fatalf("the input's fields were modified: %v", lb.Fields)
			}
		})
	}
}
