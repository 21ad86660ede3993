package harness

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BinDir returns the directory holding the agent and aggregator binaries:
// a copy of $FERRY_BIN's (set by `make test`), else binaries built for this
// test binary. The copy is taken on the first call, so a `make build` while
// a long test runs does not swap the binaries between two restarts of a
// process. Main removes the directory at the end.
func BinDir(tb testing.TB) string {
	tb.Helper()
	d, err := binDir()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

var binaries = []string{"agent", "aggregator"}

var build struct {
	once sync.Once
	dir  string
	err  error
}

func binDir() (string, error) {
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-test-bin")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		src := os.Getenv("FERRY_BIN")
		for _, name := range binaries {
			if src != "" {
				build.err = copyFile(filepath.Join(src, name), filepath.Join(dir, name))
			} else {
				cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "github.com/ferrylogs/ferry/cmd/"+name)
				if out, err := cmd.CombinedOutput(); err != nil {
					build.err = fmt.Errorf("go build %s: %v\n%s", name, err, out)
				}
			}
			if build.err != nil {
				return
			}
		}
	})
	return build.dir, build.err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("FERRY_BIN: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Main runs the tests of a package (call it from TestMain as
// os.Exit(harness.Main(m))), then stops the shared Elasticsearch if this
// process started it and removes the copied or built binaries.
func Main(m *testing.M) int {
	code := m.Run()
	if err := StopSharedES(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	return code
}

// FreePort returns a loopback address (127.0.0.1:port) with a port free
// right now, for a process the test starts next. The port is chosen below
// the kernel's ephemeral range (net.ipv4.ip_local_port_range), where a
// port handed out for ":0" would be: there, any outgoing connection of a
// busy machine may take it between this check and the process's bind (the
// process then exits with "address already in use"). A port is handed out
// once per test binary: a test takes several before starting the processes
// that bind them, and a random pick may repeat one (two processes told to
// listen on the same port).
func FreePort(tb testing.TB) string {
	tb.Helper()
	lo, hi := portRange()
	handed.mu.Lock()
	defer handed.mu.Unlock()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if handed.ports[port] {
			continue
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken
		}
		ln.Close()
		handed.ports[port] = true
		return addr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	handed.ports[ln.Addr().(*net.TCPAddr).Port] = true
	return ln.Addr().String()
}

// handed is the ports FreePort has handed out in this process.
var handed = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// portRange is where FreePort looks: from 10000 to the start of the
// ephemeral range (32768 where it cannot be read).
func portRange() (lo, hi int) {
	lo, hi = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lo+1000 {
				hi = n
			}
		}
	}
	return lo, hi
}

// Proc is one running binary of bin/ (agent or aggregator), restartable,
// with the output of all its runs appended to one log file.
type Proc struct {
	tb   testing.TB
	Name string
	Args []string
	Log  string // path of the log file

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
	runs int
}

// StartProc starts bin/name with args, logging to dir/name.log, and kills
// it with SIGKILL when the test ends.
func StartProc(tb testing.TB, dir, name string, args ...string) *Proc {
	tb.Helper()
	return StartProcLog(tb, filepath.Join(dir, name+".log"), name, args...)
}

// StartProcLog is StartProc with the log file at logPath (for two
// processes of one binary in one directory).
func StartProcLog(tb testing.TB, logPath, name string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{tb: tb, Name: name, Args: args, Log: logPath}
	p.Start()
	tb.Cleanup(p.Kill)
	return p
}

// Start starts the process (again); the test fails if it cannot.
func (p *Proc) Start() {
	p.tb.Helper()
	if err := p.TryStart(); err != nil {
		p.tb.Fatal(err)
	}
}

// TryStart starts the process (again) and returns what went wrong.
func (p *Proc) TryStart() error {
	dir, err := binDir()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("start %s: already running (pid %d)", p.Name, p.cmd.Process.Pid)
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	p.runs++
	fmt.Fprintf(f, "=== start %d of %s\n", p.runs, p.Name)
	cmd := exec.Command(filepath.Join(dir, p.Name), p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd = cmd
	done := make(chan error, 1)
	p.done = done
	go func() { done <- cmd.Wait() }()
	return nil
}

// Running reports whether the process was started and has not been
// stopped by Kill9, Term or Kill. A process that exited on its own still
// counts as running until then; see Exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Exited reports whether the last started process has exited, and how.
func (p *Proc) Exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return true, nil
	}
	select {
	case err := <-p.done:
		p.done <- err // keep it for the one who stops the process
		return true, err
	default:
		return false, nil
	}
}

