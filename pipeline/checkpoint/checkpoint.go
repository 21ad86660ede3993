// Package checkpoint keeps the agent's read positions: for every file
// identity, the offset up to which the aggregator has acknowledged every
// line, and a checksum of the bytes just before that offset, so that a
// resume can be verified against the file. Positions are saved atomically
// (temp file, fsync, rename, fsync of the directory), so a crash leaves
// either the old or the new file, never a torn one.
//
// A file identity is never used for two generations of content: an entry
// removed (its file finished, gone or rewritten) leaves a tombstone with
// its generation, and NextGen hands the next generation a new id.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ferrylogs/ferry/pipeline/atomicfile"
)

// FileName is the name of the positions file inside the state directory.
const FileName = "positions.json"

// Entry is the saved position of one file.
type Entry struct {
	// ID is the file identity that event ids are derived from: Base, and
	// for a generation after the first "-g<Gen>".
	ID string `json:"id"`
	// Base is the identity of the file's device, inode and fingerprint
	// ("" in positions saved before generations: the ID). Gen counts the
	// contents that identity has had (rewritten, truncated, or a new file
	// on a reused inode).
	Base string `json:"base,omitempty"`
	Gen  int    `json:"gen,omitempty"`
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
	Offset int64 `json:"offset"`
	// Check is the hash of the CheckLen bytes just before Offset (at most
	// CheckMax), as they were read: a resume at Offset is verified with it.
	// CheckLen 0: nothing to verify (offset 0, or an older positions file).
	Check    string `json:"check,omitempty"`
	CheckLen int    `json:"check_len,omitempty"`
	// Retired: the file is known to be deleted. The entry only waits for
	// the acks of lines already sent; no file is ever resumed from it.
	Retired bool      `json:"retired,omitempty"`
	Updated time.Time `json:"updated"`
}

// CheckMax is the most bytes a Check covers.
const CheckMax = 1024

// FingerprintMax is the most bytes a Fingerprint covers.
const FingerprintMax = 1024

// BaseID returns the identity e's generations share.
func (e *Entry) BaseID() string {
	if e.Base != "" {
		return e.Base
	}
	return e.ID
}

// GenID returns the id of generation gen of the identity base.
func GenID(base string, gen int) string {
	if gen == 0 {
		return base
	}
	return fmt.Sprintf("%s-g%d", base, gen)
}

// valid reports what is wrong with an entry loaded from disk, if anything.
func (e *Entry) valid() error {
	switch {
	case e.ID == "":
		return errors.New("no id")
	case e.Offset < 0:
		return fmt.Errorf("negative offset %d", e.Offset)
	case e.Gen < 0:
		return fmt.Errorf("negative generation %d", e.Gen)
	case e.FingerprintLen < 0 || e.FingerprintLen > FingerprintMax:
		return fmt.Errorf("fingerprint length %d out of [0, %d]", e.FingerprintLen, FingerprintMax)
	case e.CheckLen < 0 || e.CheckLen > CheckMax || int64(e.CheckLen) > e.Offset:
		return fmt.Errorf("check length %d impossible at offset %d", e.CheckLen, e.Offset)
	}
	return nil
}

// tomb remembers the last generation of an identity whose entry is gone.
type tomb struct {
	Base string    `json:"base"`
	Gen  int       `json:"gen"`
	At   time.Time `json:"at"`
}

// Tombstones are kept for tombKeep, at most tombMax of them (the oldest
// go first). Only a file on a reused inode with the same first line as a
// file forgotten longer ago can get an id back.
const (
	tombKeep = 30 * 24 * time.Hour
	tombMax  = 1024
)

// Store holds the positions in memory and saves them on demand. Its methods
// are safe for concurrent use.
type Store struct {
	dir     string
	mu      sync.Mutex
	entries map[string]*Entry
	tombs   map[string]tomb
	dirty   bool
	existed bool
	// problems found at Open that the store recovered from.
	problems []error
}

type fileFormat struct {
	Version int      `json:"version"`
	Entries []*Entry `json:"entries"`
	Retired []tomb   `json:"retired,omitempty"`
}

// Open loads the positions saved in dir, creating dir if needed, and
// checks that positions can be written there (a probe file is created,
// synced and removed): a state directory that cannot take them is an error
// that names it, so the agent refuses to start rather than re-ship
// everything after its next restart.
//
// A missing file is an empty store. A damaged one (empty, not JSON) is not
// an error: it is moved aside as positions.json.corrupt-<UTC time>, and the
// store starts from what can be recovered, a complete temporary file left
// by a save that a crash interrupted, else nothing. Entries that cannot be
// right (no id, a negative offset, impossible lengths) are dropped. Each
// such problem is reported by Problems, naming the file, for the caller to
// log. Existed is true in both cases: files are then read from their start
// (start_at: end applies only to a very first start), and lines re-sent
// carry the ids they had.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err) // "mkdir /d: …"
	}
	if err := probe(dir); err != nil {
		return nil, fmt.Errorf("state_dir cannot hold positions: %w", err) // the error names the probe file in it
	}
	s := &Store{dir: dir, entries: map[string]*Entry{}, tombs: map[string]tomb{}}
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("positions: %w", err) // "open /d/positions.json: …"
	}
	s.existed = true
	f, err := decode(data)
	if err != nil {
		f = s.recoverDamaged(path, err)
	}
	for _, e := range f.Entries {
		if err := e.valid(); err != nil {
			s.problems = append(s.problems, fmt.Errorf("%s: dropped the position of %s (id %q): %w", path, e.Path, e.ID, err))
			s.dirty = true
			continue
		}
		s.entries[e.ID] = e
	}
	for _, t := range f.Retired {
		if t.Base != "" && t.Gen >= 0 {
			s.tombs[t.Base] = t
		}
	}
	return s, nil
}

