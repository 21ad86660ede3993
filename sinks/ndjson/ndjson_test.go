package ndjson_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/sinks"
	"github.com/ferrylogs/ferry/sinks/ndjson"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ sinks.Sink = (*ndjson.Sink)(nil)

const node = "node-7"

func ev(off int64, msg string) *ferryv1.Event {
	return &ferryv1.Event{
		Id:           event.ID(nil, node, "f1", off),
		TimeUnixNano: time.Date(2025, 3, 4, 5, 6, 7, int(off), time.UTC).UnixNano(),
		Message:      []byte(msg),
		Stream:       ferryv1.StreamName_STREAM_STDERR,
		Source:       &ferryv1.Source{Path: "/var/log/pods/shop_web_uid/app/0.log", Offset: off, Input: "containers", FileId: "f1"},
		Kubernetes:   &ferryv1.Kubernetes{Namespace: "shop", Pod: "web", PodUid: "uid", Container: "app", ContainerId: "c0ffee"},
		Kind:         ferryv1.Kind_KIND_LOG,
	}
}

// events covers what makes JSON hard: quotes, control characters, invalid
// UTF-8, U+2028, typed fields, no Kubernetes, metrics.
func events() []*ferryv1.Event {
	plain := ev(7, "no kube")
	plain.Kubernetes = nil
	plain.Stream = ferryv1.StreamName_STREAM_UNSPECIFIED
	metric := ev(8, "")
	metric.Kind = ferryv1.Kind_KIND_METRIC
	metric.Source = nil
	metric.Fields = map[string]*ferryv1.Value{
		"cpu.ratio": event.Float(0.25), "mem.bytes": event.Int(1 << 40), "up": event.Bool(true),
		"nan": event.Float(math.NaN()), "name": event.Str("a\"b"), "data_stream.dataset": event.Str("node.stats"),
	}
	flagged := ev(9, "cut")
	flagged.Flags = uint32(ferryv1.Flag_FLAG_TRUNCATED | ferryv1.Flag_FLAG_JOINED)
	return []*ferryv1.Event{
		ev(0, "hello world"),
		ev(1, `quotes " and \ backslash`),
		ev(2, "new\nline\r\ttab\x00nul\x1f"),
		ev(3, "bad \xff\xfe utf8"),
		ev(4, "line\u2028sep\u2029para"),
		ev(5, "ünïcödé 日本 🎉"),
		ev(6, ""),
		plain, metric, flagged,
	}
}

// perByteValid replaces each byte utf8.DecodeRune rejects by U+FFFD.
func perByteValid(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		sb.WriteRune(r) // RuneError for an invalid byte
		b = b[n:]
	}
	return sb.String()
}

// checkDocs checks that data holds one valid JSON document per line, the
// one event.AppendDocument makes for each event.
func checkDocs(t *testing.T, data []byte, evs []*ferryv1.Event) {
	t.Helper()
	if len(data) == 0 || data[len(data)-1] != '\n' {
		t.Fatalf("output does not end with a newline: %q", data)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(evs), data)
	}
	for i, line := range lines {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Errorf("line %d is not JSON: %v\n%s", i, err, line)
			continue
		}
		e := evs[i]
		evObj, _ := doc["event"].(map[string]any)
		ingested, err := time.Parse(time.RFC3339Nano, fmt.Sprint(evObj["ingested"]))
		if err != nil {
			t.Errorf("line %d: event.ingested: %v", i, err)
			continue
		}
		if want := event.AppendDocument(nil, node, e, ingested); line != string(want) {
			t.Errorf("line %d:\n got %s\nwant %s", i, line, want)
		}
		// A few fields read back, independently of AppendDocument.
		if got, want := doc["message"], perByteValid(e.Message); got != want {
			t.Errorf("line %d: message %q, want %q", i, got, want)
		}
		if evObj["id"] != event.IDString(e.Id) {
			t.Errorf("line %d: event.id %v, want %s", i, evObj["id"], event.IDString(e.Id))
		}
		if host, _ := doc["host"].(map[string]any); host["name"] != node {
			t.Errorf("line %d: host %v", i, doc["host"])
		}
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(doc["@timestamp"]))
		if err != nil || ts.UnixNano() != e.TimeUnixNano {
			t.Errorf("line %d: @timestamp %v, want %v", i, doc["@timestamp"], time.Unix(0, e.TimeUnixNano).UTC())
		}
		if e.GetSource().GetPath() != "" {
			logObj, _ := doc["log"].(map[string]any)
			file, _ := logObj["file"].(map[string]any)
			if file["path"] != e.Source.Path || logObj["offset"] != float64(e.Source.Offset) {
				t.Errorf("line %d: log %v", i, doc["log"])
			}
		}
		if k := e.GetKubernetes(); k != nil {
			kube, _ := doc["kubernetes"].(map[string]any)
			pod, _ := kube["pod"].(map[string]any)
			if kube["namespace"] != k.Namespace || pod["name"] != k.Pod {
				t.Errorf("line %d: kubernetes %v", i, doc["kubernetes"])
			}
		}
	}
	// Invalid UTF-8 is replaced.
	if bytes.Contains(data, []byte{0xff}) {
		t.Error("output holds invalid UTF-8")
	}
}

