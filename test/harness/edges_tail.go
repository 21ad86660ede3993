package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Nobody is the user and group id of nobody / nogroup, which the tests
// that need "permission denied" run the agent as (root reads anything).
const Nobody = 65534

// UserProc is the agent binary run once as another user (see StartAgentAs).
type UserProc struct {
	Log  string
	cmd  *exec.Cmd
	done chan error
	err  error
}

// StartAgentAs runs the agent as uid:gid with args, its output in logPath.
// The binary is copied into dir (which, like every directory above it up
// to the root, must be searchable by that user; see OpenUp). The process
// is killed when the test ends.
func StartAgentAs(tb testing.TB, dir, logPath string, uid, gid uint32, args ...string) *UserProc {
	tb.Helper()
	bin := filepath.Join(dir, "agent-bin")
	if _, err := os.Stat(bin); err != nil {
		if err := copyFile(filepath.Join(BinDir(tb), "agent"), bin); err != nil {
			tb.Fatal(err)
		}
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start agent as %d: %v", uid, err)
	}
	p := &UserProc{Log: logPath, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	tb.Cleanup(p.Kill)
	return p
}

// Exited reports whether the process has exited, and how.
func (p *UserProc) Exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

// Kill kills the process, if it runs, and waits for it.
func (p *UserProc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil
}

// Term sends SIGTERM and waits up to timeout for the process to exit.
func (p *UserProc) Term(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("agent did not stop within %s after SIGTERM", timeout)
	}
}

// LogText returns the process's output so far.
func (p *UserProc) LogText() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// OpenUp makes path and every directory above it searchable and readable
// by everyone (mode |= 0o755): t.TempDir makes 0700 directories.
func OpenUp(tb testing.TB, path string) {
	tb.Helper()
	for p := path; p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o755); err != nil {
			tb.Fatal(err)
		}
	}
}

// FlagDoc is a sink document with the fields the edge tests look at.
type FlagDoc struct {
	Message string `json:"message"`
	Stream  string `json:"stream"`
	Event   struct {
		ID string `json:"id"`
	} `json:"event"`
	Log struct {
		Offset int64 `json:"offset"`
	} `json:"log"`
	Ferry struct {
		Flags []string `json:"flags"`
	} `json:"ferry"`
}

// ReadFlagDocs reads every complete document of an NDJSON sink file (none
// while it does not exist).
func ReadFlagDocs(tb testing.TB, path string) []FlagDoc {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		tb.Fatal(err)
	}
	defer f.Close()
	var docs []FlagDoc
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var d FlagDoc
		if err := json.Unmarshal(sc.Bytes(), &d); err == nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// ExactlyOnce checks docs against want (message -> how many times it must
// arrive, each time under its own event id): every wanted message as often
// as wanted, nothing else, and no event id twice.
func ExactlyOnce(docs []FlagDoc, want map[string]int) error {
	got := map[string]int{}
	ids := map[string]string{}
	var problems []string
	for _, d := range docs {
		got[d.Message]++
		if prev, ok := ids[d.Event.ID]; ok {
			problems = append(problems, fmt.Sprintf("event id %s twice (%q, %q)", d.Event.ID, prev, d.Message))
		}
		ids[d.Event.ID] = d.Message
	}
	for m, n := range want {
		if got[m] != n {
			problems = append(problems, fmt.Sprintf("%q arrived %d times, want %d", m, got[m], n))
		}
	}
	for m, n := range got {
		if _, ok := want[m]; !ok {
			problems = append(problems, fmt.Sprintf("unexpected %q (%d times)", m, n))
		}
	}
	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("... %d more", len(problems)-10))
		}
		return fmt.Errorf("%d documents: %s", len(docs), strings.Join(problems, "; "))
	}
	return nil
}
