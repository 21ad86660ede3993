package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
)

// Slack posts to a Slack incoming webhook: Block Kit blocks (title, each
// alert's summary, labels and evidence, the Kibana link) inside an
// attachment coloured by severity, and a text fallback for notifications.
type Slack struct {
	WebhookURL string // a secret: never logged
	Channel    string // optional override
	Client     *http.Client
	Now        func() time.Time
}

// Colours by severity of the firing alerts; green once resolved.
var slackColours = map[string]string{"critical": "#d00000", "error": "#e01e5a", "warning": "#daa038", "info": "#439fe0", "": "#808080"}

const slackResolved = "#2eb886"

// maxSlackAlerts is how many alerts a Slack message details; Slack allows
// 50 blocks per message.
const maxSlackAlerts = 10

func slackMessage(n *Notice) map[string]any {
	title := n.title()
	colour := slackColours[n.severity()]
	if colour == "" {
		colour = slackColours[""]
	}
	if n.Status == "resolved" {
		colour = slackResolved
	}
	var blocks []map[string]any
	for i, a := range n.Alerts {
		if i == maxSlackAlerts {
			blocks = append(blocks, mrkdwn(fmt.Sprintf("_and %d more_", len(n.Alerts)-maxSlackAlerts)))
			break
		}
		blocks = append(blocks, alertBlocks(a)...)
	}
	msg := map[string]any{
		"text": title,
		"blocks": []map[string]any{
			{"type": "header", "text": map[string]any{"type": "plain_text", "text": oneLine(title, 149)}},
		},
		"attachments": []map[string]any{{"color": colour, "fallback": title, "blocks": blocks}},
	}
	return msg
}

func mrkdwn(s string) map[string]any {
	return map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": s}}
}

// alertBlocks: summary, labels, evidence (each entry one line) and the
// Kibana link of one alert.
func alertBlocks(a alert.Alert) []map[string]any {
	var b strings.Builder
	state := "FIRING"
	if a.State == alert.Resolved {
		state = "RESOLVED"
	}
	summary := a.Annotations["summary"]
	if summary == "" {
		summary = a.Labels["alertname"]
	}
	fmt.Fprintf(&b, "*%s* %s", state, slackEscape(oneLine(summary, 300)))
	if d := a.Annotations["description"]; d != "" {
		fmt.Fprintf(&b, "\n%s", slackEscape(oneLine(d, 500)))
	}
	if f := a.Annotations["flapping"]; f != "" {
		fmt.Fprintf(&b, "\n:warning: flapping: %s", slackEscape(f))
	}
	var labels []string
	for _, k := range sortedKeys(a.Labels) {
		labels = append(labels, fmt.Sprintf("`%s=%s`", k, slackEscape(oneLine(a.Labels[k], 80))))
	}
	blocks := []map[string]any{mrkdwn(b.String()), {"type": "context", "elements": []map[string]any{{"type": "mrkdwn", "text": strings.Join(labels, " ")}}}}
	if ev := evidenceLines(a.Evidence); len(ev) > 0 {
		blocks = append(blocks, mrkdwn(slackEscape(strings.Join(ev, "\n"))))
	}
	if a.GeneratorURL != "" {
		blocks = append(blocks, map[string]any{"type": "actions", "elements": []map[string]any{{
			"type": "button", "text": map[string]any{"type": "plain_text", "text": "Open in Kibana"}, "url": a.GeneratorURL,
		}}})
	}
	return blocks
}

// evidenceLines renders what the window showed, each entry cut to one line.
func evidenceLines(e alert.Evidence) []string {
	var out []string
	if len(e.TopMessages) > 0 {
		out = append(out, "Top messages:")
		for _, c := range e.TopMessages {
			out = append(out, fmt.Sprintf("  %d × %s", c.Count, oneLine(c.Key, 160)))
		}
	}
	if len(e.TopContributors) > 0 {
		out = append(out, "Top contributors:")
		for _, c := range e.TopContributors {
			v := fmt.Sprintf("%d", c.Count)
			if c.Value != 0 {
				v = fmt.Sprintf("%.4g", c.Value)
			}
			out = append(out, fmt.Sprintf("  %s: %s", oneLine(c.Key, 120), v))
		}
	}
	if e.ErrorLines > 0 {
		out = append(out, fmt.Sprintf("Error lines in the window: %d", e.ErrorLines))
	}
	return out
}

func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Send posts n to the webhook.
func (s *Slack) Send(ctx context.Context, n *Notice) (string, error) {
	msg := slackMessage(n)
	if s.Channel != "" {
		msg["channel"] = s.Channel
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return "", err
	}
	return postJSON(ctx, s.Client, s.WebhookURL, "", body, s.Now)
}

// stripURL removes the URL from a client error: Slack's URL is a secret.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