func TestFileDocuments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "out.ndjson")
	s, err := ndjson.NewFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs := events()
	ctx := context.Background()
	for _, part := range [][]*ferryv1.Event{evs[:4], evs[4:]} {
		res, err := s.Write(ctx, &event.Batch{Node: node, Seq: 1, Events: part})
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK() || res.Delivered != len(part) {
			t.Errorf("result %+v, want %d delivered", res, len(part))
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkDocs(t, data, evs)

	// Reopening appends.
	s2, err := ndjson.NewFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Write(ctx, &event.Batch{Node: node, Events: evs[:1]}); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	checkDocs(t, data, append(evs[:len(evs):len(evs)], evs[0]))
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	fileSink := func(t *testing.T) *ndjson.Sink {
		s, err := ndjson.NewFile(filepath.Join(t.TempDir(), "out.ndjson"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tt := range []struct {
		name string
		sink func(t *testing.T) *ndjson.Sink
	}{
		{"file", fileSink},
		{"writer", func(*testing.T) *ndjson.Sink { return ndjson.NewWriter("stdout", &bytes.Buffer{}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.sink(t)
			if _, err := s.Write(ctx, &event.Batch{Node: node, Events: events()[:1]}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatalf("first Close: %v", err)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			res, err := s.Write(ctx, &event.Batch{Node: node, Events: events()[:1]})
			if err == nil || !strings.Contains(err.Error(), "closed") {
				t.Errorf("Write after Close: %+v, %v; want an error", res, err)
			}
		})
	}
}

func TestWriterErrors(t *testing.T) {
	var buf bytes.Buffer
	s := ndjson.NewWriter("stdout", &buf)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Write(ctx, &event.Batch{Node: node, Events: events()}); !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a cancelled ctx: %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q with a cancelled ctx", buf.String())
	}
	bad := ndjson.NewWriter("broken", failWriter{})
	_, err := bad.Write(context.Background(), &event.Batch{Node: node, Events: events()})
	if err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Write to a failing writer: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// countingWriter records the size of every write call.
type countingWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	calls int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	return w.buf.Write(p)
}

// TestConcurrentBatches: a batch is one write call, so concurrent batches
// never interleave their lines.
func TestConcurrentBatches(t *testing.T) {
	w := &countingWriter{}
	s := ndjson.NewWriter("stdout", w)
	const writers, batches, perBatch = 8, 20, 50
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				evs := make([]*ferryv1.Event, perBatch)
				for i := range evs {
					evs[i] = ev(int64(i), fmt.Sprintf("g%d b%d i%d", g, b, i))
				}
				if _, err := s.Write(context.Background(), &event.Batch{Node: node, Events: evs}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if w.calls != writers*batches {
		t.Errorf("%d write calls for %d batches", w.calls, writers*batches)
	}
	sc := bufio.NewScanner(&w.buf)
	n := 0
	for sc.Scan() {
		var doc struct{ Message string }
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		var g, b, i int
		if _, err := fmt.Sscanf(doc.Message, "g%d b%d i%d", &g, &b, &i); err != nil || i != n%perBatch {
			t.Fatalf("line %d: message %q: lines of batches interleave", n, doc.Message)
		}
		n++
	}
	if n != writers*batches*perBatch {
		t.Errorf("%d lines, want %d", n, writers*batches*perBatch)
	}
}

// Issue 19, case 14: the error of a failed write names the file once
// ("write X: write X: no space left on device" before). /dev/full fails
// every write with ENOSPC.
func TestWriteErrorNamesFileOnce(t *testing.T) {
	const path = "/dev/full"
	s, err := ndjson.NewFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	_, err = s.Write(context.Background(), &event.Batch{Node: node, Events: events()[:2]})
	if err == nil {
		t.Fatal("Write to /dev/full succeeded")
	}
	if got, want := err.Error(), "file sink: write /dev/full: no space left on device"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
}
