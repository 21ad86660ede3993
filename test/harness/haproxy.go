package harness

import (
	"bufio"
	"fmt"
	"io"
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

// HAProxyBin returns the path of the haproxy binary; the test fails if it
// is not installed (.ci/run and `make test` install it from Debian).
func HAProxyBin(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("haproxy")
	if err != nil {
		tb.Fatalf("haproxy is not installed (apt-get install haproxy; .ci/run does it): %v", err)
	}
	return p
}

// StartBackend starts a tiny HTTP server on loopback for HAProxy to proxy
// to and returns its address: /slow answers after 300 ms, paths starting
// with /missing answer 404, everything else 200 "ok <method>".
func StartBackend(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/slow"):
			time.Sleep(300 * time.Millisecond)
		case strings.Contains(r.URL.Path, "/missing"):
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "ok %s\n", r.Method)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// HAProxy is a running haproxy process.
type HAProxy struct {
	cmd  *exec.Cmd
	done chan struct{}
	Log  string
}

// StartHAProxy writes cfg to dir/haproxy.cfg, checks it and runs haproxy in
// the foreground, killed when the test ends.
func StartHAProxy(tb testing.TB, dir, cfg string) *HAProxy {
	tb.Helper()
	bin := HAProxyBin(tb)
	path := filepath.Join(dir, "haproxy.cfg")
	WriteFile(tb, path, cfg)
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		tb.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	logPath := filepath.Join(dir, "haproxy.log")
	f, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start haproxy: %v", err)
	}
	h := &HAProxy{cmd: cmd, done: make(chan struct{}), Log: logPath}
	go func() { _ = cmd.Wait(); close(h.done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-h.done
	})
	return h
}

// WaitListening waits until addr accepts TCP connections.
func WaitListening(tb testing.TB, addr string, timeout time.Duration) {
	tb.Helper()
	WaitFor(tb, timeout, addr+" listening", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
}

// ProxiedRequest is one HTTP/1.1 request sent to a HAProxy bind with
// accept-proxy, claiming the client address SrcIP:SrcPort in a PROXY
// protocol v1 header while the connection stays on loopback.
type ProxiedRequest struct {
	SrcIP   string
	SrcPort int
	Method  string
	Target  string // path and query
	Body    string
}

// Do sends r to addr and returns the response's status code.
func (r ProxiedRequest) Do(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	family, dst := "TCP4", "127.0.0.1"
	if strings.Contains(r.SrcIP, ":") {
		family, dst = "TCP6", "::1"
	}
	_, port, _ := net.SplitHostPort(addr)
	req := fmt.Sprintf("PROXY %s %s %s %d %s\r\n%s %s HTTP/1.1\r\nHost: example.test\r\nUser-Agent: ferry-e2e\r\nConnection: close\r\n",
		family, r.SrcIP, dst, r.SrcPort, port, r.Method, r.Target)
	if r.Body != "" || r.Method == http.MethodPost || r.Method == http.MethodPut {
		req += "Content-Length: " + strconv.Itoa(len(r.Body)) + "\r\n"
	}
	req += "\r\n" + r.Body
	if _, err := io.WriteString(c, req); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: r.Method})
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// SyslogClient sends syslog messages over TCP with octet counting (RFC
// 6587 3.4.1), as rsyslog's omfwd with TCP_Framing="octet-counted" does.
type SyslogClient struct {
	mu sync.Mutex
	c  net.Conn
}

// DialSyslogOctets connects to a syslog TCP listener.
func DialSyslogOctets(addr string) (*SyslogClient, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &SyslogClient{c: c}, nil
}

// Send writes one message, framed by its length.
func (s *SyslogClient) Send(msg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := fmt.Fprintf(s.c, "%d %s", len(msg), msg)
	return err
}

// Close closes the connection.
func (s *SyslogClient) Close() error { return s.c.Close() }
