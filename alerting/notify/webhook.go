package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ferrylogs/ferry/alerting/alert"
)

// Webhook posts Alertmanager's webhook payload (version 4), so receivers
// written for Alertmanager work unchanged.
type Webhook struct {
	URL         string
	BearerToken string
	Client      *http.Client // nil: a client with a 30s timeout
	Now         func() time.Time
}

// WebhookMessage is Alertmanager's webhook payload.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// webhookMessage builds the payload of n.
func webhookMessage(n *Notice) WebhookMessage {
	m := WebhookMessage{
		Version: "4", GroupKey: n.GroupKey, Status: n.Status, Receiver: n.Receiver,
		GroupLabels: nonNil(n.GroupLabels), CommonLabels: commonLabels(n.Alerts), CommonAnnotations: commonAnnotations(n.Alerts),
		ExternalURL: n.ExternalURL, Alerts: []WebhookAlert{},
	}
	for _, a := range n.Alerts {
		status := "firing"
		if a.State == alert.Resolved {
			status = "resolved"
		}
		m.Alerts = append(m.Alerts, WebhookAlert{
			Status: status, Labels: nonNil(a.Labels), Annotations: nonNil(a.Annotations),
			StartsAt: a.StartsAt.UTC(), EndsAt: a.EndsAt.UTC(), GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint(),
		})
	}
	return m
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Send posts n.
func (w *Webhook) Send(ctx context.Context, n *Notice) (string, error) {
	body, err := json.Marshal(webhookMessage(n))
	if err != nil {
		return "", err
	}
	return postJSON(ctx, w.Client, w.URL, w.BearerToken, body, w.Now)
}

// postJSON posts body and returns httpResult's verdict. Errors never name
// the URL, which may be a secret (Slack's).
func postJSON(ctx context.Context, c *http.Client, url, bearer string, body []byte, now func() time.Time) (string, error) {
	if c == nil {
		c = defaultClient
	}
	if now == nil {
		now = time.Now
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", &SendError{Err: fmt.Errorf("bad receiver URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ferry-aggregator")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", &SendError{Err: fmt.Errorf("post: %w", stripURL(err)), Retry: true}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return httpResult(resp, b, now())
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}
