package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
)

// Notice is one message to one receiver about one group: what the outbox
// keeps until the receiver took it.
type Notice struct {
	ID          string            `json:"id"`
	Receiver    string            `json:"receiver"`
	GroupKey    string            `json:"group_key"`
	GroupLabels map[string]string `json:"group_labels"`
	// Status is "firing" when any alert fires, else "resolved".
	Status string `json:"status"`
	// Flapping: a notice that the alerts change state too often; they are
	// quiet until stable.
	Flapping    bool          `json:"flapping,omitempty"`
	Alerts      []alert.Alert `json:"alerts"`
	ExternalURL string        `json:"external_url,omitempty"`
	// Thread is the ID of the group's first notice to this receiver (email
	// threads on it); equal to ID for the first one.
	Thread      string    `json:"thread"`
	Created     time.Time `json:"created"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
}

// Notifier sends notices to one receiver.
type Notifier interface {
	// Send delivers n once and returns what the receiver answered, in one
	// line. A failure that a later attempt may cure is a *SendError with
	// Retry set.
	Send(ctx context.Context, n *Notice) (string, error)
}

// SendError is a failed delivery.
type SendError struct {
	Err error
	// Retry: a later attempt may succeed (network error, 5xx, 429).
	Retry bool
	// RetryAfter is the receiver's Retry-After, 0 when it gave none.
	RetryAfter time.Duration
}

func (e *SendError) Error() string { return e.Err.Error() }
func (e *SendError) Unwrap() error { return e.Err }

// retryable reports whether err may be cured by a later attempt, and after
// how long the receiver asked to wait.
func retryable(err error) (bool, time.Duration) {
	var se *SendError
	if errors.As(err, &se) {
		return se.Retry, se.RetryAfter
	}
	return true, 0
}

// httpResult turns an HTTP answer into Send's result: the status and the
// first line of the body, and a *SendError unless 2xx.
func httpResult(resp *http.Response, body []byte, now time.Time) (string, error) {
	line := resp.Status
	if b := oneLine(string(body), 200); b != "" {
		line += ": " + b
	}
	if resp.StatusCode/100 == 2 {
		return line, nil
	}
	err := &SendError{Err: fmt.Errorf("%s", line)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode/100 == 5, resp.StatusCode == http.StatusRequestTimeout:
		err.Retry = true
		err.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return line, err
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// oneLine cuts s to its first line of at most n runes, marking a cut with …
func oneLine(s string, n int) string {
	s = strings.TrimSpace(s)
	cut := false
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s, cut = strings.TrimSpace(s[:i]), true
	}
	if r := []rune(s); len(r) > n {
		s, cut = string(r[:n]), true
	}
	if cut {
		s += "…"
	}
	return s
}

// firing returns the alerts of n that fire.
func (n *Notice) firing() []alert.Alert {
	var out []alert.Alert
	for _, a := range n.Alerts {
		if a.State != alert.Resolved {
			out = append(out, a)
		}
	}
	return out
}

// title is the one-line summary of n: status, count and the common
// alert name with the group's values, as Alertmanager's default subject.
func (n *Notice) title() string {
	status := strings.ToUpper(n.Status)
	if n.Flapping {
		status = "FLAPPING"
	}
	t := fmt.Sprintf("[%s", status)
	if n.Status == "firing" && !n.Flapping {
		t += fmt.Sprintf(":%d", len(n.firing()))
	}
	t += "] "
	common := commonLabels(n.Alerts)
	if name := common["alertname"]; name != "" {
		t += name
	} else {
		t += "alerts"
	}
	var vals []string
	for _, k := range sortedKeys(n.GroupLabels) {
		if k != "alertname" {
			vals = append(vals, n.GroupLabels[k])
		}
	}
	if len(vals) > 0 {
		t += " (" + strings.Join(vals, " ") + ")"
	}
	return t
}

// severity is the highest severity label among the firing alerts of n.
func (n *Notice) severity() string {
	rank := map[string]int{"critical": 3, "error": 2, "warning": 1, "info": 0}
	best, br := "", -1
	for _, a := range n.firing() {
		s := a.Labels["severity"]
		if r, ok := rank[s]; ok && r > br {
			best, br = s, r
		} else if !ok && br < 0 && s != "" {
			best = s
		}
	}
	return best
}

// commonLabels returns the label pairs every alert has.
func commonLabels(as []alert.Alert) map[string]string {
	return common(as, func(a alert.Alert) map[string]string { return a.Labels })
}

func commonAnnotations(as []alert.Alert) map[string]string {
	return common(as, func(a alert.Alert) map[string]string { return a.Annotations })
}

func common(as []alert.Alert, of func(alert.Alert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(as) == 0 {
		return out
	}
	for k, v := range of(as[0]) {
		out[k] = v
	}
	for _, a := range as[1:] {
		m := of(a)
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}
