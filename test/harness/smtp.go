package harness

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SMTPServer is a real SMTP server for the tests: test/smtpd.py on Debian's
// python3-aiosmtpd (installed by .ci/run and make test), listening on
// loopback with a self-signed certificate, requiring STARTTLS (mode
// "starttls") or speaking TLS from the start (mode "tls"), and requiring
// AUTH as User/Password. It keeps each accepted message in Dir.
type SMTPServer struct {
	Addr           string
	Dir            string
	CAFile         string // the server's certificate, to trust
	Pool           *x509.CertPool
	User, Password string
}

// SMTPMessage is one message the server accepted, with its session.
type SMTPMessage struct {
	Msg      *mail.Message
	MailFrom string   `json:"mail_from"`
	RcptTos  []string `json:"rcpt_tos"`
	TLS      bool     `json:"tls"`  // the session was encrypted
	Auth     string   `json:"auth"` // the AUTH mechanism used
}

// debianPython is Debian's interpreter, for which python3-aiosmtpd is
// installed (a python3 first in PATH, such as pyenv's, lacks it).
const debianPython = "/usr/bin/python3"

// StartSMTP starts an SMTP server in mode ("starttls" or "tls") that does
// not offer the AUTH mechanisms in exclude (e.g. "PLAIN"); it is killed
// when the test ends.
func StartSMTP(tb testing.TB, mode string, exclude ...string) *SMTPServer {
	tb.Helper()
	script, err := findUp(filepath.Join("test", "smtpd.py"))
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	s := &SMTPServer{Dir: filepath.Join(dir, "out"), User: "ferry", Password: "pa55 word"}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	var keyFile string
	s.CAFile, keyFile, s.Pool = selfSigned(tb, dir)
	s.Addr = FreePort(tb)
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{script, "--port", port, "--cert", s.CAFile, "--key", keyFile, "--mode", mode,
		"--user", s.User, "--password", s.Password, "--out", s.Dir}
	for _, e := range exclude {
		args = append(args, "--exclude", e)
	}
	cmd := exec.Command(debianPython, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("smtpd.py: %v (python3-aiosmtpd is installed by .ci/run)", err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "READY" {
			tb.Fatalf("smtpd.py did not start: %q (is python3-aiosmtpd installed?)", line)
		}
	case <-time.After(20 * time.Second):
		tb.Fatal("smtpd.py did not start within 20s")
	}
	return s
}

// Message returns the n-th message accepted (from 1).
func (s *SMTPServer) Message(tb testing.TB, n int) SMTPMessage {
	tb.Helper()
	base := filepath.Join(s.Dir, strconv.Itoa(n))
	var m SMTPMessage
	meta, err := os.ReadFile(base + ".json")
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(meta, &m); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Open(base + ".eml") // renamed into place after .json
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	if m.Msg, err = mail.ReadMessage(f); err != nil {
		tb.Fatal(err)
	}
	return m
}

// Count is the number of messages accepted so far.
func (s *SMTPServer) Count() int {
	ms, _ := filepath.Glob(filepath.Join(s.Dir, "*.eml"))
	return len(ms)
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func selfSigned(tb testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "smtp-cert.pem"), filepath.Join(dir, "smtp-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		tb.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// findUp returns rel under the working directory or the nearest parent
// that has it.
func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New(rel + " not found above the working directory")
		}
		dir = parent
	}
}
