package notify

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
)

// testCert writes a self-signed certificate for 127.0.0.1 and returns its
// files and a pool that trusts it.
func testCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// smtpServer runs testdata/smtpd.py (aiosmtpd, Debian's python3-aiosmtpd)
// and returns its address and the directory it writes messages to.
func smtpServer(t *testing.T, mode string, exclude ...string) (addr, out string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	cert, key, pool := testCert(t, dir)
	out = filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	args := []string{"testdata/smtpd.py", "--port", strconv.Itoa(port), "--cert", cert, "--key", key, "--mode", mode,
		"--user", "ferry", "--password", "pa55 word", "--out", out}
	for _, e := range exclude {
		args = append(args, "--exclude", e)
	}
	// Debian's python3: python3-aiosmtpd is installed for it, not for a
	// python3 that may come first in PATH (pyenv).
	cmd := exec.Command(debianPython, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "READY" {
			t.Fatalf("smtpd.py: %q (is python3-aiosmtpd installed?)", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("smtpd.py did not start")
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), out, pool
}

const debianPython = "/usr/bin/python3"

type received struct {
	msg  *mail.Message
	raw  []byte
	meta struct {
		MailFrom string   `json:"mail_from"`
		RcptTos  []string `json:"rcpt_tos"`
		TLS      bool     `json:"tls"`
		Auth     string   `json:"auth"`
	}
}

func readMessage(t *testing.T, out string, n int) received {
	t.Helper()
	var r received
	raw, err := os.ReadFile(filepath.Join(out, strconv.Itoa(n)+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	r.raw = raw
	meta, err := os.ReadFile(filepath.Join(out, strconv.Itoa(n)+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(meta, &r.meta); err != nil {
		t.Fatal(err)
	}
	if r.msg, err = mail.ReadMessage(strings.NewReader(string(raw))); err != nil {
		t.Fatal(err)
	}
	return r
}

// parts returns the text and HTML parts of a multipart/alternative message.
func parts(t *testing.T, m *mail.Message) (text, html string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: want multipart/alternative", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	return text, html
}

func TestEmailRealSMTP(t *testing.T) {
	for _, tc := range []struct {
		name, mode, wantAuth string
		exclude              []string
	}{
		{name: "starttls plain", mode: "starttls", wantAuth: "PLAIN"},
		{name: "starttls login", mode: "starttls", wantAuth: "LOGIN", exclude: []string{"PLAIN"}},
		{name: "implicit tls", mode: "tls", wantAuth: "PLAIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, out, pool := smtpServer(t, tc.mode, tc.exclude...)
			tlsMode := "starttls"
			if tc.mode == "tls" {
				tlsMode = "tls"
			}
			e := &Email{Smarthost: addr, From: "Ferry <ferry@example.org>", To: []string{"ops@example.org", "oncall@example.org"},
				Username: "ferry", Password: "pa55 word", TLS: tlsMode, TLSConfig: &tls.Config{RootCAs: pool}}
			first := &Notice{ID: "n1", Thread: "n1", Receiver: "mail", GroupKey: `0:mail:{alertname="ErrorBurst"}`, Status: "firing",
				GroupLabels: map[string]string{"alertname": "ErrorBurst"},
				Alerts: []alert.Alert{{
					Labels:      map[string]string{"alertname": "ErrorBurst", "service.name": "api", "severity": "critical"},
					Annotations: map[string]string{"summary": "73 errors in 5m"}, State: alert.Firing, Value: 73,
					StartsAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), GeneratorURL: "http://kibana:5601/app/discover#/x",
					Evidence: alert.Evidence{TopMessages: []alert.Count{{Key: "ERROR db timeout\n\tat stack", Count: 40}}, ErrorLines: 73},
				}}}
			answer, err := e.Send(context.Background(), first)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(answer, "250 Message accepted for delivery as 1") {
				t.Errorf("answer %q: want the server's 250 line", answer)
			}
			second := *first
			second.ID, second.Status = "n2", "resolved"
			second.Alerts = []alert.Alert{first.Alerts[0]}
			second.Alerts[0].State, second.Alerts[0].EndsAt = alert.Resolved, time.Date(2026, 1, 2, 3, 14, 5, 0, time.UTC)
			if _, err := e.Send(context.Background(), &second); err != nil {
				t.Fatal(err)
			}

			m1, m2 := readMessage(t, out, 1), readMessage(t, out, 2)
			if !m1.meta.TLS || m1.meta.Auth != tc.wantAuth {
				t.Errorf("session tls=%v auth=%q: want encrypted, %s", m1.meta.TLS, m1.meta.Auth, tc.wantAuth)
			}
			if m1.meta.MailFrom != "ferry@example.org" || strings.Join(m1.meta.RcptTos, ",") != "ops@example.org,oncall@example.org" {
				t.Errorf("envelope %+v", m1.meta)
			}
			h := m1.msg.Header
			if h.Get("Subject") != "[FIRING:1] ErrorBurst" || h.Get("To") != "ops@example.org, oncall@example.org" {
				t.Errorf("subject %q to %q", h.Get("Subject"), h.Get("To"))
			}
			if h.Get("Message-Id") != "<ferry-n1@example.org>" || h.Get("In-Reply-To") != "" {
				t.Errorf("first: Message-Id %q In-Reply-To %q", h.Get("Message-Id"), h.Get("In-Reply-To"))
			}
			h2 := m2.msg.Header
			if h2.Get("Message-Id") != "<ferry-n2@example.org>" || h2.Get("In-Reply-To") != "<ferry-n1@example.org>" || h2.Get("References") != "<ferry-n1@example.org>" {
				t.Errorf("second: Message-Id %q In-Reply-To %q References %q: want it threaded on the first", h2.Get("Message-Id"), h2.Get("In-Reply-To"), h2.Get("References"))
			}
			if h2.Get("Subject") != "[RESOLVED] ErrorBurst" {
				t.Errorf("second subject %q", h2.Get("Subject"))
			}
			text, html := parts(t, m1.msg)
			for _, want := range []string{"FIRING 73 errors in 5m", "service.name=api", "40 × ERROR db timeout…", "Error lines in the window: 73", "Kibana: http://kibana:5601/app/discover#/x"} {
				if !strings.Contains(text, want) {
					t.Errorf("text part lacks %q:\n%s", want, text)
				}
			}
			if !strings.Contains(html, `<a href="http://kibana:5601/app/discover#/x">Open in Kibana</a>`) || !strings.Contains(html, "73 errors in 5m") {
				t.Errorf("html part:\n%s", html)
			}
		})
	}
}

func TestEmailRefusals(t *testing.T) {
	addr, _, pool := smtpServer(t, "starttls")
	n := &Notice{ID: "x", Thread: "x", Status: "firing", Alerts: []alert.Alert{{Labels: map[string]string{"alertname": "A"}, State: alert.Firing}}}
	// Wrong password: the server's 535 is permanent.
	e := &Email{Smarthost: addr, From: "ferry@example.org", To: []string{"ops@example.org"}, Username: "ferry", Password: "wrong", TLSConfig: &tls.Config{RootCAs: pool}}
	_, err := e.Send(context.Background(), n)
	if retry, _ := retryable(err); err == nil || retry || !strings.Contains(err.Error(), "535") {
		t.Errorf("wrong password: %v (retry %v), want a permanent 535", err, retry)
	}
	// An untrusted certificate fails the STARTTLS handshake.
	e = &Email{Smarthost: addr, From: "ferry@example.org", To: []string{"ops@example.org"}, Username: "ferry", Password: "pa55 word"}
	if _, err := e.Send(context.Background(), n); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("untrusted certificate: %v", err)
	}
}
