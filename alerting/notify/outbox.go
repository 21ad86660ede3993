package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ferrylogs/ferry/pipeline/atomicfile"
)

// outbox keeps the notices not yet delivered, one JSON file each in dir
// (written and synced before the notification log records them, removed
// once delivered).
type outbox struct {
	dir string
	mu  sync.Mutex
	n   map[string]*Notice
}

func openOutbox(dir string) (*outbox, error) {
	if dir == "" {
		return nil, errors.New("notify: no outbox directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("notify: outbox: %w", err)
	}
	b := &outbox{dir: dir, n: map[string]*Notice{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("notify: outbox: %w", err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "notice-") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
		var n Notice
		if err := json.Unmarshal(data, &n); err != nil {
			// Never torn (atomic rename): not a notice of ours.
			return nil, fmt.Errorf("notify: outbox %s: %w", p, err)
		}
		b.n[n.ID] = &n
	}
	return b, nil
}

func (b *outbox) path(id string) string { return filepath.Join(b.dir, "notice-"+id+".json") }

func (b *outbox) put(n *Notice) error {
	data, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(b.path(n.ID), data); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	b.mu.Lock()
	b.n[n.ID] = n
	b.mu.Unlock()
	return nil
}

func (b *outbox) update(n *Notice) error { return b.put(n) }

func (b *outbox) remove(id string) {
	// The file first: once len no longer counts the notice, a restart does
	// not send it again.
	_ = os.Remove(b.path(id))
	b.mu.Lock()
	delete(b.n, id)
	b.mu.Unlock()
}

// pending returns copies of the waiting notices, oldest first.
func (b *outbox) pending() []*Notice {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Notice, 0, len(b.n))
	for _, n := range b.n {
		c := *n
		out = append(out, &c)
	}
	slices.SortFunc(out, func(x, y *Notice) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

func (b *outbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.n)
}
