//go:build linux

package tail

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// inotify is the Linux notifier: an inotify instance read only when the
// manager takes its notices. To learn that notices wait without being woken
// by every one of them, the inotify descriptor sits one-shot in an epoll
// set of its own, which is in Go's netpoller: the first notice after an arm
// makes the set readable once, and every later one waits, merged where the
// kernel can, in the inotify queue (fsnotify's reader, by contrast, woke
// the agent for every write: its descriptor is in the netpoller, edge
// triggered, for good). The queue's overflow comes as a notice.
type inotify struct {
	fd  int      // the inotify instance, non-blocking
	ep  *os.File // the epoll set holding fd one-shot, in the netpoller
	rc  syscall.RawConn
	sig chan struct{}

	mu   sync.Mutex
	dirs map[int32]string // watch descriptor → directory
	wds  map[string]int32

	// take's (the manager's goroutine only)
	buf    []byte
	notes  []notice
	writes []writeNote
}

// writeNote is a notice of parse's that is a write only: its index in the
// notices and the watch it came from.
type writeNote struct {
	i  int
	wd int32
}

// maxWriteNotes bounds the write notices parse compares a new one with.
const maxWriteNotes = 64

// inotifyMask is what is watched in a directory: files created or moved in
// (Create), written or truncated (Write), deleted (Remove), moved away
// (Rename), and the directory itself deleted or moved.
const inotifyMask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MODIFY | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

func newNotifier() (notifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	// Armed from the start.
	err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(fd)})
	if err == nil {
		err = unix.SetNonblock(ep, true)
	}
	if err != nil {
		unix.Close(ep)
		unix.Close(fd)
		return nil, fmt.Errorf("epoll set for inotify: %w", err)
	}
	f := os.NewFile(uintptr(ep), "inotify-epoll") // non-blocking: in the netpoller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(fd)
		return nil, fmt.Errorf("epoll set for inotify: %w", err)
	}
	n := &inotify{
		fd: fd, ep: f, rc: rc, sig: make(chan struct{}, 1),
		dirs: map[int32]string{}, wds: map[string]int32{},
		buf: make([]byte, 64<<10),
	}
	go n.wait()
	return n, nil
}

// wait signals sig every time the epoll set reports the inotify descriptor
// readable (once per arm), until the set is closed.
func (n *inotify) wait() {
	var evs [1]unix.EpollEvent
	for {
		err := n.rc.Read(func(fd uintptr) bool {
			k, err := unix.EpollWait(int(fd), evs[:], 0)
			return k > 0 || (err != nil && err != unix.EINTR)
		})
		if err != nil {
			return // closed
		}
		select {
		case n.sig <- struct{}{}:
		default:
		}
	}
}

func (n *inotify) ready() <-chan struct{} { return n.sig }

// arm re-enables the one-shot descriptor: the set is readable at once if
// notices wait already.
func (n *inotify) arm() {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(n.fd)}
	_ = n.rc.Control(func(ep uintptr) {
		_ = unix.EpollCtl(int(ep), unix.EPOLL_CTL_MOD, n.fd, &ev)
	})
}

func (n *inotify) add(dir string) error {
	wd, err := unix.InotifyAddWatch(n.fd, dir, inotifyMask)
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	n.mu.Lock()
	n.dirs[int32(wd)], n.wds[dir] = dir, int32(wd)
	n.mu.Unlock()
	return nil
}

func (n *inotify) remove(dir string) error {
	n.mu.Lock()
	wd, ok := n.wds[dir]
	if ok {
		delete(n.wds, dir)
		delete(n.dirs, wd)
	}
	n.mu.Unlock()
	if !ok {
		return nil
	}
	if _, err := unix.InotifyRmWatch(n.fd, uint32(wd)); err != nil && err != unix.EINVAL {
		return &os.PathError{Op: "inotify_rm_watch", Path: dir, Err: err} // EINVAL: the directory is gone
	}
	return nil
}

// take reads the queue until it is empty. A read returns every event that
// fits its buffer: one that leaves more than an event's room took the
// queue's last, and ends it (those queued since wake the next arm).
func (n *inotify) take(fn func(notice)) error {
	for {
		k, err := unix.Read(n.fd, n.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return nil
		case err != nil:
			return fmt.Errorf("reading inotify: %w", err)
		case k < unix.SizeofInotifyEvent:
			return errors.New("reading inotify: short read")
		}
		n.notes = n.parse(n.buf[:k], n.notes[:0])
		for _, nt := range n.notes {
			fn(nt)
		}
		clear(n.notes)
		if len(n.buf)-k > unix.SizeofInotifyEvent+unix.NAME_MAX+1 {
			return nil
		}
	}
}

