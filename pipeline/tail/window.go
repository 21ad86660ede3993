package tail

import "time"

// window coalesces write notifications (see Input.ReadDelay): the first
// one opens a window of the shortest read delay of the inputs, and every
// file written before it ends is woken when it does, so that a file
// written line by line is read a window at a time and the agent wakes
// once per window, not once per write.
//
// When every input has a read delay (hold), the notifications that come
// while the window is open are not even taken: they wait in the kernel's
// queue (which merges repeated writes to one file), so that they do not
// wake the agent either (see notifier), and are taken when the window
// ends, at once, before the files are woken. A window that took any opens
// the next at once (reopen), so that while files are written the agent
// wakes once per window, at its end, and not for its first write either;
// one that took none closes, and the next notification opens a window
// again. Should the queue overflow, every file is looked at. Deletions and
// renames held wait for the window like writes.
type window struct {
	length  time.Duration // the shortest read delay > 0 of the inputs
	hold    bool          // every input has a read delay
	timer   *time.Timer
	open    bool // a window is open
	pending map[*follower]struct{}
}

func newWindow(inputs []*Input, notified bool) *window {
	w := &window{timer: time.NewTimer(time.Hour), pending: map[*follower]struct{}{}}
	w.timer.Stop()
	w.configure(inputs, notified)
	return w
}

// configure takes the read delays of inputs; notified says whether write
// notifications come at all (else nothing is held).
func (w *window) configure(inputs []*Input, notified bool) {
	w.length, w.hold = 0, notified && len(inputs) > 0
	for _, in := range inputs {
		if in.ReadDelay <= 0 {
			w.hold = false
			continue
		}
		if w.length == 0 || in.ReadDelay < w.length {
			w.length = in.ReadDelay
		}
	}
}

// holding reports whether notifications are to be left in the kernel.
func (w *window) holding() bool { return w.hold && w.open }

// add makes fl one of the files woken when the window ends, opening it if
// need be.
func (w *window) add(fl *follower) {
	w.pending[fl] = struct{}{}
	if !w.open {
		w.open = true
		w.timer.Reset(w.length)
	}
}

// reopen opens the next window right away, with nothing pending yet: while
// files are being written, windows follow one another, each ended by its
// timer, and the notifications wait in the kernel throughout.
func (w *window) reopen() {
	w.open = true
	w.timer.Reset(w.length)
}

// fire handles the timer: the window ended, every pending file is woken
// (the notifications held are taken just before).
func (w *window) fire() {
	for fl := range w.pending {
		fl.wakeUp()
		delete(w.pending, fl)
	}
	w.open = false
}