// Runs returns how often the process was started.
func (p *Proc) Runs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs
}

// Kill9 kills the process with SIGKILL and waits for it.
func (p *Proc) Kill9() { p.Kill() }

// Term sends SIGTERM and returns the exit error (nil for exit status 0);
// after timeout it kills the process with SIGKILL and says so.
func (p *Proc) Term(timeout time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.cmd = nil
		return err
	case <-time.After(timeout):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		p.cmd = nil
		return fmt.Errorf("%s did not stop within %s after SIGTERM", p.Name, timeout)
	}
}

// Kill kills the process with SIGKILL, if it runs, and waits for it.
func (p *Proc) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		p.cmd = nil
	}
}

// PID returns the process id of the running process, 0 when it does not run.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// RSS returns the resident set size now and its peak (VmRSS and VmHWM of
// /proc/<pid>/status) in bytes.
func (p *Proc) RSS() (rss, peak int64, err error) {
	pid := p.PID()
	if pid == 0 {
		return 0, 0, fmt.Errorf("%s does not run", p.Name)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// Label names the process in messages: its log file's name without .log
// ("agent", "aggregator-a").
func (p *Proc) Label() string { return strings.TrimSuffix(filepath.Base(p.Log), ".log") }

// StopAll stops procs with SIGTERM, in order, each within timeout (see
// Term); the test fails (not at once) for each that does not exit cleanly.
func StopAll(tb testing.TB, timeout time.Duration, procs ...*Proc) {
	tb.Helper()
	for _, p := range procs {
		start := time.Now()
		if err := p.Term(timeout); err != nil {
			tb.Errorf("%s exit after SIGTERM: %v", p.Label(), err)
		} else {
			tb.Logf("%s stopped by SIGTERM in %s", p.Label(), time.Since(start).Round(10*time.Millisecond))
		}
	}
}

// LogTailsOnFailure has the test log the last lines of each process's log
// file when it ends failed (before the processes are killed, when called
// after they were started).
func LogTailsOnFailure(tb testing.TB, procs ...*Proc) {
	tb.Cleanup(func() {
		if !tb.Failed() {
			return
		}
		for _, p := range procs {
			tb.Logf("%s (%s), last lines:\n%s", filepath.Base(p.Log), p.Log, p.LogTail())
		}
	})
}

// LogTail returns the last 40 lines of the log file.
func (p *Proc) LogTail() string {
	data, _ := os.ReadFile(p.Log)
	lines := strings.Split(string(data), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// WaitFor polls cond every 50 ms until it is true; the test fails when
// timeout passes first.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Poll(timeout, 50*time.Millisecond, cond) {
		tb.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Poll calls cond every interval until it is true (true) or timeout passes
// (false). It is WaitFor for goroutines other than the test's.
func Poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval) // poll interval
	}
	return true
}

var statsClient = &http.Client{Timeout: 5 * time.Second}

// HTTPGet gets http://addr/path; an answer other than 200 is an error.
func HTTPGet(addr, path string) ([]byte, error) {
	res, err := statsClient.Get("http://" + addr + path)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d: %s", path, res.StatusCode, b)
	}
	return b, err
}

// Stat returns one counter of a process's /stats on its http address.
func Stat(addr, name string) (uint64, error) {
	b, err := HTTPGet(addr, "/stats")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == name {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /stats", name)
}

// Healthy reports whether the process with the http address addr answers
// /healthz.
func Healthy(addr string) bool {
	_, err := HTTPGet(addr, "/healthz")
	return err == nil
}

// WaitHealthy waits up to 30 s for the process with the http address addr
// to answer /healthz; name says whose in the failure message.
func WaitHealthy(tb testing.TB, name, addr string) {
	tb.Helper()
	WaitFor(tb, 30*time.Second, name+"'s /healthz", func() bool { return Healthy(addr) })
}

// AgentAcked returns ferry_agent_events_acked_total of the agent with the
// http address addr: the events it had acknowledged since it started.
func AgentAcked(addr string) (uint64, error) {
	return Stat(addr, "ferry_agent_events_acked_total")
}

// AggregatorAcked returns ferry_aggregator_events_acked_total of the
// aggregator with the http address addr.
func AggregatorAcked(addr string) (uint64, error) {
	return Stat(addr, "ferry_aggregator_events_acked_total")
}

// WriteFile writes content to path; the test fails if it cannot.
func WriteFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}
