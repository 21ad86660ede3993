package tail

import (
	"errors"
	"io/fs"
)

// noteUnreadable records that the glob match link could not be opened. The
// first time (and again after it was readable) it logs why, once per file,
// and counts it; scans keep trying it.
func (m *Manager) noteUnreadable(link string, err error) {
	if errors.Is(err, errNotRegular) || errors.Is(err, fs.ErrNotExist) {
		return // not a log file, or gone since the glob: nothing to say
	}
	m.mu.Lock()
	_, known := m.unreadable[link]
	m.unreadable[link] = err.Error()
	if !known {
		m.unreadableTotal++
	}
	m.mu.Unlock()
	if !known {
		m.log.Warn("cannot read file, skipping it until it can be read (tried again at every scan)", "path", link, "err", err)
	}
}

// noteReadable records that link could be opened; it logs when the file
// was unreadable before.
func (m *Manager) noteReadable(link string) {
	m.mu.Lock()
	_, was := m.unreadable[link]
	delete(m.unreadable, link)
	m.mu.Unlock()
	if was {
		m.log.Info("file can be read now, following it", "path", link)
	}
}

// forgetUnreadable drops unreadable files the last scan did not match.
func (m *Manager) forgetUnreadable(seen map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for link := range m.unreadable {
		if !seen[link] {
			delete(m.unreadable, link)
		}
	}
}

// Counters returns the manager's metrics: ferry_agent_files_unreadable
// (matched files that cannot be opened, as of the last scan) and
// ferry_agent_files_unreadable_total (files found unreadable, counted once
// each time a file becomes so), ferry_agent_files_tailed (files followed
// now) and ferry_agent_file_lag_bytes (see lagBytes: a stat per followed
// file).
func (m *Manager) Counters() map[string]uint64 {
	lag := m.lagBytes()
	m.mu.Lock()
	defer m.mu.Unlock()
	return map[string]uint64{
		"ferry_agent_files_unreadable":       uint64(len(m.unreadable)),
		"ferry_agent_files_unreadable_total": m.unreadableTotal,
		"ferry_agent_files_tailed":           uint64(len(m.followers)),
		"ferry_agent_file_lag_bytes":         lag,
	}
}
