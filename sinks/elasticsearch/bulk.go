package elasticsearch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
)

// item is one document on its way to Elasticsearch.
type item struct {
	w     *waiter
	pos   int    // index of the event in its batch
	index string // data stream
	id    string // _id
	// line is the item's part of a bulk body, as sent: its action line and
	// its document, each ending in '\n'. The document starts at docAt.
	line  []byte
	docAt int
	// owner holds line, at owner.lines[at:at+len(line)], when line is in
	// a Write's pooled buffers (nil: line is an allocation of its own, a
	// dead-letter item's). Items of one owner that follow each other there
	// go into a request body as one segment, without a copy.
	owner    *writeBufs
	at       int
	dead     bool // this is the dead-letter copy of the event
	attempts int  // per-item retries so far
}

// doc returns the item's JSON document.
func (it *item) doc() []byte { return it.line[it.docAt : len(it.line)-1] }

// size is what the item adds to a bulk body.
func (it *item) size() int { return len(it.line) }

// appendAction appends the action line of a create of id (none: "") into
// index, without its '\n'.
func appendAction(dst []byte, index, id string) []byte {
	dst = append(dst, `{"create":{"_index":`...)
	dst = appendJSONString(dst, index)
	if id != "" { // an event without id (a bug upstream) or a time-series metric gets one from Elasticsearch
		dst = append(dst, `,"_id":`...)
		dst = appendJSONString(dst, id)
	}
	return append(dst, "}}"...)
}

// newLine returns the bulk lines of a create of doc with id into index, in
// an allocation of their own, and where doc starts in them.
func newLine(index, id string, doc []byte) (line []byte, docAt int) {
	line = make([]byte, 0, len(`{"create":{"_index":"","_id":""}}`)+len(index)+len(id)+len(doc)+2+16)
	line = append(appendAction(line, index, id), '\n')
	docAt = len(line)
	line = append(line, doc...)
	return append(line, '\n'), docAt
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := json.Marshal(s) // rare: escape properly
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// minSegment: a run of items of one owner shorter than this is copied into
// the body's own buffer (with the other short runs next to it) rather
// than sent as a segment of its own: each segment is a chunk and a few
// writes to the connection, worth it only for a run of many items.
const minSegment = 32 << 10

// setBulkBody makes body the bulk request body of the items: their lines
// in order. A run of items that follow each other in one Write's buffers
// (usually all a Write's items) is one segment of the body, sent from
// those buffers; each Write whose buffers the body uses keeps them, out of
// the pool, until the body is released (see reqBody). Short runs and
// items of their own are copied into the body's buffer.
func setBulkBody(body *reqBody, batch []*item) {
	// First the size of the copied part, so that its buffer grows at most
	// once (and keeps segments of it valid).
	copied := 0
	forRuns(batch, func(run []*item, n int) {
		if run[0].owner == nil || n < minSegment {
			copied += n
		}
	})
	body.buf = slices.Grow(body.buf[:0], copied)
	pending := -1 // where copied runs not yet in a segment start in body.buf
	flush := func() {
		if pending >= 0 {
			body.addSegment(body.buf[pending:], nil)
			pending = -1
		}
	}
	forRuns(batch, func(run []*item, n int) {
		first := run[0]
		if first.owner != nil && n >= minSegment {
			flush()
			body.addSegment(first.owner.lines[first.at:first.at+n], first.owner)
			return
		}
		if pending < 0 {
			pending = len(body.buf)
		}
		for _, it := range run {
			body.buf = append(body.buf, it.line...)
		}
	})
	flush()
}

// forRuns calls f with each run of batch whose lines follow each other in
// one owner's buffer (an item without owner is a run of its own) and the
// run's length in bytes.
func forRuns(batch []*item, f func(run []*item, n int)) {
	for i := 0; i < len(batch); {
		first := batch[i]
		n := len(first.line)
		j := i + 1
		if first.owner != nil {
			for j < len(batch) && batch[j].owner == first.owner && batch[j].at == first.at+n {
				n += len(batch[j].line)
				j++
			}
		}
		f(batch[i:j], n)
		i = j
	}
}

// bulkQuery trims the bulk answer to what the sink reads.
const bulkQuery = "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"

// bulkAnswer is the answer to a bulk request of n items. When no item
// failed (errors: false) the items are not decoded: each was created.
type bulkAnswer struct {
	Errors bool `json:"errors"`
	Items  []struct {
		Create bulkItemAnswer `json:"create"`
	} `json:"items"`
}

// item returns the answer for item i: a 201 when the items were not
// decoded.
func (a *bulkAnswer) item(i int) bulkItemAnswer {
	if a.Items == nil {
		return bulkItemAnswer{Status: http.StatusCreated}
	}
	return a.Items[i].Create
}

type bulkItemAnswer struct {
	Status int `json:"status"`
	Error  struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// allCreated is how an answer without errors starts, with bulkQuery's
// filter_path; each item is then `{"create":{"status":201}}`.
const allCreated = `{"errors":false,"items":[`

// parseBulk decodes a 200 bulk answer for n items. An answer without
// errors is only checked for its number of items; in one with errors, the
// items that succeeded and the duplicates are recognized by their first
// bytes, and only the others are decoded.
func parseBulk(body []byte, n int) (bulkAnswer, error) {
	b := bytes.TrimSpace(body)
	if bytes.HasPrefix(b, []byte(allCreated)) && bytes.HasSuffix(b, []byte("]}")) {
		if allCreated201(b, n) {
			return bulkAnswer{}, nil
		}
		// Only statuses in the items: one per item.
		if got := bytes.Count(b, []byte(`"status":`)); got != n {
			return bulkAnswer{}, fmt.Errorf("bulk answer has %d items for %d sent", got, n)
		}
		return bulkAnswer{}, nil
	}
	if a, ok := scanBulk(b, n); ok {
		return a, nil
	}
	var a bulkAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("decoding the bulk answer: %w", err)
	}
	if len(a.Items) != n {
		return a, fmt.Errorf("bulk answer has %d items for %d sent", len(a.Items), n)
	}
	return a, nil
}

// created201 is an item created, as filter_path writes it.
const created201 = `{"create":{"status":201}}`

// allCreated201 reports whether b, an answer without errors, is exactly
// n items `{"create":{"status":201}}`: what Elasticsearch answers to
// creates that all succeed, checked item by item against those bytes
// rather than searched for statuses.
func allCreated201(b []byte, n int) bool {
	if n <= 0 || len(b) != len(allCreated)+n*(len(created201)+1)-1+len("]}") {
		return false
	}
	items := b[len(allCreated) : len(b)-len("]}")]
	for i := range n {
		it := items[i*(len(created201)+1):]
		if string(it[:len(created201)]) != created201 || (i < n-1 && it[len(created201)] != ',') {
			return false
		}
	}
	return true
}

// Items of an answer with errors, as filter_path writes them.
const (
	itemPrefix    = `{"create":{"status":`
	conflictItem  = itemPrefix + `409,"error":{"type":"version_conflict_engine_exception",`
	withErrors    = `{"errors":true,"items":[`
	statusDigits  = 3
	okItemLen     = len(itemPrefix) + statusDigits + len(`}}`)
	conflictError = "version_conflict_engine_exception"
)

// scanBulk reads an answer with errors of the shape bulkQuery asks for
// (`{"errors":true,"items":[{"create":{"status":201}},...]}`): an item
// `{"create":{"status":2xx}}` or a 409 version conflict is read from its
// first bytes, any other is decoded alone. It answers false for an answer
// of another shape (or n items not found), which the caller decodes whole.
func scanBulk(b []byte, n int) (bulkAnswer, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(withErrors))
	if !ok {
		return bulkAnswer{}, false
	}
	a := bulkAnswer{Errors: true, Items: make([]struct {
		Create bulkItemAnswer `json:"create"`
	}, n)}
	for i := range n {
		if i > 0 {
			if rest, ok = bytes.CutPrefix(rest, []byte(",")); !ok {
				return bulkAnswer{}, false
			}
		}
		end := objectEnd(rest)
		if end < 0 {
			return bulkAnswer{}, false
		}
		obj := rest[:end]
		rest = rest[end:]
		ans := &a.Items[i].Create
		switch {
		case len(obj) == okItemLen && bytes.HasPrefix(obj, []byte(itemPrefix)) && obj[len(itemPrefix)] == '2':
			st, err := strconv.Atoi(string(obj[len(itemPrefix) : len(itemPrefix)+statusDigits]))
			if err != nil {
				return bulkAnswer{}, false
			}
			ans.Status = st
		case bytes.HasPrefix(obj, []byte(conflictItem)) && reasonEnd(obj[len(conflictItem):]):
			ans.Status, ans.Error.Type = http.StatusConflict, conflictError // the reason is not read
		default:
			var one struct {
				Create bulkItemAnswer `json:"create"`
			}
			if json.Unmarshal(obj, &one) != nil {
				return bulkAnswer{}, false
			}
			*ans = one.Create
		}
	}
	return a, bytes.Equal(rest, []byte("]}"))
}

