package elasticsearch

import (
	"encoding/json"
	"fmt"
	"time"
)

// deadLetterDoc is the document stored for an event Elasticsearch refused.
type deadLetterDoc struct {
	Timestamp  string       `json:"@timestamp"`
	Message    string       `json:"message"`
	Event      dlEvent      `json:"event"`
	Error      dlError      `json:"error"`
	Ferry      dlFerry      `json:"ferry"`
	DataStream dlDataStream `json:"data_stream"`
}

type dlEvent struct {
	ID       string `json:"id"`
	Dataset  string `json:"dataset"`
	Kind     string `json:"kind"`
	Original string `json:"original"` // the refused document, as sent
}

type dlError struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

type dlFerry struct {
	OriginalIndex string `json:"original_index"`
}

type dlDataStream struct {
	Type      string `json:"type"`
	Dataset   string `json:"dataset"`
	Namespace string `json:"namespace"`
}

// deadLetter builds the dead-letter item for a rejected item: same _id, so a
// re-sent rejection is a 409 (already dead-lettered).
func (s *Sink) deadLetter(it *item, a bulkItemAnswer, now time.Time) (*item, error) {
	typ, dataset, namespace, err := splitDataStream(s.cfg.DeadLetterDataStream)
	if err != nil { // Validate checked it
		return nil, fmt.Errorf("dead-letter data stream: %w", err)
	}
	d := deadLetterDoc{
		Timestamp:  now.UTC().Format(time.RFC3339Nano),
		Message:    fmt.Sprintf("%s rejected the event: %s: %s", it.index, a.Error.Type, a.Error.Reason),
		Event:      dlEvent{ID: it.id, Dataset: dataset, Kind: "event", Original: string(it.doc())},
		Error:      dlError{Type: a.Error.Type, Reason: a.Error.Reason},
		Ferry:      dlFerry{OriginalIndex: it.index},
		DataStream: dlDataStream{Type: typ, Dataset: dataset, Namespace: namespace},
	}
	if d.Error.Type == "" {
		d.Error.Type = fmt.Sprintf("http_%d", a.Status)
	}
	doc, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("dead-letter document: %w", err)
	}
	line, docAt := newLine(s.cfg.DeadLetterDataStream, it.id, doc)
	return &item{w: it.w, pos: it.pos, index: s.cfg.DeadLetterDataStream, id: it.id, line: line, docAt: docAt, dead: true}, nil
}
