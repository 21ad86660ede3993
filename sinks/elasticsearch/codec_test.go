package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
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
		answer(false, slices.Repeat([]string{ok}, 100)...),
		answer(false, append(slices.Repeat([]string{ok}, 50), item(200, "", ""))...),
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
// in the order of the items, whichever buffers they are in: runs of one
// Write's items that follow each other in its buffer are sent from there
// (one segment each, no copy), short runs and items of their own
// (dead-letter ones) are copied into the body's buffer, and a reused body
// holds only the new request.
func TestBulkBody(t *testing.T) {
	const n = 200 // ~100 KB of lines: runs of 50 items are above minSegment
	batch := codecBatch(n)
	items := getWriteBufs().build(newWaiter(context.Background(), n), batch, time.Unix(0, 0), false)
	other := getWriteBufs().build(newWaiter(context.Background(), n), codecBatch(n), time.Unix(0, 0), false)
	own := &item{index: "logs-ferry.deadletter-default", id: "x"}
	own.line, own.docAt = newLine(own.index, own.id, []byte(`{"message":"dead"}`))
	for i, it := range items {
		want := `{"create":{"_index":"` + it.index + `","_id":"` + it.id + `"}}` + "\n" + string(it.doc()) + "\n"
		if string(it.line) != want {
			t.Errorf("item %d:\n%s\nwant\n%s", i, it.line, want)
		}
		if it.id != event.IDString(batch.Events[i].GetId()) {
			t.Errorf("item %d: _id %s, want %s", i, it.id, event.IDString(batch.Events[i].GetId()))
		}
		if it.index != batch.DataStream(i) {
			t.Errorf("item %d: index %s, want %s", i, it.index, batch.DataStream(i))
		}
		if want := batch.AppendDocument(nil, i, time.Unix(0, 0)); !bytes.Equal(it.doc(), want) {
			t.Errorf("item %d: document\n%s\nwant\n%s", i, it.doc(), want)
		}
	}
	// A long run, one item of the other Write, a dead-letter item, a
	// short run, a gap (an item resolved already), and a long run again.
	var req []*item
	req = append(req, items[0:50]...)
	req = append(req, other[7], own)
	req = append(req, items[50:53]...)
	req = append(req, items[54:120]...)
	var want []byte
	for _, it := range req {
		want = append(want, it.line...)
	}
	var p bodyPool
	stale := p.get()
	setBulkBody(stale, other) // a request before, from the same pool
	stale.done()
	body := p.get()
	setBulkBody(body, req)
	if body.size != len(want) {
		t.Fatalf("body size %d, want %d", body.size, len(want))
	}
	if len(body.segs) != 3 {
		t.Errorf("%d segments, want 3: a long run, the copied items, a long run", len(body.segs))
	}
	owner := items[0].owner
	if &body.segs[0][0] != &owner.lines[0] || &body.segs[2][0] != &owner.lines[items[54].at] {
		t.Error("long runs were copied, not sent from the Write's buffer")
	}
	if got := owner.refs.Load(); got != 2 || len(body.owners) != 1 {
		t.Errorf("owner references %d, owners %d; want 2 (the Write's, the body's) and 1 (the short run of other is copied)", got, len(body.owners))
	}
	var read bytes.Buffer
	r := body.reader()
	head := make([]byte, 1000) // Read across a segment's end, then WriteTo
	k, _ := io.ReadFull(r, head)
	read.Write(head[:k])
	if _, err := r.(io.WriterTo).WriteTo(&read); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read.Bytes(), want) {
		t.Fatalf("body reads %d bytes, not the items' lines (%d bytes)", read.Len(), len(want))
	}
	all, err := io.ReadAll(body.reader()) // a second reader: GetBody
	if err != nil || !bytes.Equal(all, want) {
		t.Fatalf("second reader: %d bytes, %v", len(all), err)
	}
	if got := owner.refs.Load(); got != 2 {
		t.Fatalf("owner references %d while the body is in use, want 2", got)
	}
	body.done() // every reader was read to its end but not closed
	if got := owner.refs.Load(); got != 2 {
		t.Fatalf("owner references %d with readers of the body open, want 2", got)
	}
}

// TestBodyReuse: a pooled body is released only after the request is over
// and every reader of it is closed; a reader closed reads nothing more. The
// Write buffers it sends from go back to their pool only after the body is
// released and the Write gave them back.
func TestBodyReuse(t *testing.T) {
	var p bodyPool
	b := p.get()
	wb := getWriteBufs()
	wb.lines = append(wb.lines[:0], "first request"...)
	b.addSegment(wb.lines, wb)
	r1, r2 := b.reader(), b.reader()
	b.done()
	r1.Close()
	if got := b.open; got != 1 || !b.finished {
		t.Fatalf("open %d finished %v", got, b.finished)
	}
	wb.unref() // the Write is over
	if got := wb.refs.Load(); got != 1 {
		t.Fatalf("Write buffers have %d references while a reader of a body using them is open, want 1", got)
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
	if got := wb.refs.Load(); got != 0 || len(b.owners) != 0 || len(b.segs) != 0 {
		t.Fatalf("after release: Write buffers' references %d, body owners %d, segments %d; want 0", got, len(b.owners), len(b.segs))
	}
}
