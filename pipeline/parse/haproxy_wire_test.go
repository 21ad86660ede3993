package parse

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// checkAppendFields compares AppendFields with Refine on one message: the
// same event (fields, time, flags) once the encoded fields are decoded
// into the event's map, and, entry by entry, the bytes proto.Marshal
// writes for each field.
func checkAppendFields(t *testing.T, p *HAProxyParser, msg []byte) {
	t.Helper()
	shared := map[string]*ferryv1.Value{"data_stream.dataset": {Kind: &ferryv1.Value_Str{Str: "haproxy.log"}}}
	want := &ferryv1.Event{TimeUnixNano: 1, Fields: shared}
	p.Refine(want, msg)

	got := &ferryv1.Event{TimeUnixNano: 1, Fields: shared}
	raw, ok := p.AppendFields([]byte("prefix"), got, msg)
	if !bytes.HasPrefix(raw, []byte("prefix")) {
		t.Fatalf("%q: dst not appended to", msg)
	}
	raw = raw[len("prefix"):]
	if !ok {
		if len(raw) != 0 || got.TimeUnixNano != 1 || got.Flags != 0 {
			t.Fatalf("%q: refused, but changed dst or the event", msg)
		}
		return
	}
	if len(shared) != 1 {
		t.Fatalf("%q: the input's shared fields were modified: %v", msg, shared)
	}
	// The input's fields, encoded by proto, then the appended ones: one
	// event with every field.
	head, err := proto.Marshal(&ferryv1.Event{Fields: shared})
	if err != nil {
		t.Fatal(err)
	}
	var dec ferryv1.Event
	if err := proto.Unmarshal(append(head, raw...), &dec); err != nil {
		t.Fatalf("%q: the appended fields do not decode: %v", msg, err)
	}
	dec.TimeUnixNano, dec.Flags = got.TimeUnixNano, got.Flags
	if !proto.Equal(&dec, want) {
		t.Fatalf("%q:\nAppendFields %v\nRefine       %v", msg, &dec, want)
	}
	// Each entry as proto.Marshal writes it, with no key twice.
	seen := map[string]bool{}
	for k, v := range dec.Fields {
		if _, ok := shared[k]; ok {
			continue
		}
		one, err := proto.Marshal(&ferryv1.Event{Fields: map[string]*ferryv1.Value{k: v}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, one) {
			t.Fatalf("%q: field %s is not encoded as proto.Marshal encodes it (%x) in %x", msg, k, one, raw)
		}
		if !p.Sets(k) {
			t.Fatalf("%q: Sets(%q) is false", msg, k)
		}
		seen[k] = true
	}
	var all []byte
	for k := range seen {
		one, _ := proto.Marshal(&ferryv1.Event{Fields: map[string]*ferryv1.Value{k: dec.Fields[k]}})
		all = append(all, one...)
	}
	if len(all) != len(raw) {
		t.Fatalf("%q: %d bytes appended, the %d fields are %d bytes (a key twice?)", msg, len(raw), len(seen), len(all))
	}
}

func TestHAProxyAppendFields(t *testing.T) {
	p := NewHAProxyParser(time.UTC)
	lines := []string{realHTTP, realNoSrv, realBadReq, realHTTPS, realTCP, realConnect, real5424, realFile, ipv6Body,
		"not haproxy at all", "", "bad \xff utf-8", realHTTP + "\xff"}
	files, _ := filepath.Glob("testdata/haproxy/*.log")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(string(b), "\n")...)
	}
	for _, line := range lines {
		msg := []byte("xx" + line + "\n")[2:] // a part of a larger buffer, as in a chunk
		checkAppendFields(t, p, msg)
	}
	// Invalid UTF-8 is left to Refine, whose fields the encoder refuses.
	if _, ok := p.AppendFields(nil, &ferryv1.Event{}, []byte(realHTTP+"\xff")); ok {
		t.Fatal("AppendFields took a message that is not valid UTF-8")
	}
	for _, k := range []string{"data_stream.dataset", "service.environment", "message"} {
		if p.Sets(k) {
			t.Errorf("Sets(%q)", k)
		}
	}
}

func TestHAProxyAppendFieldsDoesNotAllocate(t *testing.T) {
	p := NewHAProxyParser(time.UTC)
	dst := make([]byte, 0, 4096)
	for _, line := range []string{realHTTP, realHTTPS, realTCP, realConnect, realFile, "not haproxy"} {
		msg := []byte(line)
		ev := &ferryv1.Event{}
		if n := testing.AllocsPerRun(100, func() { dst, _ = p.AppendFields(dst[:0], ev, msg) }); n != 0 {
			t.Errorf("%q: %v allocations", line, n)
		}
	}
}
