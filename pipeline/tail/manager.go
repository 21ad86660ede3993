package tail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ferrylogs/ferry/pipeline/budget"
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
	budget     *budget.Budget
	firstStart bool

	mu        sync.Mutex
	followers map[devIno]*follower
	byPath    map[string]*follower
	watched   map[string]int
	unwatched map[string]bool // watched directories whose watch failed
	notes     notifier        // nil: polling only
	// newNotifier makes notes: the platform's (newNotifier); tests set
	// another before Run to run the manager on fsnotify's.
	newNotifier func() (notifier, error)
	wg          sync.WaitGroup
	// matched holds the files the last complete scan matched, and
	// scanStart when that scan began.
	matched   map[devIno]struct{}
	scanStart time.Time
	// patternDirs are the directories of the glob patterns, watched for
	// new files; reload is signalled by SetInputs.
	patternDirs map[string]bool
	reload      chan struct{}
	// unreadable holds the glob matches that could not be opened, with
	// why, as of the last scan; unreadableTotal counts files that became
	// unreadable.
	unreadable      map[string]string
	unreadableTotal uint64
	// stopping holds the files whose follower SetInputs stopped while
	// chunks it handed on may still wait for their acks.
	stopping map[devIno]*stopMark
	// notifyWakes counts the wakes by the notifier, windows the windows
	// ended (tests).
	notifyWakes, windows atomic.Int64
	// notesFailed: notifications stopped (reading them failed).
	notesFailed atomic.Bool
	// polling is pollParked's list of followers (Run's goroutine only).
	polling []*follower
	// posMu orders Commit and renamePosition, which replaces an entry.
	posMu sync.Mutex
}

// DefaultBudget is the read-ahead budget of a Manager given none.
const DefaultBudget = 32 << 20

// NewManager returns a manager for inputs that resumes from store. Chunks
// come out of Chunks(); their file offsets advance only through Commit.
// Lines read and not yet released by the shipper are held to b (nil: a
// budget of DefaultBudget); followers pause reading while it is used up.
// Every chunk counts its arena and the read buffer of its follower; a line
// longer than a chunk makes its arena grow, and the growth is counted even
// past the limit (the memory is in use); no chunk starts while the budget
// is overdrawn, so at worst each chunk in flight holds one max_line_bytes
// line beyond the budget.
func NewManager(inputs []Input, store *checkpoint.Store, b *budget.Budget, log *slog.Logger) *Manager {
	if b == nil {
		b = budget.New(DefaultBudget)
	}
	m := &Manager{
		store:       store,
		log:         log,
		out:         make(chan *Chunk, 16),
		budget:      b,
		firstStart:  !store.Existed(),
		followers:   map[devIno]*follower{},
		byPath:      map[string]*follower{},
		watched:     map[string]int{},
		unwatched:   map[string]bool{},
		reload:      make(chan struct{}, 1),
		unreadable:  map[string]string{},
		stopping:    map[devIno]*stopMark{},
		newNotifier: newNotifier,
	}
	m.inputs = withDefaults(inputs)
	return m
}

// withDefaults returns copies of inputs with unset settings defaulted.
func withDefaults(inputs []Input) []*Input {
	out := make([]*Input, 0, len(inputs))
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
		if in.PartialFlushAfter <= 0 {
			in.PartialFlushAfter = 5 * time.Second
		}
		out = append(out, &in)
	}
	return out
}

// currentInputs returns the inputs in effect.
func (m *Manager) currentInputs() []*Input {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inputs
}

// globInterval is the shortest glob interval of the inputs.
func globInterval(inputs []*Input) time.Duration {
	interval := time.Hour
	for _, in := range inputs {
		interval = min(interval, in.GlobInterval)
	}
	return interval
}

// nextGlob returns the interval until the periodic glob after one that
// ran every `every` (0: none yet) and started a follower or not. Where
// notifications cover the directory of every pattern, a new file wakes a
// glob at once (opCreate) and the periodic one is only a safety net: it
// backs off while it finds nothing, doubling up to globMax, since each
// looks at every matched file (a stat of each: a thousand files every
// second cost an idle agent more than all its other work). Otherwise, or
// once a glob found a file, it runs at the inputs' glob interval.
func (m *Manager) nextGlob(every time.Duration, found bool) time.Duration {
	base := globInterval(m.currentInputs())
	if found || every < base || !m.globsNotified() {
		return base
	}
	return min(2*every, globMax(base))
}

