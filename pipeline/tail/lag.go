package tail

import (
	"os"
)

// lagBytes is the agent's file lag: over the files followed now, the bytes
// each holds past its committed (acknowledged) offset. A file's size is
// read by stat of its saved path, counted only while that path still names
// the followed file (a rotated-away file is not stat'ed through its old
// name); of several generations of one file, the newest counts.
func (m *Manager) lagBytes() uint64 {
	m.mu.Lock()
	followed := make(map[devIno]bool, len(m.followers))
	for di := range m.followers {
		followed[di] = true
	}
	m.mu.Unlock()
	newest := map[devIno]int{} // index in entries
	entries := m.store.All()
	for i, e := range entries {
		di := devIno{dev: e.Dev, ino: e.Ino}
		if e.Retired || !followed[di] {
			continue
		}
		if j, ok := newest[di]; !ok || e.Gen > entries[j].Gen {
			newest[di] = i
		}
	}
	var lag uint64
	for di, i := range newest {
		e := entries[i]
		fi, err := os.Stat(e.Path)
		if err != nil {
			continue
		}
		if got, ok := statDevIno(fi); !ok || got != di {
			continue
		}
		lag += uint64(max(fi.Size()-e.Offset, 0))
	}
	return lag
}
