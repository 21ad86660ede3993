package tail

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// takeAll takes the notices waiting in n.
func takeAll(t *testing.T, n notifier) []notice {
	t.Helper()
	var got []notice
	if err := n.take(func(nt notice) { got = append(got, nt) }); err != nil {
		t.Fatal(err)
	}
	return got
}

// waitReady waits for n's ready signal.
func waitReady(t *testing.T, n notifier) {
	t.Helper()
	select {
	case <-n.ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no ready signal")
	}
}

// notifierKind is a notifier the tests run the tail on.
type notifierKind struct {
	name string
	make func() (notifier, error)
}

// notifiers returns the platform's notifier and fsnotify's, which is the
// platform's where there is no inotify and is tested beside it here.
func notifiers() []notifierKind {
	return []notifierKind{{"platform", newNotifier}, {"fsnotify", newFSNotifier}}
}

// TestNotifier: a notifier signals ready once per arm, holds the notices
// that come after that until they are taken (no signal meanwhile), and
// names what happened to which file: created, written, renamed away,
// deleted; a watched directory deleted says it is gone.
func TestNotifier(t *testing.T) {
	for _, k := range notifiers() {
		t.Run(k.name, func(t *testing.T) { testNotifier(t, k) })
	}
}

func testNotifier(t *testing.T, k notifierKind) {
	dir := t.TempDir()
	n, err := k.make()
	if err != nil {
		t.Skipf("no file notifications here: %v", err)
	}
	defer n.close()
	if err := n.add(dir); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(dir, "a.log")
	appendFile(t, a, "1\n") // create + write
	waitReady(t, n)
	// Not armed: no signal for what follows the first.
	for range 5 {
		appendFile(t, a, "more\n")
	}
	if err := os.Rename(a, a+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, a+".1", "after\n")
	time.Sleep(50 * time.Millisecond) // a signal, should one come
	select {
	case <-n.ready():
		t.Fatal("ready signalled again before arm")
	default:
	}
	got := takeAll(t, n)
	var ops = map[string]noticeOp{}
	for _, nt := range got {
		ops[nt.name] |= nt.op
	}
	if ops[a]&(opCreate|opWrite|opRename) != opCreate|opWrite|opRename {
		t.Errorf("notices of %s: %b, want created, written, renamed away (%v)", a, ops[a], got)
	}
	if ops[a+".1"]&(opCreate|opWrite) != opCreate|opWrite {
		t.Errorf("notices of %s: %b, want moved in and written (%v)", a+".1", ops[a+".1"], got)
	}
	if got := takeAll(t, n); len(got) != 0 {
		t.Errorf("taken twice: %v", got)
	}
	// Armed with nothing waiting: the next notice signals.
	n.arm()
	if err := os.Remove(a + ".1"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, n)
	got = takeAll(t, n)
	if len(got) != 1 || got[0].name != a+".1" || !got[0].has(opRemove) {
		t.Errorf("after the deletion: %v", got)
	}
	// Armed with notices waiting: it signals at once.
	appendFile(t, a, "again\n")
	time.Sleep(20 * time.Millisecond)
	n.arm()
	waitReady(t, n)
	if got := takeAll(t, n); len(got) == 0 {
		t.Error("nothing taken after an arm with notices waiting")
	}
	// A directory no longer watched says nothing.
	if err := n.remove(dir); err != nil {
		t.Fatal(err)
	}
	n.arm()
	appendFile(t, a, "unwatched\n")
	time.Sleep(50 * time.Millisecond)
	for _, nt := range takeAll(t, n) {
		if nt.name != "" {
			t.Errorf("notice of an unwatched directory: %v", nt)
		}
	}

	// A watched directory deleted: a notice that it is gone.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := n.add(sub); err != nil {
		t.Fatal(err)
	}
	n.arm()
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for gone := false; !gone; {
		if time.Now().After(deadline) {
			t.Fatal("no notice that the deleted directory is gone")
		}
		waitReady(t, n)
		for _, nt := range takeAll(t, n) {
			gone = gone || nt.name == sub && nt.has(opGone)
		}
		n.arm()
	}
}