// parse appends the notices of the events in b to notes (fn is called
// without n.mu held: it may add watches).
//
// Writes to a file, one event each, make one notice per read: a file
// written line by line (5,000 lines/s over 10 files) queues an event per
// line unless its events follow one another, which the kernel merges. A
// write notice only wakes the file's follower, which reads to the end:
// one wake after the read covers every write before it. A write is left
// out when a notice of a write to the same file is in this read after the
// last notice that is not a write only (a create, removal or rename keeps
// its place among the writes).
func (n *inotify) parse(b []byte, notes []notice) []notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	writes := n.writes[:0]
	defer func() { n.writes = writes[:0] }()
	for off := 0; off+unix.SizeofInotifyEvent <= len(b); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[off]))
		start := off + unix.SizeofInotifyEvent
		off = start + int(ev.Len)
		if off > len(b) {
			break
		}
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			notes = append(notes, notice{op: opOverflow})
			writes = writes[:0]
			continue
		}
		dir, ok := n.dirs[ev.Wd]
		if !ok {
			continue // removed meanwhile
		}
		if ev.Mask&(unix.IN_IGNORED|unix.IN_MOVE_SELF) != 0 {
			// The directory is gone (deleted, unmounted), or moved away:
			// the watch follows the directory, not its name, so it is
			// ended here (its IN_IGNORED then finds no directory).
			delete(n.dirs, ev.Wd)
			if n.wds[dir] == ev.Wd {
				delete(n.wds, dir)
			}
			if ev.Mask&unix.IN_MOVE_SELF != 0 {
				_, _ = unix.InotifyRmWatch(n.fd, uint32(ev.Wd))
			}
			notes = append(notes, notice{name: dir, op: opGone})
			writes = writes[:0]
			continue
		}
		var op noticeOp
		if ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
			op |= opCreate
		}
		if ev.Mask&unix.IN_MODIFY != 0 {
			op |= opWrite
		}
		if ev.Mask&(unix.IN_DELETE|unix.IN_DELETE_SELF) != 0 {
			op |= opRemove
		}
		if ev.Mask&(unix.IN_MOVED_FROM|unix.IN_MOVE_SELF) != 0 {
			op |= opRename
		}
		if op == 0 {
			continue
		}
		name := dir
		if ev.Len > 0 {
			base := b[start:off]
			if i := bytes.IndexByte(base, 0); i >= 0 {
				base = base[:i] // the name is padded with NULs
			}
			if op == opWrite && written(notes, writes, ev.Wd, prefixLen(dir), base) {
				continue
			}
			name = joinName(dir, base)
		}
		if op == opWrite && ev.Len > 0 {
			if len(writes) < maxWriteNotes {
				writes = append(writes, writeNote{i: len(notes), wd: ev.Wd})
			}
		} else {
			writes = writes[:0]
		}
		notes = append(notes, notice{name: name, op: op})
	}
	return notes
}

// written reports whether writes holds a notice of a write to the file
// base in the directory of the watch wd, whose files' names are that
// directory's pre bytes (see joinName) and their base name.
func written(notes []notice, writes []writeNote, wd int32, pre int, base []byte) bool {
	for _, w := range writes {
		if name := notes[w.i].name; w.wd == wd && len(name) == pre+len(base) && name[pre:] == string(base) {
			return true
		}
	}
	return false
}

// joinName is filepath.Join(dir, base) for a clean dir and a base name
// from inotify (no separator, not "." or ".."), without cleaning again.
func joinName(dir string, base []byte) string {
	if prefixLen(dir) == len(dir) {
		return dir + string(base)
	}
	return dir + "/" + string(base)
}

// prefixLen is the length of what joinName puts before a base name: dir
// and a separator, unless dir ends in one (the root).
func prefixLen(dir string) int {
	if strings.HasSuffix(dir, "/") {
		return len(dir)
	}
	return len(dir) + 1
}

func (n *inotify) close() error {
	err := n.ep.Close() // ends wait
	if cerr := unix.Close(n.fd); err == nil {
		err = cerr
	}
	return err
}
