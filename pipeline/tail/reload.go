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
//   - A followed file that no input of the same name matches any more
//     (its pattern or its input removed, or now excluded) stops being
//     read. It is not finished: lines read and not yet handed on are
//     dropped, lines handed on are acknowledged as usual, and its saved
//     position stays at the last acknowledged offset, so that a later
//     configuration matching it again resumes it there, under the same
//     identity, without a gap or new ids. (At the next start of the agent
//     the saved position of a removed input is forgotten, as always.)
//   - A followed file still matched by its input keeps its follower, which
//     reads on without interruption with the settings (format,
//     max_line_bytes, intervals) it started with; the new settings of an
//     input apply to files found after the change.
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
	var stopped []*follower
	for _, fl := range m.followers {
		if fl.link == "" {
			continue // a rotated file drained by identity: let it finish
		}
		if in := byName[fl.in.Name]; in != nil && matches(in, fl.link) {
			continue
		}
		stopped = append(stopped, fl)
	}
	m.mu.Unlock()
	for _, fl := range stopped {
		m.log.Info("configuration no longer matches the file, stopped reading it; its position is kept",
			"input", fl.in.Name, "path", fl.link)
		fl.stop()
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
			m.watch(d)
		}
	}
	for d := range old {
		if !want[d] {
			m.unwatch(d)
		}
	}
}
