package tail

// notice is one file notification: name is the file (or the watched
// directory itself), op what happened to it.
type notice struct {
	name string
	op   noticeOp
}

type noticeOp uint8

const (
	opCreate   noticeOp = 1 << iota // created, or moved in
	opWrite                         // written (or truncated)
	opRemove                        // deleted
	opRename                        // moved away
	opOverflow                      // notices were lost: look at every file
	// opGone: the watched directory name itself is gone (deleted, moved
	// away, unmounted) and its watch with it: nothing more comes for it
	// until it is watched again.
	opGone
)

func (n notice) has(op noticeOp) bool { return n.op&op != 0 }

// notifier watches directories for the Manager. Its notices are taken
// when the manager chooses: ready is signalled once notices wait, after
// arm, and take reads those waiting without blocking. Between a ready and
// the next arm, notices wait in the kernel (Linux: the inotify queue,
// which merges repeated ones and flags its overflow) and wake nothing:
// while a read_delay window is open the agent is not woken by every write
// (see window).
type notifier interface {
	add(dir string) error
	remove(dir string) error
	// ready is signalled (capacity 1) when notices wait, once per arm.
	ready() <-chan struct{}
	// arm asks for one more ready, at once if notices wait already.
	arm()
	// take calls fn for every notice waiting, in order, without blocking.
	take(fn func(notice)) error
	close() error
}
