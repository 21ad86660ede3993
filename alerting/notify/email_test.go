package notify

import (
	"context"
	"crypto/tls"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
	ferryharness "github.com/ferrylogs/ferry/test/harness"
)

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
			srv := ferryharness.StartSMTP(t, tc.mode, tc.exclude...)
			addr, pool := srv.Addr, srv.Pool
			tlsMode := "starttls"
			if tc.mode == "tls" {
				tlsMode = "tls"
			}
			e := &Email{Smarthost: addr, From: "Ferry <ferry@example.org>", To: []string{"ops@example.org", "oncall@example.org"},
				Username: srv.User, Password: srv.Password, TLS: tlsMode, TLSConfig: &tls.Config{RootCAs: pool}}
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

			m1, m2 := srv.Message(t, 1), srv.Message(t, 2)
			if !m1.TLS || m1.Auth != tc.wantAuth {
				t.Errorf("session tls=%v auth=%q: want encrypted, %s", m1.TLS, m1.Auth, tc.wantAuth)
			}
			if m1.MailFrom != "ferry@example.org" || strings.Join(m1.RcptTos, ",") != "ops@example.org,oncall@example.org" {
				t.Errorf("envelope from %q to %v", m1.MailFrom, m1.RcptTos)
			}
			h := m1.Msg.Header
			if h.Get("Subject") != "[FIRING:1] ErrorBurst" || h.Get("To") != "ops@example.org, oncall@example.org" {
				t.Errorf("subject %q to %q", h.Get("Subject"), h.Get("To"))
			}
			if h.Get("Message-Id") != "<ferry-n1@example.org>" || h.Get("In-Reply-To") != "" {
				t.Errorf("first: Message-Id %q In-Reply-To %q", h.Get("Message-Id"), h.Get("In-Reply-To"))
			}
			h2 := m2.Msg.Header
			if h2.Get("Message-Id") != "<ferry-n2@example.org>" || h2.Get("In-Reply-To") != "<ferry-n1@example.org>" || h2.Get("References") != "<ferry-n1@example.org>" {
				t.Errorf("second: Message-Id %q In-Reply-To %q References %q: want it threaded on the first", h2.Get("Message-Id"), h2.Get("In-Reply-To"), h2.Get("References"))
			}
			if h2.Get("Subject") != "[RESOLVED] ErrorBurst" {
				t.Errorf("second subject %q", h2.Get("Subject"))
			}
			text, html := parts(t, m1.Msg)
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
	srv := ferryharness.StartSMTP(t, "starttls")
	addr, pool := srv.Addr, srv.Pool
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