func decode(data []byte) (fileFormat, error) {
	var f fileFormat
	if len(data) == 0 {
		return f, errors.New("empty file")
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return fileFormat{}, err
	}
	return f, nil
}

// recoverDamaged moves a damaged positions file aside and returns what a
// temporary file of an interrupted save holds, if one is complete.
func (s *Store) recoverDamaged(path string, cause error) fileFormat {
	s.dirty = true // write a good file at the first save
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(path, aside); err != nil {
		s.problems = append(s.problems, fmt.Errorf("%s is damaged (%v) and could not be moved aside: %w", path, cause, err))
	} else {
		s.problems = append(s.problems, fmt.Errorf("%s is damaged (%v): moved to %s", path, cause, aside))
	}
	tmps, _ := filepath.Glob(filepath.Join(s.dir, "."+FileName+".tmp*"))
	var best fileFormat
	var bestPath string
	var bestMod time.Time
	for _, p := range tmps {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f, err := decode(data)
		if err != nil {
			continue
		}
		if bestPath == "" || fi.ModTime().After(bestMod) {
			best, bestPath, bestMod = f, p, fi.ModTime()
		}
	}
	if bestPath == "" {
		s.problems = append(s.problems, fmt.Errorf("%s: nothing to recover positions from: every file is read from its start again (lines already sent carry the same ids)", s.dir))
		return fileFormat{}
	}
	s.problems = append(s.problems, fmt.Errorf("%s: recovered %d positions from %s, left by an interrupted save", s.dir, len(best.Entries), bestPath))
	return best
}

// probe creates, syncs and removes a file in dir.
func probe(dir string) error {
	f, err := os.CreateTemp(dir, ".probe*")
	if err != nil {
		return err // "open /d/.probe123: read-only file system"
	}
	defer os.Remove(f.Name())
	if _, err := f.Write([]byte("ferry\n")); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Remove(f.Name())
}

// Problems returns what Open found wrong with the saved positions and
// recovered from, each naming the file; nil when all was well.
func (s *Store) Problems() []error { return s.problems }

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

// AdvanceCheck is Advance that also records the check of the n bytes
// before off. It never moves the offset back, and records the check only
// when it moves the offset.
func (s *Store) AdvanceCheck(id string, off int64, check string, n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return false
	}
	if off > e.Offset {
		e.Offset, e.Check, e.CheckLen = off, check, n
		e.Updated = time.Now().UTC()
		s.dirty = true
	}
	return true
}

// Remove forgets id, leaving a tombstone of its generation so that its id
// is not given to another file.
func (s *Store) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return
	}
	delete(s.entries, id)
	s.bury(e.BaseID(), e.Gen)
	s.dirty = true
}

func (s *Store) bury(base string, gen int) {
	if t, ok := s.tombs[base]; ok && t.Gen > gen {
		gen = t.Gen
	}
	s.tombs[base] = tomb{Base: base, Gen: gen, At: time.Now().UTC()}
	if len(s.tombs) > tombMax {
		s.pruneTombs(time.Now())
	}
}

// pruneTombs drops tombstones older than tombKeep, and the oldest ones
// beyond tombMax.
func (s *Store) pruneTombs(now time.Time) {
	var all []tomb
	for b, t := range s.tombs {
		if now.Sub(t.At) > tombKeep {
			delete(s.tombs, b)
			continue
		}
		all = append(all, t)
	}
	if len(all) <= tombMax {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i].At.Before(all[j].At) })
	for _, t := range all[:len(all)-tombMax] {
		delete(s.tombs, t.Base)
	}
}

// Retire marks id as the position of a deleted file: it stays until its
// last lines are acknowledged (Remove), but no file is resumed from it.
func (s *Store) Retire(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[id]; ok && !e.Retired {
		e.Retired = true
		s.dirty = true
	}
}

// NextGen returns the generation for new content under the identity base:
// 0 if base was never used, else one more than any generation of it that
// is saved or was forgotten.
func (s *Store) NextGen(base string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen := -1
	if t, ok := s.tombs[base]; ok {
		gen = t.Gen
	}
	for _, e := range s.entries {
		if e.BaseID() == base || strings.HasPrefix(e.ID, base+".") {
			// (base.<time>: a truncated file's id before generations)
			gen = max(gen, e.Gen)
		}
	}
	return gen + 1
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
	s.pruneTombs(time.Now())
	for _, t := range s.tombs {
		f.Retired = append(f.Retired, t)
	}
	sort.Slice(f.Retired, func(i, j int) bool { return f.Retired[i].Base < f.Retired[j].Base })
	s.dirty = false
	s.mu.Unlock()
	sort.Slice(f.Entries, func(i, j int) bool { return f.Entries[i].ID < f.Entries[j].ID })
	// Compact (jq reads it): saved every second while lines are read, for
	// every file of the node, indenting it cost a third again.
	data, err := json.Marshal(f)
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
