package elasticsearch

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"
)

// Config configures the sink. Zero values take the defaults below.
type Config struct {
	// URLs of the Elasticsearch nodes, e.g. https://es:9200.
	URLs []string
	// Username and Password for basic authentication; APIKey (base64 "id:key")
	// takes precedence over them.
	Username, Password, APIKey string
	// CAFile is a PEM file of certificate authorities to trust.
	CAFile        string
	TLSSkipVerify bool

	// A bulk request is sent when it holds FlushBytes bytes or FlushEvents
	// events; else as soon as no more events are expected soon (no Write
	// is preparing events and none are queued) and a request slot is free;
	// and FlushInterval after its first event at the latest, however many
	// Writes are still preparing. While all MaxConcurrentRequests slots
	// are busy, the request grows.
	FlushBytes    int
	FlushEvents   int
	FlushInterval time.Duration
	// MaxConcurrentRequests bounds the bulk requests in flight.
	MaxConcurrentRequests int

	// Retries wait between RetryInitial and RetryMax (see backoff).
	RetryInitial, RetryMax time.Duration

	// DeadLetterDataStream receives the documents Elasticsearch rejects for
	// good. Default "logs-ferry.deadletter-default".
	DeadLetterDataStream string
	// Retention is the data stream lifecycle's data_retention; 0 keeps
	// data forever.
	Retention time.Duration
	// SetupTemplates makes the first Write install the templates (Setup),
	// and each data stream be checked before its first write: see
	// TemplateConflict.
	SetupTemplates bool
	// TemplateConflict is what happens to the events of a data stream
	// that another index template governs instead of Ferry's (one that
	// outranks Ferry's, or one for a dataset Ferry has no template for):
	// ConflictError (the default) refuses them, retryably, naming the
	// template; ConflictWarn writes them after one warning.
	TemplateConflict string
}

// Defaults, the same as the config package's.
const (
	DefaultFlushBytes            = 5 << 20
	DefaultFlushEvents           = 5000
	DefaultFlushInterval         = time.Second
	DefaultMaxConcurrentRequests = 2
	DefaultRetryInitial          = 200 * time.Millisecond
	DefaultRetryMax              = 30 * time.Second
	DefaultDeadLetterDataStream  = "logs-ferry.deadletter-default"
)

// withDefaults returns c with zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.FlushBytes == 0 {
		c.FlushBytes = DefaultFlushBytes
	}
	if c.FlushEvents == 0 {
		c.FlushEvents = DefaultFlushEvents
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxConcurrentRequests == 0 {
		c.MaxConcurrentRequests = DefaultMaxConcurrentRequests
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = DefaultRetryInitial
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.DeadLetterDataStream == "" {
		c.DeadLetterDataStream = DefaultDeadLetterDataStream
	}
	if c.TemplateConflict == "" {
		c.TemplateConflict = ConflictError
	}
	return c
}

// Validate reports the first invalid field, by name. It checks the values
// as given; zero values are valid (they take the defaults).
func (c Config) Validate() error {
	if len(c.URLs) == 0 {
		return errors.New("elasticsearch: urls: at least one URL is required")
	}
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("elasticsearch: urls[%d]: want http(s)://host[:port], got %q", i, redactURL(raw))
		}
	}
	switch {
	case c.FlushBytes < 0:
		return errors.New("elasticsearch: flush_bytes: must not be negative")
	case c.FlushEvents < 0:
		return errors.New("elasticsearch: flush_events: must not be negative")
	case c.FlushInterval < 0:
		return errors.New("elasticsearch: flush_interval: must not be negative")
	case c.MaxConcurrentRequests < 0:
		return errors.New("elasticsearch: max_concurrent_requests: must not be negative")
	case c.RetryInitial < 0 || c.RetryMax < 0:
		return errors.New("elasticsearch: retry_initial, retry_max: must not be negative")
	case c.RetryInitial > 0 && c.RetryMax > 0 && c.RetryMax < c.RetryInitial:
		return errors.New("elasticsearch: retry_max: must not be below retry_initial")
	case c.Retention < 0:
		return errors.New("elasticsearch: retention: must not be negative")
	case c.Retention > 0 && c.Retention < 24*time.Hour:
		return errors.New("elasticsearch: retention: must be at least one day (1d)")
	case c.TemplateConflict != "" && c.TemplateConflict != ConflictError && c.TemplateConflict != ConflictWarn:
		return fmt.Errorf("elasticsearch: template_conflict: want error or warn, got %q", c.TemplateConflict)
	}
	if c.DeadLetterDataStream != "" {
		if _, _, _, err := splitDataStream(c.DeadLetterDataStream); err != nil {
			return fmt.Errorf("elasticsearch: dead_letter_data_stream: %w", err)
		}
		if !coveredByTemplates(c.DeadLetterDataStream) {
			return fmt.Errorf("elasticsearch: dead_letter_data_stream: %q matches none of Ferry's index templates (e.g. logs-ferry.deadletter-<namespace>)", c.DeadLetterDataStream)
		}
	}
	return nil
}

// splitDataStream splits "type-dataset-namespace".
func splitDataStream(name string) (typ, dataset, namespace string, err error) {
	parts := strings.Split(name, "-")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" || (parts[0] != "logs" && parts[0] != "metrics") {
		return "", "", "", fmt.Errorf("%q is not logs|metrics-{dataset}-{namespace}", name)
	}
	if strings.ToLower(name) != name {
		return "", "", "", fmt.Errorf("%q must be lower case", name)
	}
	return parts[0], parts[1], parts[2], nil
}

// coveredByTemplates reports whether Ferry's index templates make name a
// data stream.
func coveredByTemplates(name string) bool {
	for _, t := range indexTemplates {
		for _, p := range t.patterns {
			if ok, _ := path.Match(p, name); ok {
				return true
			}
		}
	}
	return false
}

// redactURL hides the password of a URL with user info, for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}
