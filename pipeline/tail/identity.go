package tail

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/ferrylogs/ferry/pipeline/checkpoint"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// fingerprintMax is the most bytes a fingerprint covers. A fingerprint
// covers the first line (with its newline) or fingerprintMax bytes,
// whichever is shorter, so it is fixed as soon as it can be taken and the
// same after every restart.
const fingerprintMax = 1024

// errNoFingerprint means the file does not yet hold a complete first line.
var errNoFingerprint = errors.New("no complete first line yet")

// devIno is where a file lives.
type devIno struct{ dev, ino uint64 }

func statDevIno(fi os.FileInfo) (devIno, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return devIno{}, false
	}
	return devIno{dev: uint64(st.Dev), ino: st.Ino}, true
}

// fingerprint reads the start of f and returns the hash of its first line
// (or first fingerprintMax bytes) and the number of bytes it covers.
func fingerprint(f *os.File) (string, int, error) {
	var buf [fingerprintMax]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", 0, err // "read /x: …" names the file
	}
	cover := n
	if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
		cover = i + 1
	} else if n < fingerprintMax {
		return "", 0, errNoFingerprint
	}
	return hashPrefix(buf[:cover]), cover, nil
}

// fingerprintLen hashes the first n bytes of f; ok is false when f is
// shorter than n.
func fingerprintLen(f *os.File, n int) (string, bool) {
	if n <= 0 || n > fingerprintMax {
		return "", false
	}
	var buf [fingerprintMax]byte
	got, err := f.ReadAt(buf[:n], 0)
	if got < n || (err != nil && !errors.Is(err, io.EOF)) {
		return "", false
	}
	return hashPrefix(buf[:n]), true
}

// hasFingerprint reports whether f starts with n bytes whose fingerprint is
// fp. It does not allocate.
func hasFingerprint(f *os.File, n int, fp string) bool {
	if n <= 0 || n > fingerprintMax {
		return false
	}
	var buf [fingerprintMax]byte
	got, err := f.ReadAt(buf[:n], 0)
	if got < n || (err != nil && !errors.Is(err, io.EOF)) {
		return false
	}
	sum := sha256.Sum256(buf[:n])
	var h [16]byte
	hex.Encode(h[:], sum[:8])
	return string(h[:]) == fp
}

// fileSize returns the size and link count of f without allocating.
func fileSize(f *os.File) (size int64, links uint64, err error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return 0, 0, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return st.Size, uint64(st.Nlink), nil
}

func hashPrefix(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func identity(di devIno, fp string) string {
	return fmt.Sprintf("%x-%x-%s", di.dev, di.ino, fp)
}

// kubeFromPath returns the Kubernetes coordinates of a container log file:
// namespace, pod and container from the standard link name
// <pod>_<namespace>_<container>-<container id>.log, and the pod uid from the
// real path /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log.
func kubeFromPath(link, real string) *ferryv1.Kubernetes {
	k := &ferryv1.Kubernetes{}
	base := strings.TrimSuffix(filepath.Base(link), ".log")
	if parts := strings.SplitN(base, "_", 3); len(parts) == 3 {
		k.Pod, k.Namespace = parts[0], parts[1]
		rest := parts[2]
		if i := strings.LastIndexByte(rest, '-'); i > 0 && len(rest)-i-1 >= 12 && isHex(rest[i+1:]) {
			k.Container, k.ContainerId = rest[:i], rest[i+1:]
		} else {
			k.Container = rest
		}
	}
	// /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log
	dir := filepath.Dir(real)
	podDir := filepath.Base(filepath.Dir(dir))
	if parts := strings.Split(podDir, "_"); len(parts) == 3 {
		if k.Namespace == "" {
			k.Namespace, k.Pod = parts[0], parts[1]
			k.Container = filepath.Base(dir)
		}
		if parts[0] == k.Namespace && parts[1] == k.Pod {
			k.PodUid = parts[2]
		}
	}
	if k.Pod == "" && k.Namespace == "" {
		return nil
	}
	// Kubernetes names are ASCII, but a file of any name may match the
	// glob: the wire format's strings must be valid UTF-8.
	for _, s := range []*string{&k.Pod, &k.Namespace, &k.Container, &k.ContainerId, &k.PodUid} {
		if !utf8.ValidString(*s) {
			*s = strings.ToValidUTF8(*s, "\uFFFD")
		}
	}
	return k
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// mark is the check of the bytes just before an offset, as they were read:
// the hash of the n bytes before end (at most checkpoint.CheckMax).
type mark struct {
	end int64
	sum string
	n   int
}

// checkAt returns the mark of the bytes of f just before off; ok is false
// when f is shorter than off or off is 0.
func checkAt(f *os.File, off int64) (mark, bool) {
	n := int(min(off, checkpoint.CheckMax))
	if n <= 0 {
		return mark{}, false
	}
	var buf [checkpoint.CheckMax]byte
	got, err := f.ReadAt(buf[:n], off-int64(n))
	if got < n || (err != nil && !errors.Is(err, io.EOF)) {
		return mark{}, false
	}
	return mark{end: off, sum: hashPrefix(buf[:n]), n: n}, true
}

// holds reports whether f still holds the bytes mk was taken of. A mark
// without bytes holds trivially. It does not allocate.
func (mk mark) holds(f *os.File) bool {
	if mk.n <= 0 {
		return true
	}
	if mk.n > checkpoint.CheckMax || int64(mk.n) > mk.end {
		return false
	}
	var buf [checkpoint.CheckMax]byte
	got, err := f.ReadAt(buf[:mk.n], mk.end-int64(mk.n))
	if got < mk.n || (err != nil && !errors.Is(err, io.EOF)) {
		return false
	}
	sum := sha256.Sum256(buf[:mk.n])
	var h [16]byte
	hex.Encode(h[:], sum[:8])
	return string(h[:]) == mk.sum
}

// endChecks are the marks of the chunk ends of a file handed on and not
// yet committed, in order: Commit saves the mark of the offset it moves to.
type endChecks struct {
	mu sync.Mutex
	q  []mark
}

func (p *endChecks) push(mk mark) {
	p.mu.Lock()
	p.q = append(p.q, mk)
	p.mu.Unlock()
}

// take drops the marks up to end and returns the one at end, if any.
func (p *endChecks) take(end int64) (mark, bool) {
	if p == nil {
		return mark{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var got mark
	found := false
	i := 0
	for ; i < len(p.q) && p.q[i].end <= end; i++ {
		if p.q[i].end == end {
			got, found = p.q[i], true
		}
	}
	p.q = append(p.q[:0], p.q[i:]...)
	return got, found
}
