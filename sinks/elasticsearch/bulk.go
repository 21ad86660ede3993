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
	w        *waiter
	pos      int    // index of the event in its batch
	index    string // data stream
	id       string // _id
	doc      []byte // the JSON document
	dead     bool   // this is the dead-letter copy of the event
	attempts int    // per-item retries so far
}

// size is what the item adds to a bulk body.
func (it *item) size() int {
	return len(`{"create":{"_index":"","_id":""}}`) + len(it.index) + len(it.id) + len(it.doc) + 2
}

// appendBulk appends the action and document lines of it.
func appendBulk(dst []byte, it *item) []byte {
	dst = append(dst, `{"create":{"_index":`...)
	dst = appendJSONString(dst, it.index)
	if it.id != "" { // an event without id (a bug upstream) gets one from Elasticsearch
		dst = append(dst, `,"_id":`...)
		dst = appendJSONString(dst, it.id)
	}
	dst = append(dst, "}}\n"...)
	dst = append(dst, it.doc...)
	return append(dst, '\n')
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

// appendBulkBody appends the bulk request body of the items: their action
// and document lines.
func appendBulkBody(dst []byte, batch []*item) []byte {
	size := 0
	for _, it := range batch {
		size += it.size()
	}
	dst = slices.Grow(dst, size)
	for _, it := range batch {
		dst = appendBulk(dst, it)
	}
	return dst
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
		case bytes.HasPrefix(obj, []byte(conflictItem)):
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
