package elasticsearch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	es "github.com/elastic/go-elasticsearch/v8"
)

// requestTimeout bounds one HTTP request; a bulk that takes longer is
// treated as failed and retried (its items are idempotent).
const requestTimeout = 60 * time.Second

// newClient builds the Elasticsearch client and its HTTP transport. It does
// not contact the cluster.
func newClient(cfg Config) (*es.Client, *http.Transport, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.TLSSkipVerify} //nolint:gosec // opt-in
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("elasticsearch: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("elasticsearch: ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   cfg.MaxConcurrentRequests + 2,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
		ForceAttemptHTTP2:     false, // Elasticsearch speaks HTTP/1.1
	}
	c, err := es.NewClient(es.Config{
		Addresses:         cfg.URLs,
		Username:          cfg.Username,
		Password:          cfg.Password,
		APIKey:            cfg.APIKey,
		Transport:         tr,
		DisableRetry:      true, // the sink retries itself, per item, with backoff
		DisableMetaHeader: true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("elasticsearch: client: %w", err)
	}
	return c, tr, nil
}

// response is a finished HTTP exchange: status and the whole body.
type response struct {
	status int
	body   []byte
}

// errorSummary returns "type: reason" of an Elasticsearch error body, or a
// prefix of the body.
func (r response) errorSummary() string {
	if t, reason := parseError(r.body); t != "" {
		return t + ": " + reason
	}
	b := r.body
	if len(b) > 300 {
		b = b[:300]
	}
	return string(bytes.TrimSpace(b))
}

// do sends one request and reads the whole answer. Transport errors (the
// cluster unreachable, a timeout) are returned as errors; any HTTP status
// is a response.
func (s *Sink) do(ctx context.Context, method, path, query, contentType string, body []byte) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, s.reqTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "", nil)
	if err != nil {
		return response{}, err
	}
	req.URL = &url.URL{Path: path, RawQuery: query}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	res, err := s.client.Perform(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return response{status: res.StatusCode, body: b}, nil
}

// retryableStatus reports whether a whole-request status may succeed later.
func retryableStatus(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests ||
		status == http.StatusUnauthorized || status == http.StatusForbidden || status >= 500
}

// Ping checks that the cluster answers, with GET /_cluster/health (GET /
// is not available on every distribution).
func (s *Sink) Ping(ctx context.Context) error {
	r, err := s.do(ctx, http.MethodGet, "/_cluster/health", "", "", nil)
	if err != nil {
		return fmt.Errorf("elasticsearch: ping: %w", err)
	}
	if r.status/100 != 2 {
		return fmt.Errorf("elasticsearch: ping: GET /_cluster/health: HTTP %d: %s", r.status, r.errorSummary())
	}
	return nil
}

// Version returns the Elasticsearch version of the node answering, from
// GET /_nodes/_local (GET / is not available on every distribution).
func (s *Sink) Version(ctx context.Context) (string, error) {
	r, err := s.do(ctx, http.MethodGet, "/_nodes/_local", "filter_path=nodes.*.version", "", nil)
	if err != nil {
		return "", fmt.Errorf("elasticsearch: version: %w", err)
	}
	if r.status/100 != 2 {
		return "", fmt.Errorf("elasticsearch: version: GET /_nodes/_local: HTTP %d: %s", r.status, r.errorSummary())
	}
	var a struct {
		Nodes map[string]struct {
			Version string `json:"version"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(r.body, &a); err != nil {
		return "", fmt.Errorf("elasticsearch: version: %w", err)
	}
	for _, n := range a.Nodes {
		return n.Version, nil
	}
	return "", errors.New("elasticsearch: version: no node in the answer")
}

var errClosed = errors.New("elasticsearch: sink closed")
