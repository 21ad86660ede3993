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

// outbox keeps the notices not yet delivered, one JSON file each in dir,
// and the notification log (nflog.json): what each group's receiver was
// last told. A notice is written (synced) before the log records it and
// removed once delivered; at start the log is brought up to date from the
// notices still waiting, so a crash between the two writes sends nothing
// twice and loses nothing.
type outbox struct {
	dir string
	mu  sync.Mutex
	n   map[string]*Notice
}

const nflogFile = "nflog.json"

func openOutbox(dir string) (*outbox, map[string]*sent, error) {
	if dir == "" {
		return nil, nil, errors.New("notify: no outbox directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("notify: outbox: %w", err)
	}
	b := &outbox{dir: dir, n: map[string]*Notice{}}
	nflog := map[string]*sent{}
	if data, err := os.ReadFile(filepath.Join(dir, nflogFile)); err == nil {
		if err := json.Unmarshal(data, &nflog); err != nil {
			return nil, nil, fmt.Errorf("notify: %s: %w", filepath.Join(dir, nflogFile), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("notify: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("notify: outbox: %w", err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "notice-") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("notify: %w", err)
		}
		var n Notice
		if err := json.Unmarshal(data, &n); err != nil {
			// A torn write cannot happen (rename); anything else is not ours.
			return nil, nil, fmt.Errorf("notify: outbox %s: %w", p, err)
		}
		b.n[n.ID] = &n
		// The log may not have recorded this notice (crash between the
		// two writes): bring it up to date.
		if n.Flapping {
			continue
		}
		s := nflog[n.GroupKey]
		if s == nil {
			s = &sent{}
		}
		if n.Created.After(s.Sent) {
			s.Sent = n.Created
			s.Firing = s.Firing[:0]
			for _, a := range n.firing() {
				s.Firing = append(s.Firing, a.Fingerprint())
			}
			slices.Sort(s.Firing)
			if s.Thread == "" {
				s.Thread = n.Thread
			}
			nflog[n.GroupKey] = s
		}
	}
	return b, nflog, nil
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
	b.mu.Lock()
	delete(b.n, id)
	b.mu.Unlock()
	_ = os.Remove(b.path(id))
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

func (b *outbox) saveLog(log map[string]*sent) error {
	data, err := json.Marshal(log)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(b.dir, nflogFile), data); err != nil {
		return fmt.Errorf("notification log: %w", err)
	}
	return nil
}
