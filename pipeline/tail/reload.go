package tail

import (
	"errors"
	"fmt"
	"path/filepath"
)

// SetInputs replaces the manager's inputs while it runs (a configuration
// reload); it may be called before Run too. It returns an error, and
// changes nothing, if inputs are not valid (an empty or repeated name, a
// malformed glob pattern).
//
//   - New inputs, paths and excludes take effect at once: a scan runs as
//     soon as Run sees the change, and then every glob interval.
//   - A followed file that no input matches any more (its pattern or its
//     input removed, or now excluded) stops being read. It is not
//     finished: lines read and not yet handed on are dropped, lines handed
//     on are acknowledged as usual, and its saved position stays at the
//     last acknowledged offset, so that a later configuration matching it
//     again resumes it there, under the same identity, without a gap or
//     new ids. Such a file is not read again before every line its stopped
//     follower handed on is acknowledged (it would otherwise be read again
//     from the last acknowledged offset while those lines are still on
//     their way, and sent twice). (At the next start of the agent the
//     saved position of a removed input is forgotten, as always.)
//   - A followed file still matched keeps its follower, which reads on
//     without interruption with the settings (format, max_line_bytes,
//     intervals) it started with; the new settings of an input apply to
//     files found after the change. The input of its own name is preferred;
//     if no input of that name matches it any more but another does (an
//     input renamed, as the default names <type>-<index> are by an input
//     inserted before them), the file is now that input's: the chunks
//     handed on after the change, and its saved position, carry that
//     input's name, dataset and Kubernetes coordinates. Its identity and
//     event ids do not depend on the input.
func (m *Manager) SetInputs(inputs []Input) error {
	names := map[string]bool{}
	for _, in := range inputs {
		if in.Name == "" {
			return errors.New("input without a name")
		}
		if names[in.Name] {
			return fmt.Errorf("input %s: name used twice", in.Name)
		}
		names[in.Name] = true
		for _, p := range append(append([]string(nil), in.Paths...), in.Exclude...) {
			if _, err := filepath.Match(p, ""); err != nil {
				return fmt.Errorf("input %s: pattern %q: %w", in.Name, p, err)
			}
		}
	}
	next := withDefaults(inputs)
	byName := map[string]*Input{}
	for _, in := range next {
		byName[in.Name] = in
	}
	m.mu.Lock()
	m.inputs = next
	type stop struct {
		fl    *follower
		input string
	}
	var stopped []stop
	for _, fl := range m.followers {
		if fl.link == "" {
			continue // a rotated file drained by identity: let it finish
		}
		cur := fl.in
		if fl.next != nil {
			cur = fl.next
		}
		in := byName[cur.Name]
		if in == nil || !matches(in, fl.link) {
			in = nil
			for _, o := range next {
				if matches(o, fl.link) {
					in = o
					break
				}
			}
		}
		if in == nil {
			stopped = append(stopped, stop{fl, cur.Name})
			// Not followed again before its chunks in flight are
			// acknowledged: see Commit.
			m.stopping[fl.di] = &stopMark{fl: fl}
			continue
		}
		if in.Name != cur.Name || in.Container != cur.Container || in.Dataset != cur.Dataset {
			fl.next = in
			fl.switched.Store(true)
			m.log.Info("file now read for another input", "path", fl.link, "was", cur.Name, "input", in.Name)
		}
	}
	m.mu.Unlock()
	for _, s := range stopped {
		m.log.Info("configuration no longer matches the file, stopped reading it; its position is kept",
			"input", s.input, "path", s.fl.link)
		s.fl.stop()
	}
	select {
	case m.reload <- struct{}{}:
	default:
	}
	return nil
}

// matches reports whether a glob match of some input, link, is matched by
// in's patterns and not excluded.
func matches(in *Input, link string) bool {
	if excluded(in, link) {
		return false
	}
	for _, p := range in.Paths {
		if ok, _ := filepath.Match(p, link); ok {
			return true
		}
	}
	return false
}

// watchPatterns watches the directories of the current glob patterns, and
// stops watching those no pattern names any more.
func (m *Manager) watchPatterns() {
	want := map[string]bool{}
	for _, in := range m.currentInputs() {
		for _, p := range in.Paths {
			want[filepath.Dir(p)] = true
		}
	}
	m.mu.Lock()
	old := m.patternDirs
	m.patternDirs = want
	m.mu.Unlock()
	for d := range want {
		if !old[d] {
			m.watch(d, nil)
		}
	}
	for d := range old {
		if !want[d] {
			m.unwatch(d)
		}
	}
}

// stopMark is a file whose follower SetInputs stopped: until the last chunk
// it handed on (of File id, ending at end) is acknowledged, no new follower
// starts on the file.
type stopMark struct {
	fl   *follower
	done bool // fl has returned: id and end are set
	id   string
	end  int64
}

// stopped records that fl, stopped by SetInputs, has returned; the file may
// be followed again at once if all it handed on is acknowledged.
// Called with m.mu held.
func (m *Manager) stoppedLocked(fl *follower) {
	sm := m.stopping[fl.di]
	if sm == nil || sm.fl != fl {
		return
	}
	if fl.file == nil {
		delete(m.stopping, fl.di) // nothing handed on
		return
	}
	sm.done, sm.id, sm.end = true, fl.file.ID, fl.sentEnd
	if e, ok := m.store.Get(sm.id); !ok || e.Offset >= sm.end {
		delete(m.stopping, fl.di)
	}
}

// committedLocked lets a stopped file be followed again once the last chunk
// its follower handed on is acknowledged. It reports whether one was.
// Called with m.mu held.
func (m *Manager) committedLocked(id string, end int64, final bool) bool {
	freed := false
	for di, sm := range m.stopping {
		if sm.done && sm.id == id && (final || end >= sm.end) {
			delete(m.stopping, di)
			freed = true
		}
	}
	return freed
}

// switchInput makes the file the input's that SetInputs gave it, if any:
// the follower keeps its reading settings, and the chunks it hands on from
// now on, and the saved position, carry the new input's name and fields.
// Called by the follower between chunks.
func (fl *follower) switchInput() {
	if !fl.switched.Load() {
		return
	}
	m := fl.m
	m.mu.Lock()
	next := fl.next
	fl.next = nil
	fl.switched.Store(false)
	if next != nil {
		in := *fl.in
		in.Name, in.Container, in.Dataset, in.Paths, in.Exclude = next.Name, next.Container, next.Dataset, next.Paths, next.Exclude
		fl.in = &in
	}
	m.mu.Unlock()
	if next == nil {
		return
	}
	fl.log = m.log.With("input", fl.in.Name)
	if fl.file == nil {
		return // start names the position after the input in effect
	}
	old := fl.file
	f := m.newFile(fl.in, old.ID, old.Path, old.Link)
	f.checks = old.checks // the chunk ends still to commit
	fl.file = f
	m.renamePosition(old.ID, fl.in.Name)
}
