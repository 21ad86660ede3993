package tail

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// inotifyEvents encodes events as the kernel does: an InotifyEvent each,
// then its name padded with NULs to a multiple of 16 bytes.
func inotifyEvents(evs ...rawEvent) []byte {
	var b []byte
	for _, e := range evs {
		n := 0
		if e.name != "" {
			n = (len(e.name) + 16) / 16 * 16
		}
		b = binary.NativeEndian.AppendUint32(b, uint32(e.wd))
		b = binary.NativeEndian.AppendUint32(b, e.mask)
		b = binary.NativeEndian.AppendUint32(b, 0)
		b = binary.NativeEndian.AppendUint32(b, uint32(n))
		name := make([]byte, n)
		copy(name, e.name)
		b = append(b, name...)
	}
	return b
}

type rawEvent struct {
	wd   int32
	mask uint32
	name string
}

// TestInotifyParse: the notices of one read of the inotify queue, with the
// writes to a file since the last notice that is not a write made one.
func TestInotifyParse(t *testing.T) {
	const w, c, d, gone = unix.IN_MODIFY, unix.IN_CREATE, unix.IN_DELETE, unix.IN_IGNORED
	for _, tc := range []struct {
		name string
		evs  []rawEvent
		want []string // "op name"
	}{
		{"writes to two files, interleaved", []rawEvent{{1, w, "a.log"}, {1, w, "b.log"}, {1, w, "a.log"}, {1, w, "b.log"}, {1, w, "a.log"}},
			[]string{"w /logs/a.log", "w /logs/b.log"}},
		{"a create between writes keeps its place", []rawEvent{{1, w, "a.log"}, {1, c, "b.log"}, {1, w, "a.log"}, {1, w, "a.log"}},
			[]string{"w /logs/a.log", "c /logs/b.log", "w /logs/a.log"}},
		{"a removal between writes keeps its place", []rawEvent{{1, w, "a.log"}, {1, d, "a.log"}, {1, c, "a.log"}, {1, w, "a.log"}},
			[]string{"w /logs/a.log", "r /logs/a.log", "c /logs/a.log", "w /logs/a.log"}},
		{"the same name in two directories", []rawEvent{{1, w, "a.log"}, {2, w, "a.log"}, {2, w, "a.log"}, {1, w, "a.log"}},
			[]string{"w /logs/a.log", "w /other/a.log"}},
		{"a name that is the end of another", []rawEvent{{1, w, "xa.log"}, {1, w, "a.log"}, {1, w, "a.log"}},
			[]string{"w /logs/xa.log", "w /logs/a.log"}},
		{"the root directory", []rawEvent{{3, w, "a.log"}, {3, w, "a.log"}}, []string{"w /a.log"}},
		{"a directory gone", []rawEvent{{2, w, "a.log"}, {2, gone, ""}, {2, w, "b.log"}}, []string{"w /other/a.log", "g /other"}},
		{"an unknown watch", []rawEvent{{9, w, "a.log"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &inotify{dirs: map[int32]string{1: "/logs", 2: "/other", 3: "/"}, wds: map[string]int32{"/logs": 1, "/other": 2, "/": 3}}
			var got []string
			for _, nt := range n.parse(inotifyEvents(tc.evs...), nil) {
				op := map[noticeOp]string{opWrite: "w", opCreate: "c", opRemove: "r", opGone: "g"}[nt.op]
				got = append(got, op+" "+nt.name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("notices %q, want %q", got, tc.want)
			}
		})
	}
}

// TestInotifyWritesOneNotice: three files written line by line, in turn,
// while nobody takes the notices (the kernel cannot merge the events of
// files written in turn): one take gives one write notice per file, not
// one per line.
func TestInotifyWritesOneNotice(t *testing.T) {
	dir := t.TempDir()
	n, err := newNotifier()
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	names := []string{"a.log", "b.log", "c.log"}
	for _, name := range names {
		appendFile(t, filepath.Join(dir, name), "first\n") // before the watch: no create
	}
	if err := n.add(dir); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		for _, name := range names {
			appendFile(t, filepath.Join(dir, name), fmt.Sprintf("line %d\n", i))
		}
	}
	waitReady(t, n)
	writes := map[string]int{}
	for _, nt := range takeAll(t, n) {
		if nt.has(opWrite) {
			writes[filepath.Base(nt.name)]++
		}
	}
	for _, name := range names {
		if writes[name] != 1 {
			t.Errorf("%d write notices of %s, want 1 (%v)", writes[name], name, writes)
		}
	}
}
