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
	"slices"
	"sync"
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
		// No "Accept-Encoding: gzip": Elasticsearch would compress every
		// answer (bulk answers list every item) and the sink decompress it,
		// CPU on both sides for answers a fraction of the requests' size.
		DisableCompression: true,
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
	var open func() io.ReadCloser
	if body != nil {
		open = func() io.ReadCloser { return io.NopCloser(bytes.NewReader(body)) }
	}
	return s.perform(ctx, method, path, query, contentType, open, len(body), false)
}

// doBody is do with a body from the sink's pool. The caller calls
// body.done() after it; the body is released once the transport has closed
// every reader it got of it.
func (s *Sink) doBody(ctx context.Context, method, path, query, contentType string, body *reqBody) (response, error) {
	return s.perform(ctx, method, path, query, contentType, body.reader, body.size, true)
}

// perform sends one request whose body (nil: none) of size bytes open
// returns, each time the transport asks, and reads the whole answer.
// chunked sends the body with Transfer-Encoding: chunked instead of a
// Content-Length (see bodyReader).
func (s *Sink) perform(ctx context.Context, method, path, query, contentType string, open func() io.ReadCloser, size int, chunked bool) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, s.reqTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "", nil)
	if err != nil {
		return response{}, err
	}
	req.URL = &url.URL{Path: path, RawQuery: query}
	if open != nil {
		req.Body = open()
		req.ContentLength = int64(size)
		if chunked {
			// A chunk per segment, written from the body's bytes
			// (bodyReader.WriteTo).
			req.TransferEncoding = []string{"chunked"}
		}
		req.GetBody = func() (io.ReadCloser, error) { return open(), nil }
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	res, err := s.client.Perform(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := readAll(res)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return response{status: res.StatusCode, body: b}, nil
}

// readAll reads an answer's body into one buffer of its Content-Length
// when it has one (Elasticsearch's answers do), instead of growing one.
func readAll(res *http.Response) ([]byte, error) {
	if n := res.ContentLength; n > 0 && n <= 64<<20 {
		b := make([]byte, n)
		if _, err := io.ReadFull(res.Body, b); err != nil {
			return nil, err
		}
		// The end of the body (EOF) lets the connection be reused.
		if extra, err := io.Copy(io.Discard, res.Body); err != nil || extra > 0 {
			return nil, fmt.Errorf("body longer than its Content-Length %d (%d more bytes, %v)", n, extra, err)
		}
		return b, nil
	}
	return io.ReadAll(res.Body)
}

// bodyPool keeps bulk request bodies for reuse: their lists of segments
// and the buffers for what they copy.
type bodyPool struct{ p sync.Pool }

// maxPooledBody: a larger copy buffer (a huge flush_bytes) is not kept.
const maxPooledBody = 64 << 20

// get returns an empty body.
func (p *bodyPool) get() *reqBody {
	if r, ok := p.p.Get().(*reqBody); ok {
		r.open, r.finished = 0, false
		return r
	}
	return &reqBody{pool: p}
}

// reqBody is one bulk request body taken from a bodyPool: segments sent
// one after the other, each from the buffer it is in, a Write's pooled
// lines (owners) or the body's own buf. The transport may still read a
// request's body after the answer is in (an answer sent before the whole
// body was read), and makes a new reader for a retry on another
// connection (GetBody); the body is released only once the request is
// over (done) and every reader made of it is closed, which the transport
// always does: then the owners' buffers it used may go back to their pool
// and the body to its own. A reader it never closed keeps the body and
// those buffers out of the pools for good: the garbage collector takes
// them.
type reqBody struct {
	pool   *bodyPool
	segs   [][]byte
	size   int          // of all segments
	buf    []byte       // what the body copied
	owners []*writeBufs // whose buffers segments are in: one reference each

	mu       sync.Mutex
	open     int  // readers not closed yet
	finished bool // done was called
}

// addSegment appends seg to the body; owner (nil: none) holds its bytes,
// and is kept until the body is released.
func (r *reqBody) addSegment(seg []byte, owner *writeBufs) {
	if len(seg) == 0 {
		return
	}
	r.segs = append(r.segs, seg)
	r.size += len(seg)
	if owner != nil && !slices.Contains(r.owners, owner) {
		owner.ref()
		r.owners = append(r.owners, owner)
	}
}

// reader returns a new reader of the body.
func (r *reqBody) reader() io.ReadCloser {
	r.mu.Lock()
	r.open++
	r.mu.Unlock()
	return &bodyReader{body: r, segs: r.segs}
}

// done says the request is over.
func (r *reqBody) done() { r.release(true) }

func (r *reqBody) release(finish bool) {
	r.mu.Lock()
	if finish {
		r.finished = true
	} else {
		r.open--
	}
	free := r.finished && r.open == 0
	r.mu.Unlock()
	if !free {
		return
	}
	for _, o := range r.owners {
		o.unref()
	}
	clear(r.owners)
	clear(r.segs)
	r.owners, r.segs, r.size = r.owners[:0], r.segs[:0], 0
	r.buf = r.buf[:0]
	if cap(r.buf) > maxPooledBody {
		r.buf = nil
	}
	if r.pool != nil {
		r.pool.p.Put(r)
	}
}

// bodyReader reads a reqBody until it is closed, and never after: a Read
// and the Close that may release the body do not overlap.
//
// Its WriteTo hands the transport each segment left in one Write, with no
// copy (the request is sent chunked, a chunk per segment: with a
// Content-Length, net/http reads the body through an io.LimitReader into a
// 32 KiB buffer, a copy of every byte). A Close during that WriteTo (the
// transport gave up on the request) does not wait for it: the body is
// released when the Write in progress returns, and no segment is written
// after it.
type bodyReader struct {
	mu      sync.Mutex
	segs    [][]byte // the body's segments from the one being read
	off     int      // bytes of segs[0] read
	body    *reqBody
	writing bool // a WriteTo is writing from segs
	closed  bool
}

var errBodyClosed = errors.New("request body read after close")

func (br *bodyReader) Read(p []byte) (int, error) {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.closed {
		return 0, errBodyClosed
	}
	if br.writing {
		return 0, errors.New("request body: Read during WriteTo")
	}
	n := 0
	for n < len(p) && len(br.segs) > 0 {
		c := copy(p[n:], br.segs[0][br.off:])
		n += c
		br.off += c
		if br.off == len(br.segs[0]) {
			br.segs, br.off = br.segs[1:], 0
		}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// WriteTo writes what is left of the body to w, a Write per segment.
func (br *bodyReader) WriteTo(w io.Writer) (int64, error) {
	br.mu.Lock()
	if br.closed {
		br.mu.Unlock()
		return 0, errBodyClosed
	}
	if br.writing {
		br.mu.Unlock()
		return 0, errors.New("request body: concurrent WriteTo")
	}
	br.writing = true
	var total int64
	var err error
	for len(br.segs) > 0 && err == nil {
		if br.closed { // no segment after a Close
			err = errBodyClosed
			break
		}
		seg := br.segs[0][br.off:]
		br.mu.Unlock()
		var n int
		n, err = w.Write(seg)
		total += int64(n)
		br.mu.Lock()
		br.off += n
		if br.off == len(br.segs[0]) {
			br.segs, br.off = br.segs[1:], 0
		}
	}
	br.writing = false
	var release *reqBody
	if br.closed { // closed while writing: release now
		release, br.body = br.body, nil
	}
	br.mu.Unlock()
	if release != nil {
		release.release(false)
	}
	return total, err
}

func (br *bodyReader) Close() error {
	br.mu.Lock()
	if br.closed {
		br.mu.Unlock()
		return nil
	}
	br.closed = true
	if br.writing { // WriteTo releases the body when its Write returns
		br.mu.Unlock()
		return nil
	}
	b := br.body
	br.body = nil
	br.mu.Unlock()
	if b != nil {
		b.release(false)
	}
	return nil
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