// reasonEnd reports whether b is `"reason":` and a valid JSON string, then
// the end of a 409 item (`}}}`): the rest of a version conflict's item.
func reasonEnd(b []byte) bool {
	b, ok := bytes.CutPrefix(b, []byte(`"reason":"`))
	if !ok {
		return false
	}
	i := 0
	for i < len(b) && b[i] != '"' {
		switch c := b[i]; {
		case c < 0x20:
			return false
		case c == '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return false
				}
				for _, h := range b[i+2 : i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		default:
			i++
		}
	}
	return i < len(b) && string(b[i+1:]) == "}}}"
}

// objectEnd returns the length of the JSON object at the start of b, or -1
// if b does not start with a complete one. Strings are skipped whole, so
// braces and quotes inside them do not count.
func objectEnd(b []byte) int {
	if len(b) == 0 || b[0] != '{' {
		return -1
	}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return i + 1
			}
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		}
	}
	return -1
}

// outcome classifies one item's answer.
type outcome int

const (
	outDelivered outcome = iota // 2xx, or 409: already there
	outRetry                    // 429, 5xx, 401, 403: send it again later
	outReject                   // any other 4xx: the document itself is refused
)

func classify(a bulkItemAnswer) outcome {
	switch {
	case a.Status/100 == 2:
		return outDelivered
	case a.Status == 409 && a.Error.Type == "version_conflict_engine_exception":
		return outDelivered
	case retryableStatus(a.Status):
		return outRetry
	default:
		return outReject
	}
}

// parseError extracts error.type and error.reason of an error body.
func parseError(body []byte) (typ, reason string) {
	var e struct {
		Error struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Error.Type, e.Error.Reason
}
