package elasticsearch

import (
	"encoding/json"
	"fmt"
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

// bulkQuery trims the bulk answer to what the sink reads.
const bulkQuery = "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"

type bulkAnswer struct {
	Errors bool `json:"errors"`
	Items  []struct {
		Create bulkItemAnswer `json:"create"`
	} `json:"items"`
}

type bulkItemAnswer struct {
	Status int `json:"status"`
	Error  struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// parseBulk decodes a 200 bulk answer for n items.
func parseBulk(body []byte, n int) (bulkAnswer, error) {
	var a bulkAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("decoding the bulk answer: %w", err)
	}
	if len(a.Items) != n {
		return a, fmt.Errorf("bulk answer has %d items for %d sent", len(a.Items), n)
	}
	return a, nil
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
