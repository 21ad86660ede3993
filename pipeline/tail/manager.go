package tail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	"github.com/ferrylogs/ferry/pipeline/event"
	"github.com/ferrylogs/ferry/pipeline/parse"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Manager discovers files for its inputs and runs one follower per file.
type Manager struct {
	inputs     []*Input
	store      *checkpoint.Store
	log        *slog.Logger
	out        chan *Chunk
	permits    chan struct{}
	firstStart bool

	mu        sync.Mutex
	followers map[devIno]*follower
	byPath    map[string]*follower
	watched   map[string]int
	// recovering holds the positions owned by drains of files rotated
	// while the agent was down.
	recovering map[string]bool
	watcher    *fsnotify.Watcher
	wg         sync.WaitGroup
}

// maxChunks bounds the chunks alive at once (read, not yet shipped).
const maxChunks = 64

// NewManager returns a manager for inputs that resumes from store. Chunks
// come out of Chunks(); their file offsets advance only through Commit.
func NewManager(inputs []Input, store *checkpoint.Store, log *slog.Logger) *Manager {
	m := &Manager{
		store:      store,
		log:        log,
		out:        make(chan *Chunk, 32),
		permits:    make(chan struct{}, maxChunks),
		firstStart: !store.Existed(),
		followers:  map[devIno]*follower{},
		byPath:     map[string]*follower{},
		watched:    map[string]int{},
		recovering: map[string]bool{},
	}
	for i := range inputs {
		in := inputs[i]
		if in.MaxLineBytes <= 0 {
			in.MaxLineBytes = 256 << 10
		}
		if in.PollInterval <= 0 {
			in.PollInterval = 250 * time.Millisecond
		}
		if in.GlobInterval <= 0 {
			in.GlobInterval = time.Second
		}
		m.inputs = append(m.inputs, &in)
	}
	return m
}

// Chunks is where parsed events come out, file by file in order.
func (m *Manager) Chunks() <-chan *Chunk { return m.out }

// Commit records that every event of f before end has been acknowledged.
// final says f is finished, so its position is forgotten.
func (m *Manager) Commit(f *File, end int64, final bool) {
	if final {
		m.store.Remove(f.ID)
		return
	}
	m.store.Advance(f.ID, end)
}

// Run discovers files until ctx ends, then waits for every follower to stop.
// It never closes the Chunks channel.
func (m *Manager) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		m.log.Warn("file notifications unavailable, polling only", "err", err)
	} else {
		m.watcher = w
		defer w.Close()
	}
	m.recover(ctx)
	m.scan(ctx, true)
	interval := time.Hour
	for _, in := range m.inputs {
		interval = min(interval, in.GlobInterval)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if m.watcher != nil {
		events, errs = m.watcher.Events, m.watcher.Errors
	}
	for {
		select {
		case <-ctx.Done():
			m.wg.Wait()
			return nil
		case <-ticker.C:
			m.scan(ctx, false)
		case ev := <-events:
			if ev.Has(fsnotify.Create) {
				m.scan(ctx, false)
			}
			if ev.Has(fsnotify.Write) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				m.wakePath(ev.Name)
			}
		case err := <-errs:
			m.log.Warn("file notification error", "err", err)
		}
	}
}

func (m *Manager) wakePath(path string) {
	m.mu.Lock()
	fl := m.byPath[path]
	m.mu.Unlock()
	if fl != nil {
		select {
		case fl.wake <- struct{}{}:
		default:
		}
	}
}

// scan globs every input and starts followers for files not yet followed.
func (m *Manager) scan(ctx context.Context, first bool) {
	for _, in := range m.inputs {
		for _, pattern := range in.Paths {
			matches, err := filepath.Glob(pattern)
			if err != nil {
				m.log.Error("bad glob", "input", in.Name, "pattern", pattern, "err", err)
				continue
			}
			if first {
				m.watch(filepath.Dir(pattern))
			}
			for _, link := range matches {
				if excluded(in, link) {
					continue
				}
				m.maybeFollow(ctx, in, link)
			}
		}
	}
}

func excluded(in *Input, path string) bool {
	for _, ex := range in.Exclude {
		if ok, _ := filepath.Match(ex, path); ok {
			return true
		}
		if ok, _ := filepath.Match(ex, filepath.Base(path)); ok {
			return true
		}
	}
	return false
}

func (m *Manager) maybeFollow(ctx context.Context, in *Input, link string) {
	fi, err := os.Stat(link)
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	di, ok := statDevIno(fi)
	if !ok {
		return
	}
	m.mu.Lock()
	_, busy := m.followers[di]
	m.mu.Unlock()
	if busy {
		return
	}
	real, err := filepath.EvalSymlinks(link)
	if err != nil {
		return
	}
	m.startFollower(ctx, &follower{in: in, link: link, path: real, di: di})
}

