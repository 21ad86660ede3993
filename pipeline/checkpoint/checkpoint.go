// Package checkpoint keeps the agent's read positions: for every file
// identity, the offset up to which the aggregator has acknowledged every
// line. Positions are saved atomically (temp file, fsync, rename, fsync of
// the directory), so a crash leaves either the old or the new file, never a
// torn one.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ferrylogs/ferry/pipeline/atomicfile"
)

// FileName is the name of the positions file inside the state directory.
const FileName = "positions.json"

// Entry is the saved position of one file.
type Entry struct {
	// ID is the file identity (device, inode, fingerprint) that event ids
	// are derived from.
	ID string `json:"id"`
	// Dev and Ino locate the file again after a restart.
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
	// Fingerprint is the hash of the file's first FingerprintLen bytes.
	Fingerprint    string `json:"fingerprint"`
	FingerprintLen int    `json:"fingerprint_len"`
	// Path is where the file was last seen (the resolved path).
	Path string `json:"path"`
	// Link is the glob match (a symlink under /var/log/containers) if any.
	Link  string `json:"link,omitempty"`
	Input string `json:"input"`
	// Offset is the first byte not yet acknowledged.
	Offset  int64     `json:"offset"`
	Updated time.Time `json:"updated"`
}

// Store holds the positions in memory and saves them on demand. Its methods
// are safe for concurrent use.
type Store struct {
	dir     string
	mu      sync.Mutex
	entries map[string]*Entry
	dirty   bool
	existed bool
}

type fileFormat struct {
	Version int      `json:"version"`
	Entries []*Entry `json:"entries"`
}

// Open loads the positions saved in dir, creating dir if needed. A missing
// file is an empty store; a corrupt one is an error that names it.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	s := &Store{dir: dir, entries: map[string]*Entry{}}
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parse %s: %w (move it away to start from the configured start_at)", path, err)
	}
	for _, e := range f.Entries {
		s.entries[e.ID] = e
	}
	s.existed = true
	return s, nil
}

// Existed reports whether a positions file was found at Open: false on the
// agent's very first start.
func (s *Store) Existed() bool { return s.existed }

// Get returns a copy of the entry for id.
func (s *Store) Get(id string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// Find returns the entries saved for the device and inode.
func (s *Store) Find(dev, ino uint64) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	for _, e := range s.entries {
		if e.Dev == dev && e.Ino == ino {
			out = append(out, *e)
		}
	}
	return out
}

// All returns a copy of every entry, sorted by id.
func (s *Store) All() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Put records e, replacing any entry with the same id.
func (s *Store) Put(e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Updated = time.Now().UTC()
	s.entries[e.ID] = &e
	s.dirty = true
}

// Advance moves the offset of id forward to off; it never moves it back.
// It reports whether the entry exists.
func (s *Store) Advance(id string, off int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return false
	}
	if off > e.Offset {
		e.Offset = off
		e.Updated = time.Now().UTC()
		s.dirty = true
	}
	return true
}

// Remove forgets id.
func (s *Store) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[id]; ok {
		delete(s.entries, id)
		s.dirty = true
	}
}

// Save writes the positions if they changed since the last Save.
func (s *Store) Save() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	f := fileFormat{Version: 1, Entries: make([]*Entry, 0, len(s.entries))}
	for _, e := range s.entries {
		c := *e
		f.Entries = append(f.Entries, &c)
	}
	s.dirty = false
	s.mu.Unlock()
	sort.Slice(f.Entries, func(i, j int) bool { return f.Entries[i].ID < f.Entries[j].ID })
	data, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("encode positions: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, FileName), data); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}
