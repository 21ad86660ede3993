// Package esq is alerting's own small Elasticsearch client: JSON requests
// (search, multi-search, index, bulk) to the first URL that answers. It is
// independent of the Elasticsearch sink, whose client writes events.
package esq

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
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferrylogs/ferry/config"
)

// Client sends requests to Elasticsearch. It is safe for concurrent use.
type Client struct {
	urls     []string
	username string
	password string
	apiKey   string
	http     *http.Client
	next     atomic.Uint32
}

// New returns a client for the connection c; it does not contact the
// cluster.
func New(c config.AlertingElasticsearch) (*Client, error) {
	if len(c.URLs) == 0 {
		return nil, errors.New("elasticsearch: no URL")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLSSkipVerify} //nolint:gosec // opt-in
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("elasticsearch: ca_file %s: no PEM certificate in it", c.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	urls := make([]string, len(c.URLs))
	for i, u := range c.URLs {
		urls[i] = strings.TrimRight(u, "/")
	}
	return &Client{urls: urls, username: c.Username, password: c.Password, apiKey: c.APIKey,
		http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

// StatusError is an answer of Elasticsearch with a status of 300 or more.
type StatusError struct {
	Status int
	Type   string // the error's type, e.g. index_not_found_exception
	Body   string // a prefix of the body
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("elasticsearch answered %d: %s", e.Status, e.Body)
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}

// Unreachable reports whether err means no Elasticsearch answered (as
// opposed to an answer with an error status).
func Unreachable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status == http.StatusServiceUnavailable || se.Status == http.StatusBadGateway || se.Status == http.StatusGatewayTimeout
	}
	return err != nil && !errors.Is(err, context.Canceled)
}

// Do sends body (JSON-encoded unless it is []byte, sent as NDJSON) and
// decodes the answer into out (if not nil). It tries each URL in turn
// when one cannot be reached.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		payload, ctype = b, "application/x-ndjson"
	default:
		var err error
		if payload, err = json.Marshal(b); err != nil {
			return fmt.Errorf("encode request %s: %w", path, err)
		}
	}
	start := int(c.next.Load())
	var lastErr error
	for i := range c.urls {
		u := c.urls[(start+i)%len(c.urls)]
		req, err := http.NewRequestWithContext(ctx, method, u+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		if payload != nil {
			req.Header.Set("Content-Type", ctype)
		}
		switch {
		case c.apiKey != "":
			req.Header.Set("Authorization", "ApiKey "+c.apiKey)
		case c.username != "":
			req.SetBasicAuth(c.username, c.password)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.next.Store(uint32((start + i + 1) % len(c.urls)))
			continue
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			lastErr = fmt.Errorf("%s %s: read answer: %w", method, path, err)
			continue
		}
		if resp.StatusCode >= 300 {
			se := &StatusError{Status: resp.StatusCode, Body: string(data[:min(len(data), 512)])}
			var e struct {
				Error struct {
					Type string `json:"type"`
				} `json:"error"`
			}
			if json.Unmarshal(data, &e) == nil {
				se.Type = e.Error.Type
			}
			return fmt.Errorf("%s %s: %w", method, path, se)
		}
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
			}
		}
		return nil
	}
	return lastErr
}

// Search runs one search on index.
//
// Elasticsearch 8 fails the pre-filter (can_match) phase of a range query
// over indices that map the field as date in some (time series data
// streams) and date_nanos in others ("... cannot be stored in nanosecond
// resolution"); such a search is sent again without that phase.
func (c *Client) Search(ctx context.Context, index string, body, out any) error {
	path := "/" + index + "/_search?ignore_unavailable=true&allow_no_indices=true"
	err := c.Do(ctx, http.MethodPost, path, body, out)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusBadRequest && strings.Contains(se.Body, `"phase":"can_match"`) && strings.Contains(se.Body, "nanosecond resolution") {
		err = c.Do(ctx, http.MethodPost, path+"&pre_filter_shard_size=2147483647", body, out)
	}
	return err
}

// MSearch runs searches in one request (one round trip); out[i] receives
// the answer of bodies[i]; an answer with an error fails the whole call.
func (c *Client) MSearch(ctx context.Context, indices []string, bodies []any, out []any) error {
	var b bytes.Buffer
	for i, body := range bodies {
		h, _ := json.Marshal(map[string]any{"index": indices[i], "ignore_unavailable": true, "allow_no_indices": true})
		q, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode search %d: %w", i, err)
		}
		b.Write(h)
		b.WriteByte('\n')
		b.Write(q)
		b.WriteByte('\n')
	}
	var res struct {
		Responses []json.RawMessage `json:"responses"`
	}
	if err := c.Do(ctx, http.MethodPost, "/_msearch", b.Bytes(), &res); err != nil {
		return err
	}
	if len(res.Responses) != len(bodies) {
		return fmt.Errorf("_msearch: %d answers to %d searches", len(res.Responses), len(bodies))
	}
	for i, r := range res.Responses {
		var e struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(r, &e) == nil && len(e.Error) > 0 {
			return fmt.Errorf("_msearch: search %d: %s", i, e.Error)
		}
		if err := json.Unmarshal(r, out[i]); err != nil {
			return fmt.Errorf("_msearch: search %d: %w", i, err)
		}
	}
	return nil
}
