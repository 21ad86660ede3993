package tail

import (
	"errors"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// fsnotifier is the notifier where there is no inotify (newNotifier in
// notify_other.go): fsnotify's events, collected as they come (nothing
// waits in the kernel: every notice wakes the agent). It builds on Linux
// too, where the tests run it beside the inotify notifier.
type fsnotifier struct {
	w   *fsnotify.Watcher
	sig chan struct{}

	mu    sync.Mutex
	notes []notice
	armed bool
	dirs  map[string]bool // the directories watched
}

func newFSNotifier() (notifier, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	n := &fsnotifier{w: w, sig: make(chan struct{}, 1), armed: true, dirs: map[string]bool{}}
	go n.collect()
	return n, nil
}

func (n *fsnotifier) collect() {
	for {
		var nt notice
		select {
		case ev, ok := <-n.w.Events:
			if !ok {
				return
			}
			nt.name = ev.Name
			if ev.Has(fsnotify.Create) {
				nt.op |= opCreate
			}
			if ev.Has(fsnotify.Write) {
				nt.op |= opWrite
			}
			if ev.Has(fsnotify.Remove) {
				nt.op |= opRemove
			}
			if ev.Has(fsnotify.Rename) {
				nt.op |= opRename
			}
			if nt.op&(opRemove|opRename) != 0 && n.gone(ev.Name) {
				nt.op = opGone
			}
			if nt.op == 0 {
				continue
			}
		case err, ok := <-n.w.Errors:
			if !ok {
				return
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				continue
			}
			nt.op = opOverflow
		}
		n.mu.Lock()
		n.notes = append(n.notes, nt)
		signal := n.armed
		n.armed = false
		n.mu.Unlock()
		if signal {
			n.signal()
		}
	}
}

func (n *fsnotifier) signal() {
	select {
	case n.sig <- struct{}{}:
	default:
	}
}

func (n *fsnotifier) ready() <-chan struct{} { return n.sig }

func (n *fsnotifier) arm() {
	n.mu.Lock()
	waiting := len(n.notes) > 0
	n.armed = !waiting
	n.mu.Unlock()
	if waiting {
		n.signal()
	}
}

func (n *fsnotifier) take(fn func(notice)) error {
	n.mu.Lock()
	notes := n.notes
	n.notes = nil
	n.mu.Unlock()
	for _, nt := range notes {
		fn(nt)
	}
	return nil
}

// gone reports whether name is a watched directory, and if so ends its
// watch: the directory was deleted or moved away.
func (n *fsnotifier) gone(name string) bool {
	n.mu.Lock()
	watched := n.dirs[name]
	delete(n.dirs, name)
	n.mu.Unlock()
	if watched {
		_ = n.w.Remove(name) // fsnotify may have ended it already
	}
	return watched
}

func (n *fsnotifier) add(dir string) error {
	if err := n.w.Add(dir); err != nil {
		return err
	}
	n.mu.Lock()
	n.dirs[dir] = true
	n.mu.Unlock()
	return nil
}

func (n *fsnotifier) remove(dir string) error {
	n.mu.Lock()
	delete(n.dirs, dir)
	n.mu.Unlock()
	return n.w.Remove(dir)
}

func (n *fsnotifier) close() error { return n.w.Close() }