// globMax is the longest interval between periodic globs backed off from
// base: the largest of base, 2×base, 4×base and 8×base that is at most
// 8 s (base itself if longer). A power-of-two multiple of base, its globs
// fall on the base's ticks (see untilPoll).
func globMax(base time.Duration) time.Duration {
	m := base
	for i := 0; i < 3 && 2*m <= 8*time.Second; i++ {
		m *= 2
	}
	return m
}

// rewatch tries again to watch the directories that could not be watched
// or whose watch ended (see dirGone), such as a glob pattern's directory
// created after the agent started (a node's /var/log/containers before the
// kubelet made it) or deleted and created again: from then on its new
// files are announced instead of waiting for a glob, and its files' writes
// wake their followers.
func (m *Manager) rewatch() {
	if m.notes == nil || m.notesFailed.Load() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := range m.unwatched {
		if m.watched[d] == 0 || strings.ContainsAny(d, `*?[\`) {
			continue
		}
		if err := m.notes.add(d); err == nil {
			delete(m.unwatched, d)
			m.setNotified(d, true)
			m.log.Debug("watching directory", "dir", d)
		}
	}
}

// globsNotified reports whether notifications work and cover the
// directory of every glob pattern (one without wildcards, watched).
func (m *Manager) globsNotified() bool {
	if m.notes == nil || m.notesFailed.Load() {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.patternDirs) == 0 {
		return false
	}
	for d := range m.patternDirs {
		if strings.ContainsAny(d, `*?[\`) || m.watched[d] == 0 || m.unwatched[d] {
			return false
		}
	}
	return true
}

// Chunks is where parsed events come out, file by file in order.
func (m *Manager) Chunks() <-chan *Chunk { return m.out }

// Commit records that every event of f before end has been acknowledged,
// with the check of the bytes before end taken when they were read. final
// says f is finished, so its position is forgotten.
func (m *Manager) Commit(f *File, end int64, final bool) {
	m.posMu.Lock()
	if final {
		m.store.Remove(f.ID)
	} else {
		mk, _ := f.checks.take(end) // none: saved without a check
		m.store.AdvanceCheck(f.ID, end, mk.sum, mk.n)
	}
	m.posMu.Unlock()
	m.mu.Lock()
	freed := len(m.stopping) > 0 && m.committedLocked(f.ID, end, final)
	m.mu.Unlock()
	if freed {
		select { // scan now: the file may be followed again
		case m.reload <- struct{}{}:
		default:
		}
	}
}

// renamePosition records that the saved position id is now input's.
func (m *Manager) renamePosition(id, input string) {
	m.posMu.Lock()
	defer m.posMu.Unlock()
	if e, ok := m.store.Get(id); ok && e.Input != input {
		e.Input = input
		m.store.Put(e)
	}
}

// Run discovers files until ctx ends, then waits for every follower to stop.
// It never closes the Chunks channel.
func (m *Manager) Run(ctx context.Context) error {
	if n, err := m.newNotifier(); err != nil {
		m.log.Warn("file notifications unavailable, polling only", "err", err)
	} else {
		m.notes = n
		defer n.close()
	}
	found := m.scan(true)
	m.recover(ctx, found)
	for _, fl := range found {
		m.startFollower(ctx, fl)
	}
	// Globs fall on multiples of the glob interval, as polls on multiples
	// of the poll interval (see untilPoll): the two often wake the agent
	// once.
	glob := time.NewTimer(untilPoll(time.Now(), globInterval(m.currentInputs())))
	defer glob.Stop()
	poll := time.NewTimer(m.pollParked(time.Now()))
	defer poll.Stop()
	win := newWindow(m.currentInputs(), m.notes != nil)
	defer win.timer.Stop()
	var ready <-chan struct{}
	if m.notes != nil {
		ready = m.notes.ready()
	}
	rescan := func() int {
		found := m.scan(false)
		for _, fl := range found {
			m.startFollower(ctx, fl)
		}
		return len(found)
	}
	globEvery := time.Duration(0) // the interval of the periodic globs (see nextGlob)
	taken := 0                    // notices handled by the last take
	// created: a notice of the last take created a file. One glob after
	// the take looks for all of them: a glob per created file would stat
	// every matched file each time (a thousand pods starting at once: a
	// million stats). A write to a new file in the same take finds no
	// follower yet; the follower the glob starts reads the file from its
	// start anyway.
	created := false
	handle := func(n notice) {
		taken++
		if n.has(opOverflow) {
			// Notifications were lost: look at every file.
			m.log.Debug("file notifications overflowed, looking at every file")
			m.wakeAll()
			rescan()
			return
		}
		if n.has(opGone) {
			// A watched directory went away: what is created under its
			// name again is only found by globs, at their interval,
			// until the next one watches it again (rewatch).
			if m.dirGone(n.name) {
				m.log.Debug("watched directory gone, globbing and polling it until it is back", "dir", n.name)
				globEvery = 0
				glob.Reset(untilPoll(time.Now(), globInterval(m.currentInputs())))
			}
			return
		}
		if n.has(opCreate) {
			created = true
		}
		switch {
		case n.has(opRemove) || n.has(opRename):
			if fl, _ := m.followerAt(n.name); fl != nil {
				fl.lookGone.Store(true)
				fl.wakeUp()
			}
		case n.has(opWrite):
			if fl, delay := m.followerAt(n.name); delay > 0 {
				win.add(fl)
			} else if fl != nil {
				fl.wakeUp()
			}
		}
	}
	take := func() int {
		taken, created = 0, false
		err := m.notes.take(handle)
		if created {
			rescan()
		}
		if err != nil {
			m.log.Warn("file notifications failed, polling only", "err", err)
			ready = nil
			m.notesFailed.Store(true)
		}
		return taken
	}
	for {
		rdy := ready
		if win.holding() {
			rdy = nil // held in the kernel until the window ends
		}
		select {
		case <-ctx.Done():
			m.wg.Wait()
			return nil
		case <-glob.C:
			m.rewatch()
			started := rescan()
			globEvery = m.nextGlob(globEvery, started > 0)
			glob.Reset(untilPoll(time.Now(), globEvery))
		case <-poll.C:
			poll.Reset(m.pollParked(time.Now()))
		case <-m.reload:
			m.watchPatterns()
			globEvery = 0
			glob.Reset(untilPoll(time.Now(), globInterval(m.currentInputs())))
			poll.Reset(m.pollParked(time.Now()))
			win.configure(m.currentInputs(), m.notes != nil)
			rescan()
		case <-rdy:
			m.notifyWakes.Add(1)
			take()
			if ready != nil && !win.holding() {
				m.notes.arm()
			}
		case <-win.timer.C:
			held := win.holding() && ready != nil
			got := 0
			if held {
				got = take() // what was held while it was open
			}
			win.fire()
			m.windows.Add(1)
			switch {
			case held && got > 0:
				// Files are being written: the next window follows at
				// once, so that its first write does not wake the
				// agent either. One that takes nothing ends the run.
				win.reopen()
			case ready != nil:
				m.notes.arm()
			}
		}
	}
}

// pollParked polls the parked followers that are due at now (see
// follower.pollParked) and returns how long to wait for the next poll: the
// next multiple of the shortest poll interval of the inputs, or earlier
// when a parked follower (of an input since changed) is due before.
func (m *Manager) pollParked(now time.Time) time.Duration {
	m.mu.Lock()
	m.polling = m.polling[:0]
	for _, fl := range m.followers {
		m.polling = append(m.polling, fl)
	}
	wait := time.Duration(-1)
	for _, in := range m.inputs {
		if d := untilPoll(now, in.PollInterval); wait < 0 || d < wait {
			wait = d
		}
	}
	m.mu.Unlock()
	for i, fl := range m.polling {
		if next := fl.pollParked(now); !next.IsZero() && (wait < 0 || next.Sub(now) < wait) {
			wait = next.Sub(now)
		}
		m.polling[i] = nil
	}
	if wait < 0 {
		wait = time.Hour // no input: SetInputs resets it
	}
	return max(wait, time.Millisecond)
}

// followerAt returns the follower of the file at path, if any, and the
// read delay of its input.
func (m *Manager) followerAt(path string) (*follower, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fl := m.byPath[path]
	if fl == nil {
		return nil, 0
	}
	return fl, fl.in.ReadDelay
}

// wakeAll wakes every follower.
func (m *Manager) wakeAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, fl := range m.followers {
		fl.lookGone.Store(true)
		fl.wakeUp()
	}
}

// wakeUp makes the follower look at its file (a wake already pending
// covers this one).
func (fl *follower) wakeUp() {
	select {
	case fl.wake <- struct{}{}:
	default:
	}
}

// scan globs every input and returns a follower, its file open, for every
// matched file not followed yet (one per device and inode). It records
// which files it matched, followed or not.
func (m *Manager) scan(first bool) []*follower {
	start := time.Now()
	matched := map[devIno]struct{}{}
	seen := map[string]bool{}
	var found []*follower
	if first {
		m.watchPatterns()
	}
	for _, in := range m.currentInputs() {
		for _, pattern := range in.Paths {
			matches, err := filepath.Glob(pattern)
			if err != nil {
				m.log.Error("bad glob", "input", in.Name, "pattern", pattern, "err", err)
				continue
			}
			for _, link := range matches {
				if excluded(in, link) {
					continue
				}
				seen[link] = true
				if fl := m.candidate(in, link, first, matched); fl != nil {
					found = append(found, fl)
				}
			}
		}
	}
	m.mu.Lock()
	m.matched, m.scanStart = matched, start
	m.mu.Unlock()
	m.forgetUnreadable(seen)
	return found
}

// matchedSince reports whether the last complete scan matched the file;
// known is false when that scan began before t.
func (m *Manager) matchedSince(di devIno, t time.Time) (matched, known bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.scanStart.Before(t) {
		return false, false
	}
	_, matched = m.matched[di]
	return matched, true
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

// candidate returns a follower, its file open, for a glob match that is
// neither followed nor in matched yet; it adds the file to matched.
func (m *Manager) candidate(in *Input, link string, first bool, matched map[devIno]struct{}) *follower {
	fi, err := os.Stat(link)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	di, ok := statDevIno(fi)
	if !ok {
		return nil
	}
	if _, dup := matched[di]; dup {
		return nil
	}
	matched[di] = struct{}{}
	m.mu.Lock()
	_, busy := m.followers[di]
	_, stopping := m.stopping[di]
	m.mu.Unlock()
	if busy || stopping {
		return nil
	}
	real, err := filepath.EvalSymlinks(link)
	if err != nil {
		return nil
	}
	f, ofi, err := openRegular(real)
	if err != nil {
		m.noteUnreadable(link, err)
		return nil
	}
	m.noteReadable(link)
	if odi, _ := statDevIno(ofi); odi != di {
		// Replaced between the stat and the open: the next scan sees
		// what the name holds then.
		f.Close()
		return nil
	}
	fl := &follower{in: in, link: link, path: real, di: di, f: f}
	if first && in.StartAtEnd && m.firstStart {
		fl.startAtEnd, fl.endAt = true, ofi.Size()
	}
	return fl
}

// openFile opens a file for reading (a test may make it fail).
var openFile = os.Open

func openRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, errNotRegular)
	}
	return f, fi, nil
}

var errNotRegular = errors.New("not a regular file")

// startFollower runs fl, whose file is open, unless the file is followed
// already.
func (m *Manager) startFollower(ctx context.Context, fl *follower) {
	fl.m = m
	fl.wake = make(chan struct{}, 1)
	fl.log = m.log.With("input", fl.in.Name)
	m.mu.Lock()
	_, busy := m.followers[fl.di]
	_, stopping := m.stopping[fl.di]
	if busy || stopping {
		m.mu.Unlock()
		fl.f.Close()
		return
	}
	fctx, cancel := context.WithCancel(ctx)
	fl.stop = cancel
	m.followers[fl.di] = fl
	m.byPath[fl.path] = fl
	m.mu.Unlock()
	m.watch(filepath.Dir(fl.path), fl)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		fl.run(fctx)
		m.mu.Lock()
		delete(m.followers, fl.di)
		if m.byPath[fl.path] == fl {
			delete(m.byPath, fl.path)
		}
		m.stoppedLocked(fl)
		m.mu.Unlock()
		m.unwatch(filepath.Dir(fl.path))
	}()
}

// watch watches dir (counted: see unwatch) for fl (nil: for a glob
// pattern) and records in fl whether notifications come for it.
func (m *Manager) watch(dir string, fl *follower) {
	if m.notes == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watched[dir] == 0 {
		if err := m.notes.add(dir); err != nil {
			m.log.Debug("cannot watch directory, polling it", "dir", dir, "err", err)
			m.unwatched[dir] = true
		}
	}
	m.watched[dir]++
	if fl != nil {
		fl.notified.Store(!m.unwatched[dir])
	}
}

// dirGone records that the watch of dir ended with the directory (deleted
// or moved away): its files are polled at their poll interval and its
// glob patterns globbed at theirs until rewatch watches it again (a
// directory created anew under the same name). It reports whether dir was
// watched.
func (m *Manager) dirGone(dir string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watched[dir] == 0 {
		return false
	}
	m.unwatched[dir] = true
	m.setNotified(dir, false)
	return true
}

// setNotified records in the followers of the files in dir whether
// notifications come for it. Called with mu held.
func (m *Manager) setNotified(dir string, on bool) {
	for _, fl := range m.followers {
		if filepath.Dir(fl.path) == dir {
			fl.notified.Store(on)
		}
	}
}

func (m *Manager) unwatch(dir string) {
	if m.notes == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watched[dir]--
	if m.watched[dir] <= 0 {
		delete(m.watched, dir)
		delete(m.unwatched, dir)
		_ = m.notes.remove(dir)
	}
}

// recover settles every saved position before any follower starts; found
// are the files the first scan matched, open but not followed yet.
//   - A retired position (its file was deleted) is forgotten.
//   - The file of the position is matched, still starts with its
//     fingerprint and holds the bytes before the offset that were read
//     (the check): its follower resumes it (and, should the file now be
//     shorter than the offset, reads the rest from a copytruncate copy, or
//     else reads the file again as new content).
//   - It is matched but starts otherwise, or the check fails: the file was
//     truncated or rewritten while the agent was down, and the copy
//     copytruncate left beside it (same fingerprint, at least the offset
//     long, same check) is read from the offset; with no copy the content
//     is new (rewritten, or a reused inode) and the position is dropped.
//   - It is not matched: renamed away while the agent was down (or its
//     link is gone). The file is found by device, inode and fingerprint in
//     its last directory and read to its end. Positions whose file is gone
//     are forgotten.
//
// Positions are moved in the store here, before any follower looks for the
// positions of its inode.
func (m *Manager) recover(ctx context.Context, found []*follower) {
	inputs := map[string]*Input{}
	for _, in := range m.currentInputs() {
		inputs[in.Name] = in
	}
	byDI := map[devIno]*follower{}
	for _, fl := range found {
		byDI[fl.di] = fl
	}
	for _, e := range m.store.All() {
		in := inputs[e.Input]
		if in == nil {
			m.log.Info("forgetting position of a removed input", "input", e.Input, "path", e.Path)
			m.store.Remove(e.ID)
			continue
		}
		if e.Retired {
			m.log.Info("forgetting the position of a deleted file", "path", e.Path, "id", e.ID)
			m.store.Remove(e.ID)
			continue
		}
		di := devIno{e.Dev, e.Ino}
		dir := filepath.Dir(e.Path)
		if fl := byDI[di]; fl != nil {
			if matchesEntry(fl.f, e) {
				continue // its follower resumes it
			}
			cp, f, cdi := m.openCopy(dir, e, di)
			if f == nil {
				m.log.Info("file rewritten or inode reused while the agent was down: its old position is forgotten, it is read as new content",
					"path", fl.path, "old_id", e.ID, "old_offset", e.Offset)
				m.store.Remove(e.ID)
				continue
			}
			m.log.Info("file truncated while the agent was down, reading the rest from its copy", "path", e.Path, "copy", cp, "offset", e.Offset)
			e.Dev, e.Ino, e.Path = cdi.dev, cdi.ino, cp
			m.store.Put(e)
			if cf := byDI[cdi]; cf != nil {
				// The copy is matched too: its follower resumes there.
				f.Close()
				cf.resume = &e
				continue
			}
			m.startFollower(ctx, &follower{in: in, path: cp, di: cdi, f: f, drainOnly: true, resume: &e})
			continue
		}
		path, f := m.openByIdentity(dir, e)
		if f == nil {
			m.log.Info("file with a saved position is gone", "path", e.Path, "id", e.ID)
			m.store.Remove(e.ID)
			continue
		}
		m.log.Info("draining a file rotated while the agent was down", "path", path, "was", e.Path, "offset", e.Offset)
		m.startFollower(ctx, &follower{in: in, path: path, di: di, f: f, drainOnly: true, resume: &e})
	}
}

// openByIdentity opens the file in dir with the entry's device, inode and
// fingerprint.
func (m *Manager) openByIdentity(dir string, e checkpoint.Entry) (string, *os.File) {
	want := devIno{e.Dev, e.Ino}
	// Where it was last seen first: the common case after a restart.
	if f := openMatching(e.Path, e, want); f != nil {
		return e.Path, f
	}
	names, _ := readDirSorted(dir)
	for _, name := range names {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if di, _ := statDevIno(fi); di != want {
			continue
		}
		if f := openMatching(p, e, want); f != nil {
			return p, f
		}
	}
	return "", nil
}

// openCopy opens the copy of the entry's file that copytruncate left in
// dir: another file that starts with its fingerprint and is at least as
// long as its offset.
func (m *Manager) openCopy(dir string, e checkpoint.Entry, not devIno) (string, *os.File, devIno) {
	p := m.findByFingerprint(dir, e, not)
	if p == "" {
		return "", nil, devIno{}
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", nil, devIno{}
	}
	di, _ := statDevIno(fi)
	if f := openMatching(p, e, di); f != nil {
		return p, f, di
	}
	return "", nil, devIno{}
}

// openMatching opens path if it is the file di and matches the entry.
func openMatching(path string, e checkpoint.Entry, di devIno) *os.File {
	f, fi, err := openRegular(path)
	if err != nil {
		return nil
	}
	got, _ := statDevIno(fi)
	if got != di || !matchesEntry(f, e) {
		f.Close()
		return nil
	}
	return f
}

// matchesEntry reports whether f may be the file of the entry: it starts
// with the entry's fingerprint and, if it is at least as long as the
// offset, holds the bytes before the offset that were read there. (A file
// shorter than the offset was truncated: the follower decides.)
func matchesEntry(f *os.File, e checkpoint.Entry) bool {
	if h, ok := fingerprintLen(f, e.FingerprintLen); !ok || h != e.Fingerprint {
		return false
	}
	if size, _, err := fileSize(f); err != nil || size < e.Offset {
		return err == nil
	}
	return entryMark(e).holds(f)
}

// entryMark is the mark saved with an entry's offset.
func entryMark(e checkpoint.Entry) mark {
	return mark{end: e.Offset, sum: e.Check, n: e.CheckLen}
}

// findByFingerprint returns a file in dir, other than the one at not, that
// starts with the entry's fingerprint, is at least as long as its saved
// offset and holds the bytes read before it: the copy made by copytruncate. If several match (earlier
// generations that began with the same line), the last modified wins.
func (m *Manager) findByFingerprint(dir string, e checkpoint.Entry, not devIno) string {
	if e.FingerprintLen == 0 {
		return ""
	}
	names, _ := readDirSorted(dir)
	var best string
	var bestMod time.Time
	for _, name := range names {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() < e.Offset {
			continue
		}
		if di, _ := statDevIno(fi); di == not {
			continue
		}
		if (best == "" || fi.ModTime().After(bestMod)) && matchesFingerprint(p, e) {
			best, bestMod = p, fi.ModTime()
		}
	}
	return best
}

func matchesFingerprint(path string, e checkpoint.Entry) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return matchesEntry(f, e)
}

func readDirSorted(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err // "open /d: …" names the directory
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
	f := &File{ID: id, Path: path, Link: link, Input: in.Name, checks: &endChecks{}}
	if !utf8.ValidString(path) {
		f.SentPath = strings.ToValidUTF8(path, "\uFFFD")
	}
	if in.Container {
		f.Kube = kubeFromPath(link, path)
	}
	f.Fields = InputFields(in.Dataset, in.Environment)
	return f
}

// InputFields returns the fields an input sends with every event: dataset
// as data_stream.dataset, environment as service.environment and
// data_stream.namespace; nil when both are empty.
func InputFields(dataset, environment string) map[string]*ferryv1.Value {
	if dataset == "" && environment == "" {
		return nil
	}
	fs := make(map[string]*ferryv1.Value, 3)
	if dataset != "" {
		fs["data_stream.dataset"] = event.Str(dataset)
	}
	if environment != "" {
		fs["service.environment"] = event.Str(environment)
		fs["data_stream.namespace"] = event.Str(environment)
	}
	return fs
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
