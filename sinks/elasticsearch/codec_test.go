package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
)

// decodeWhole is what parseBulk answered before it scanned: every item
// decoded by encoding/json.
func decodeWhole(body []byte, n int) (bulkAnswer, error) {
	var a bulkAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return a, err
	}
	if len(a.Items) != n {
		return a, fmt.Errorf("%d items for %d", len(a.Items), n)
	}
	return a, nil
}

// sameAnswers reports whether parseBulk's answer and encoding/json's say
// the same for each of n items: status, and for what the sink reads of an
// error (classify, itemError, deadLetter), type and reason; a duplicate's
// reason is not read.
func sameAnswers(t *testing.T, got, want bulkAnswer, n int) {
	t.Helper()
	for i := range n {
		g, w := got.item(i), want.item(i)
		if w.Status == 409 && w.Error.Type == conflictError {
			w.Error.Reason = g.Error.Reason
		}
		if got.Items == nil && w.Status/100 == 2 {
			w.Status = g.Status // not read: every item succeeded
		}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("item %d: %+v, want %+v", i, g, w)
		}
		if classify(g) != classify(w) {
			t.Fatalf("item %d classified %v, want %v", i, classify(g), classify(w))
		}
	}
}

// TestParseBulk: the answers the sink scans say, item by item, what
// encoding/json reads in them; answers of another shape are decoded whole;
// a wrong number of items is an error.
func TestParseBulk(t *testing.T) {
	item := func(status int, typ, reason string) string {
		if typ == "" {
			return fmt.Sprintf(`{"create":{"status":%d}}`, status)
		}
		r, _ := json.Marshal(reason)
		return fmt.Sprintf(`{"create":{"status":%d,"error":{"type":%q,"reason":%s}}}`, status, typ, r)
	}
	answer := func(errors bool, items ...string) string {
		return fmt.Sprintf(`{"errors":%v,"items":[%s]}`, errors, strings.Join(items, ","))
	}
	ok, dup := item(201, "", ""), item(409, conflictError, "[x]: version conflict, document already exists (current version [1])")
	cases := []string{
		answer(false, ok),
		answer(false, ok, ok, ok),
		answer(false, ok, item(200, "", "")),
		answer(true, ok, dup, ok),
		answer(true, dup, dup),
		answer(true, item(400, "document_parsing_exception", `[1:42] failed to parse field [m] of type [long] in document with id 'b'. Preview of field's value: '}{"\x'`), ok),
		answer(true, item(409, "some_other_conflict", "not a duplicate"), ok),
		answer(true, item(429, "es_rejected_execution_exception", "rejected execution of coordinating operation"), ok, dup),
		answer(true, item(503, "unavailable_shards_exception", "[x][0] primary shard is not active"), item(201, "", "")),
		answer(true, item(404, "index_not_found_exception", "no such index [\\u00e9]"), ok),
		answer(true, `{"create":{"status":201,"result":"created"}}`, ok), // more than filter_path keeps
		answer(true, item(403, "security_exception", "action [indices:data/write/bulk[s]] is unauthorized"), ok),
		// Other shapes, decoded whole.
		`{"took":3,"errors":true,"items":[` + ok + `,` + dup + `]}`,
		` {"errors":false,"items":[` + ok + `]} `,
		`{"items":[` + ok + `],"errors":true}`,
		"{\"errors\":true,\n\"items\":[" + ok + "," + dup + "]}",
	}
	for _, body := range cases {
		var n int
		var want bulkAnswer
		var a struct{ Items []json.RawMessage }
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatalf("bad case %s: %v", body, err)
		}
		n = len(a.Items)
		want, err := decodeWhole([]byte(body), n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseBulk([]byte(body), n)
		if err != nil {
			t.Fatalf("parseBulk(%s): %v", body, err)
		}
		sameAnswers(t, got, want, n)
		for _, wrong := range []int{n - 1, n + 1} {
			if _, err := parseBulk([]byte(body), wrong); err == nil {
				t.Errorf("parseBulk(%s, %d items): no error", body, wrong)
			}
		}
	}
	if _, err := parseBulk([]byte(`{"errors":true,"items":[`+ok), 1); err == nil {
		t.Error("a cut answer: no error")
	}
}

