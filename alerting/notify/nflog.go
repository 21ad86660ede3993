package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ferrylogs/ferry/pipeline/atomicfile"
)

// Sent is what a group's receiver was last told: the notification log's
// entry of one group key.
type Sent struct {
	// Firing are the fingerprints notified as firing, sorted.
	Firing []string  `json:"firing"`
	Sent   time.Time `json:"sent"`
	// Thread is the ID of the incident's first notice (email threading);
	// cleared once the group resolved.
	Thread string `json:"thread"`
	Seq    int    `json:"seq"`
}

// NotificationLog keeps a Sent per group key. In Elasticsearch (ESLog) it is
// shared by the replicas, so a new leader does not notify again what the
// old one did.
type NotificationLog interface {
	// Get returns the entry of key, nil when there is none.
	Get(ctx context.Context, key string) (*Sent, error)
	Put(ctx context.Context, key string, s *Sent) error
}

// DefaultLogIndex is the index of Ferry's own that keeps the notification
// log.
const DefaultLogIndex = "ferry-alerting-nflog"

// ESLog is the notification log in an Elasticsearch index, one document per
// group key (its _id a hash of the key); reads are realtime (_mget).
type ESLog struct {
	ES    Doer
	Index string // default DefaultLogIndex
}

type esLogDoc struct {
	GroupKey string `json:"group_key"`
	Sent
}

func (l *ESLog) index() string {
	if l.Index == "" {
		return DefaultLogIndex
	}
	return l.Index
}

func logID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

func (l *ESLog) Get(ctx context.Context, key string) (*Sent, error) {
	var res struct {
		Docs []struct {
			Found  bool            `json:"found"`
			Source esLogDoc        `json:"_source"`
			Error  json.RawMessage `json:"error"`
		} `json:"docs"`
	}
	if err := l.ES.Do(ctx, "POST", "/"+url.PathEscape(l.index())+"/_mget", map[string]any{"ids": []string{logID(key)}}, &res); err != nil {
		return nil, fmt.Errorf("notification log: %w", err)
	}
	// No such index yet: an error in the doc, not found.
	if len(res.Docs) != 1 || !res.Docs[0].Found {
		return nil, nil
	}
	s := res.Docs[0].Source.Sent
	return &s, nil
}

func (l *ESLog) Put(ctx context.Context, key string, s *Sent) error {
	if err := l.ES.Do(ctx, "PUT", "/"+url.PathEscape(l.index())+"/_doc/"+logID(key), esLogDoc{key, *s}, nil); err != nil {
		return fmt.Errorf("notification log: %w", err)
	}
	return nil
}

// FileLog is the notification log in one JSON file (nflog.json in the
// outbox directory), for a single aggregator.
type FileLog struct {
	path string
	mu   sync.Mutex
	m    map[string]*Sent
}

// OpenFileLog reads the log at path (none yet: empty).
func OpenFileLog(path string) (*FileLog, error) {
	l := &FileLog{path: path, m: map[string]*Sent{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &l.m); err != nil {
		return nil, fmt.Errorf("notification log %s: %w", path, err)
	}
	return l, nil
}

func (l *FileLog) Get(_ context.Context, key string) (*Sent, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.m[key]; s != nil {
		c := *s
		return &c, nil
	}
	return nil, nil
}

func (l *FileLog) Put(_ context.Context, key string, s *Sent) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *s
	l.m[key] = &c
	data, err := json.Marshal(l.m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return err
	}
	if err := atomicfile.Write(l.path, data); err != nil {
		return fmt.Errorf("notification log: %w", err)
	}
	return nil
}
