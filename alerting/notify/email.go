package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// Email sends notices over SMTP: STARTTLS (required) by default, implicit
// TLS ("tls", usual on port 465) or none; PLAIN or LOGIN authentication,
// whichever the server offers (PLAIN first), only over TLS or to
// localhost. The message has a text and an HTML part, a Message-Id, and
// In-Reply-To and References naming the group's first notice, so mail
// readers thread a group's notices together.
type Email struct {
	Smarthost string // host:port
	From      string
	To        []string
	Username  string
	Password  string
	TLS       string      // starttls (default), tls, none
	TLSConfig *tls.Config // nil: system roots, server name from Smarthost
	Timeout   time.Duration
	Now       func() time.Time
}

// Send delivers n to every recipient in one transaction and returns the
// server's answer to the message.
func (e *Email) Send(ctx context.Context, n *Notice) (string, error) {
	host, _, err := net.SplitHostPort(e.Smarthost)
	if err != nil {
		return "", &SendError{Err: fmt.Errorf("smarthost %q: %w", e.Smarthost, err)}
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tc := e.TLSConfig
	if tc == nil {
		tc = &tls.Config{}
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	d := &net.Dialer{}
	var conn net.Conn
	if e.TLS == "tls" {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", e.Smarthost)
	} else {
		conn, err = d.DialContext(ctx, "tcp", e.Smarthost)
	}
	if err != nil {
		return "", &SendError{Err: fmt.Errorf("smtp %s: %w", e.Smarthost, err), Retry: true}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return "", smtpError(e.Smarthost, "greeting", err)
	}
	defer c.Close()
	answer, err := e.transact(c, n, tc)
	if err != nil {
		return "", err
	}
	_ = c.Quit()
	return answer, nil
}

func (e *Email) transact(c *smtp.Client, n *Notice, tc *tls.Config) (string, error) {
	name, _ := os.Hostname()
	if name == "" {
		name = "localhost"
	}
	if err := c.Hello(name); err != nil {
		return "", smtpError(e.Smarthost, "EHLO", err)
	}
	if e.TLS == "" || e.TLS == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return "", &SendError{Err: fmt.Errorf("smtp %s: the server does not offer STARTTLS (set tls: none to send in clear)", e.Smarthost)}
		}
		if err := c.StartTLS(tc); err != nil {
			return "", smtpError(e.Smarthost, "STARTTLS", err)
		}
	}
	if e.Username != "" {
		ok, mechs := c.Extension("AUTH")
		if !ok {
			return "", &SendError{Err: fmt.Errorf("smtp %s: the server does not offer AUTH", e.Smarthost)}
		}
		var a smtp.Auth
		switch list := strings.Fields(strings.ToUpper(mechs)); {
		case contains(list, "PLAIN"):
			a = smtp.PlainAuth("", e.Username, e.Password, tc.ServerName)
		case contains(list, "LOGIN"):
			a = &loginAuth{user: e.Username, pass: e.Password}
		default:
			return "", &SendError{Err: fmt.Errorf("smtp %s: the server offers neither PLAIN nor LOGIN authentication (%s)", e.Smarthost, mechs)}
		}
		if err := c.Auth(a); err != nil {
			return "", smtpError(e.Smarthost, "AUTH", err)
		}
	}
	msg, err := e.message(n)
	if err != nil {
		return "", err
	}
	from := e.From
	if a, err := mail.ParseAddress(e.From); err == nil {
		from = a.Address // "Ferry <ferry@example.org>": the envelope takes the address
	}
	if err := c.Mail(from); err != nil {
		return "", smtpError(e.Smarthost, "MAIL FROM", err)
	}
	for _, to := range e.To {
		if err := c.Rcpt(to); err != nil {
			return "", smtpError(e.Smarthost, "RCPT TO "+to, err)
		}
	}
	// DATA by hand, to return the server's answer to the message.
	id, err := c.Text.Cmd("DATA")
	if err != nil {
		return "", smtpError(e.Smarthost, "DATA", err)
	}
	c.Text.StartResponse(id)
	_, _, err = c.Text.ReadResponse(354)
	c.Text.EndResponse(id)
	if err != nil {
		return "", smtpError(e.Smarthost, "DATA", err)
	}
	w := c.Text.DotWriter()
	if _, err := w.Write(msg); err != nil {
		return "", smtpError(e.Smarthost, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return "", smtpError(e.Smarthost, "DATA", err)
	}
	code, text, err := c.Text.ReadResponse(250)
	if err != nil {
		return "", smtpError(e.Smarthost, "end of DATA", err)
	}
	return fmt.Sprintf("%d %s", code, oneLine(text, 200)), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// smtpError: a 4xx answer or a broken connection may pass; a 5xx answer
// will not.
func smtpError(host, step string, err error) error {
	var te *textproto.Error
	retry := true
	if errors.As(err, &te) && te.Code >= 500 {
		retry = false
	}
	return &SendError{Err: fmt.Errorf("smtp %s: %s: %w", host, step, err), Retry: retry}
}

// loginAuth is the LOGIN mechanism (the server prompts "Username:" and
// "Password:"); like smtp.PlainAuth it refuses to send a password in
// clear except to localhost.
type loginAuth struct{ user, pass string }

func (a *loginAuth) Start(si *smtp.ServerInfo) (string, []byte, error) {
	if !si.TLS && si.Name != "localhost" && si.Name != "127.0.0.1" && si.Name != "::1" {
		return "", nil, errors.New("unencrypted connection")
	}
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(from []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch p := strings.ToLower(strings.TrimSpace(string(from))); {
	case strings.HasPrefix(p, "user"):
		return []byte(a.user), nil
	case strings.HasPrefix(p, "pass"):
		return []byte(a.pass), nil
	default:
		return nil, fmt.Errorf("unexpected LOGIN prompt %q", p)
	}
}

// messageID is the Message-Id of the notice with id, in the From domain.
func (e *Email) messageID(id string) string {
	domain := "ferry.local"
	if i := strings.LastIndexByte(e.From, '@'); i >= 0 {
		domain = strings.Trim(e.From[i+1:], "> ")
	}
	return "<ferry-" + id + "@" + domain + ">"
}

// message renders n as a MIME message with text and HTML parts.
func (e *Email) message(n *Notice) ([]byte, error) {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	text, html := emailBodies(n)
	for _, p := range []struct{ typ, content string }{{"text/plain", text}, {"text/html", html}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {p.typ + "; charset=UTF-8"}, "Content-Transfer-Encoding": {"quoted-printable"}})
		if err != nil {
			return nil, err
		}
		if err := writeQP(w, p.content); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	var m bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&m, "%s: %s\r\n", k, v) }
	h("From", e.From)
	h("To", strings.Join(e.To, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", n.title()))
	h("Date", now().Format(time.RFC1123Z))
	h("Message-Id", e.messageID(n.ID))
	if n.Thread != "" && n.Thread != n.ID {
		h("In-Reply-To", e.messageID(n.Thread))
		h("References", e.messageID(n.Thread))
	}
	h("X-Ferry-Group-Key", mime.QEncoding.Encode("utf-8", n.GroupKey))
	h("MIME-Version", "1.0")
	h("Content-Type", "multipart/alternative; boundary="+mw.Boundary())
	m.WriteString("\r\n")
	m.Write(body.Bytes())
	return m.Bytes(), nil
}

var emailHTML = template.Must(template.New("mail").Parse(`<!DOCTYPE html>
<html><body style="font-family:sans-serif">
<h2 style="color:{{.Colour}}">{{.Title}}</h2>
{{range .Alerts}}<div style="border-left:4px solid {{$.Colour}};padding-left:8px;margin-bottom:12px">
<p><b>{{.State}}</b> {{.Summary}}</p>
{{if .Description}}<p>{{.Description}}</p>{{end}}
<p style="color:#555">{{range .Labels}}<code>{{.}}</code> {{end}}</p>
{{if .Evidence}}<pre>{{range .Evidence}}{{.}}
{{end}}</pre>{{end}}
{{if .Link}}<p><a href="{{.Link}}">Open in Kibana</a></p>{{end}}
</div>{{end}}
</body></html>
`))

type mailAlert struct {
	State, Summary, Description, Link string
	Labels, Evidence                  []string
}

// emailBodies renders the text and HTML parts of n.
func emailBodies(n *Notice) (string, string) {
	var t strings.Builder
	t.WriteString(n.title() + "\n\n")
	var as []mailAlert
	for _, a := range n.Alerts {
		ma := mailAlert{State: strings.ToUpper(string(a.State)), Summary: oneLine(a.Annotations["summary"], 300),
			Description: oneLine(a.Annotations["description"], 1000), Link: a.GeneratorURL, Evidence: evidenceLines(a.Evidence)}
		if ma.Summary == "" {
			ma.Summary = a.Labels["alertname"]
		}
		if f := a.Annotations["flapping"]; f != "" {
			ma.Description = strings.TrimSpace(ma.Description + " Flapping: " + f)
		}
		for _, k := range sortedKeys(a.Labels) {
			ma.Labels = append(ma.Labels, k+"="+oneLine(a.Labels[k], 80))
		}
		as = append(as, ma)
		fmt.Fprintf(&t, "%s %s\n", ma.State, ma.Summary)
		if ma.Description != "" {
			t.WriteString(ma.Description + "\n")
		}
		t.WriteString("Labels: " + strings.Join(ma.Labels, ", ") + "\n")
		for _, l := range ma.Evidence {
			t.WriteString(l + "\n")
		}
		if ma.Link != "" {
			t.WriteString("Kibana: " + ma.Link + "\n")
		}
		t.WriteString("\n")
	}
	colour := slackColours[n.severity()]
	if colour == "" || n.Status == "resolved" {
		colour = slackResolved
	}
	var h strings.Builder
	_ = emailHTML.Execute(&h, map[string]any{"Title": n.title(), "Colour": colour, "Alerts": as})
	return t.String(), h.String()
}

// writeQP writes s quoted-printable with CRLF line ends.
func writeQP(w interface{ Write([]byte) (int, error) }, s string) error {
	q := quotedprintable.NewWriter(w)
	if _, err := q.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))); err != nil {
		return err
	}
	return q.Close()
}
