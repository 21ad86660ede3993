package harness

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NodeRoot makes the directory layout of one test's node in a temporary
// directory and returns it: containers/, pods/, state/.
func NodeRoot(tb testing.TB) string {
	tb.Helper()
	root := tb.TempDir()
	for _, d := range []string{"containers", "pods", "state"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	return root
}

// PodFile is one container's log laid out the way a Kubernetes node does:
// containers/<pod>_<ns>_<container>-<id>.log -> pods/<ns>_<pod>_<uid>/<container>/0.log.
// Files with an odd index are rotated with copytruncate, the others by
// rename. A PodFile is used by one goroutine at a time.
type PodFile struct {
	NS, Pod, UID, Container, ID string
	Real, Link                  string // the log file and the symlink to it
	Written                     int    // lines written
	Rotations                   int
	Copytruncate                bool

	f *os.File
}

// NewPodFile creates pod file number i under root (see NodeRoot).
func NewPodFile(tb testing.TB, root string, i int) *PodFile {
	tb.Helper()
	p, err := TryNewPodFile(root, i)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TryNewPodFile is NewPodFile returning the error.
func TryNewPodFile(root string, i int) (*PodFile, error) {
	ns := []string{"dev", "staging", "prod"}[i%3]
	p := &PodFile{
		NS: ns, Pod: fmt.Sprintf("web-%d", i), UID: fmt.Sprintf("uid-%04d", i), Container: "app",
		ID: fmt.Sprintf("%064x", i+1), Copytruncate: i%2 == 1,
	}
	dir := filepath.Join(root, "pods", p.NS+"_"+p.Pod+"_"+p.UID, p.Container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p.Real = filepath.Join(dir, "0.log")
	p.Link = filepath.Join(root, "containers", fmt.Sprintf("%s_%s_%s-%s.log", p.Pod, p.NS, p.Container, p.ID))
	if err := p.open(); err != nil {
		return nil, err
	}
	if err := os.Symlink(p.Real, p.Link); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *PodFile) open() error {
	f, err := os.OpenFile(p.Real, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.f = f
	return nil
}

// Write appends line seq of file number file in CRI format (see Line);
// every 7th line is split into a partial and a final record.
func (p *PodFile) Write(tb testing.TB, file, seq int) {
	tb.Helper()
	if err := p.TryWrite(file, seq); err != nil {
		tb.Fatal(err)
	}
}

// TryWrite is Write returning the error.
func (p *PodFile) TryWrite(file, seq int) error {
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")
	body := Line(file, seq)
	var rec string
	if seq%7 == 0 {
		half := len(body) / 2
		rec = fmt.Sprintf("%s stdout P %s\n%s stdout F %s\n", ts, body[:half], ts, body[half:])
	} else {
		rec = fmt.Sprintf("%s stdout F %s\n", ts, body)
	}
	if _, err := p.f.WriteString(rec); err != nil {
		return err
	}
	p.Written++
	return nil
}

// Rotate rotates the file the way kubelet (rename) or logrotate's
// copytruncate would, keeping the rotated copy beside it as 0.log.N.
func (p *PodFile) Rotate(tb testing.TB) {
	tb.Helper()
	if err := p.TryRotate(); err != nil {
		tb.Fatal(err)
	}
}

// TryRotate is Rotate returning the error.
func (p *PodFile) TryRotate() error {
	p.Rotations++
	rotated := fmt.Sprintf("%s.%d", p.Real, p.Rotations)
	if p.Copytruncate {
		src, err := os.Open(p.Real)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := os.Create(rotated)
		if err != nil {
			return err
		}
		if _, err := io.Copy(dst, src); err != nil {
			dst.Close()
			return err
		}
		if err := dst.Close(); err != nil {
			return err
		}
		return p.f.Truncate(0)
	}
	p.f.Close()
	if err := os.Rename(p.Real, rotated); err != nil {
		return err
	}
	return p.open()
}

// Close closes the file being written.
func (p *PodFile) Close() error { return p.f.Close() }

// NewPodFiles creates pod files number 0 to n-1 under root.
func NewPodFiles(tb testing.TB, root string, n int) []*PodFile {
	tb.Helper()
	pods := make([]*PodFile, n)
	for i := range pods {
		pods[i] = NewPodFile(tb, root, i)
	}
	return pods
}

// WriteAll writes perFile lines into each of n new pod files under root
// and returns them.
func WriteAll(tb testing.TB, root string, n, perFile int) []*PodFile {
	tb.Helper()
	pods := NewPodFiles(tb, root, n)
	for i, p := range pods {
		for s := 0; s < perFile; s++ {
			p.Write(tb, i, s)
		}
	}
	return pods
}

// Line returns the message of line seq of file number file: "file=F seq=S"
// and 40 to 89 x's.
func Line(file, seq int) string {
	return fmt.Sprintf("file=%d seq=%d %s", file, seq, strings.Repeat("x", 40+seq%50))
}

// LineRE matches a whole message written by PodFile.Write; the groups are
// file and seq.
var LineRE = regexp.MustCompile(`^file=(\d+) seq=(\d+) x+$`)

// ParseLine returns file and seq of a message written by PodFile.Write.
func ParseLine(msg string) (file, seq int, ok bool) {
	m := LineRE.FindStringSubmatch(msg)
	if m == nil {
		return 0, 0, false
	}
	file, err1 := strconv.Atoi(m[1])
	seq, err2 := strconv.Atoi(m[2])
	return file, seq, err1 == nil && err2 == nil
}