func (m *Manager) startFollower(ctx context.Context, fl *follower) {
	fl.m = m
	fl.wake = make(chan struct{}, 1)
	fl.log = m.log.With("input", fl.in.Name)
	m.mu.Lock()
	if _, busy := m.followers[fl.di]; busy {
		m.mu.Unlock()
		return
	}
	m.followers[fl.di] = fl
	m.byPath[fl.path] = fl
	m.mu.Unlock()
	m.watch(filepath.Dir(fl.path))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fl.run(ctx)
		m.mu.Lock()
		delete(m.followers, fl.di)
		if m.byPath[fl.path] == fl {
			delete(m.byPath, fl.path)
		}
		m.mu.Unlock()
		m.unwatch(filepath.Dir(fl.path))
	}()
}

func (m *Manager) watch(dir string) {
	if m.watcher == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watched[dir] == 0 {
		if err := m.watcher.Add(dir); err != nil {
			m.log.Debug("cannot watch directory, polling it", "dir", dir, "err", err)
		}
	}
	m.watched[dir]++
}

func (m *Manager) unwatch(dir string) {
	if m.watcher == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watched[dir]--
	if m.watched[dir] <= 0 {
		delete(m.watched, dir)
		_ = m.watcher.Remove(dir)
	}
}

// recover runs before the first scan. For every saved position whose file
// is no longer where it was with the same content, it looks in the file's
// last directory for the file renamed (same device, inode and fingerprint)
// or copied by copytruncate (same fingerprint, at least the saved offset
// long) while the agent was down, and reads the rest of it. Positions whose
// file is gone for good are forgotten.
func (m *Manager) recover(ctx context.Context) {
	inputs := map[string]*Input{}
	for _, in := range m.inputs {
		inputs[in.Name] = in
	}
	for _, e := range m.store.All() {
		in := inputs[e.Input]
		if in == nil {
			m.log.Info("forgetting position of a removed input", "input", e.Input, "path", e.Path)
			m.store.Remove(e.ID)
			continue
		}
		if fi, err := os.Stat(e.Path); err == nil {
			if di, _ := statDevIno(fi); di.dev == e.Dev && di.ino == e.Ino && matchesFingerprint(e.Path, e) {
				continue // still in place: its follower resumes it
			}
		}
		dir := filepath.Dir(e.Path)
		path := m.findByIdentity(dir, e)
		if path == "" {
			path = m.findByFingerprint(dir, e, devIno{e.Dev, e.Ino})
		}
		if path == "" {
			m.log.Info("file with a saved position is gone", "path", e.Path, "id", e.ID)
			m.store.Remove(e.ID)
			continue
		}
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		di, _ := statDevIno(fi)
		e := e
		m.mu.Lock()
		m.recovering[e.ID] = true
		m.mu.Unlock()
		m.log.Info("draining a file rotated while the agent was down", "path", path, "was", e.Path, "offset", e.Offset)
		m.startFollower(ctx, &follower{in: in, path: path, di: di, drainOnly: true, resume: &e})
	}
}

// isRecovering reports whether a drain of a rotated file owns position id.
func (m *Manager) isRecovering(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recovering[id]
}

// findByIdentity returns the file in dir with the entry's device, inode and
// fingerprint, or, failing that, with its fingerprint and at least its
// offset in size (a copytruncate copy).
func (m *Manager) findByIdentity(dir string, e checkpoint.Entry) string {
	names, _ := readDirSorted(dir)
	for _, name := range names {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if di, _ := statDevIno(fi); di.dev == e.Dev && di.ino == e.Ino && matchesFingerprint(p, e) {
			return p
		}
	}
	return ""
}

// findByFingerprint returns a file in dir, other than the one at not, that
// starts with the entry's fingerprint and is at least as long as its
// saved offset: the copy made by copytruncate.
func (m *Manager) findByFingerprint(dir string, e checkpoint.Entry, not devIno) string {
	if e.FingerprintLen == 0 {
		return ""
	}
	names, _ := readDirSorted(dir)
	for _, name := range names {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() < e.Offset {
			continue
		}
		if di, _ := statDevIno(fi); di == not {
			continue
		}
		if matchesFingerprint(p, e) {
			return p
		}
	}
	return ""
}

func matchesFingerprint(path string, e checkpoint.Entry) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	h, ok := fingerprintLen(f, e.FingerprintLen)
	return ok && h == e.Fingerprint
}

func readDirSorted(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read dir %s: %w", dir, err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// newFile builds the File handed out with chunks.
func (m *Manager) newFile(in *Input, id, path, link string) *File {
	f := &File{ID: id, Path: path, Link: link, Input: in.Name}
	if in.Container {
		f.Kube = kubeFromPath(link, path)
	}
	if in.Dataset != "" {
		f.Fields = map[string]*ferryv1.Value{"data_stream.dataset": event.Str(in.Dataset)}
	}
	return f
}

// ErrBadFormat is returned for an unknown format name.
var ErrBadFormat = errors.New("unknown format")

// FormatOf maps a config format name to a parser format.
func FormatOf(name string) (parse.Format, error) {
	if name == "" {
		return parse.FormatAuto, nil
	}
	f, err := parse.ParseFormat(name)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrBadFormat, name, err)
	}
	return f, nil
}