// FuzzParseBulk: whatever the answer, parseBulk says what encoding/json
// reads in it, or fails when encoding/json does.
func FuzzParseBulk(f *testing.F) {
	f.Add([]byte(`{"errors":false,"items":[{"create":{"status":201}}]}`), 1)
	f.Add([]byte(`{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"x"}}}]}`), 2)
	f.Add([]byte(`{"errors":true,"items":[{"create":{"status":400,"error":{"type":"a","reason":"b\"}{"}}}]}`), 1)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		if n <= 0 || n > 100 {
			return
		}
		got, err := parseBulk(body, n)
		want, werr := decodeWhole(body, n)
		if werr != nil {
			if err == nil && !bytes.HasPrefix(bytes.TrimSpace(body), []byte(allCreated)) {
				t.Fatalf("parseBulk(%q) accepted what encoding/json refuses (%v)", body, werr)
			}
			return
		}
		if err != nil {
			t.Fatalf("parseBulk(%q): %v; encoding/json reads it", body, err)
		}
		sameAnswers(t, got, want, n)
	})
}

// TestBulkBody: the request body is each item's action line and document,
// and a reused buffer holds only the new request.
func TestBulkBody(t *testing.T) {
	batch := codecBatch(3)
	items := buildItems(newWaiter(context.Background(), 3), batch, time.Unix(0, 0))
	items[1].id = "" // a time-series metric: Elasticsearch makes the _id
	old := appendBulkBody(nil, buildItems(newWaiter(context.Background(), 3), codecBatch(3), time.Unix(0, 0)))
	body := appendBulkBody(old[:0], items)
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines:\n%s", len(lines), body)
	}
	for i, it := range items {
		want := `{"create":{"_index":"` + it.index + `","_id":"` + it.id + `"}}`
		if it.id == "" {
			want = `{"create":{"_index":"` + it.index + `"}}`
		}
		if lines[2*i] != want || lines[2*i+1] != string(it.doc) {
			t.Errorf("item %d:\n%s\n%s\nwant\n%s\n%s", i, lines[2*i], lines[2*i+1], want, it.doc)
		}
		if it.id != "" && it.id != event.IDString(batch.Events[i].GetId()) {
			t.Errorf("item %d: _id %s, want %s", i, it.id, event.IDString(batch.Events[i].GetId()))
		}
		if it.index != batch.DataStream(i) {
			t.Errorf("item %d: index %s, want %s", i, it.index, batch.DataStream(i))
		}
		if want := batch.AppendDocument(nil, i, time.Unix(0, 0)); !bytes.Equal(it.doc, want) {
			t.Errorf("item %d: document\n%s\nwant\n%s", i, it.doc, want)
		}
	}
}

// TestBodyReuse: a pooled body goes back to the pool only after the
// request is over and every reader of it is closed; a reader closed reads
// nothing more.
func TestBodyReuse(t *testing.T) {
	var p bodyPool
	b := p.get()
	b.b = append(b.b, "first request"...)
	r1, r2 := b.reader(), b.reader()
	b.done()
	r1.Close()
	if got := b.open; got != 1 || !b.finished {
		t.Fatalf("open %d finished %v", got, b.finished)
	}
	head := make([]byte, 5)
	if _, err := io.ReadFull(r2, head); err != nil || string(head) != "first" {
		t.Fatalf("read %q %v", head, err)
	}
	r2.Close()
	if _, err := r2.Read(head); err == nil {
		t.Fatal("read after close")
	}
	if b.open != 0 {
		t.Fatalf("open %d", b.open)
	}
}
