package elasticsearch

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
)

// rejectingProxy stands between the sink and Elasticsearch. It answers the
// first `whole` bulk requests with a whole-request 429, rejects every other
// item of the next `partial` bulk requests with a per-item 429 (forwarding
// only the others to Elasticsearch), and then passes everything through. It
// records which ids each bulk request carried and which it rejected.
type rejectingProxy struct {
	srv     *httptest.Server
	target  string
	whole   int
	partial int
	always  map[string]bool // ids rejected with 429 every time; set before use
	tr      *http.Transport

	mu   sync.Mutex
	reqs []bulkRecord
}

type bulkRecord struct{ sent, rejected []string }

func newRejectingProxy(t *testing.T, target string, whole, partial int) *rejectingProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &rejectingProxy{target: target, whole: whole, partial: partial, tr: &http.Transport{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = p.tr
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/_bulk" {
			p.bulk(t, w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

func (p *rejectingProxy) URL() string { return p.srv.URL }

func (p *rejectingProxy) Requests() []bulkRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs)
}

const rejected429 = `{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected by the test proxy"}}}`

func (p *rejectingProxy) bulk(t *testing.T, w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	lines := bytes.Split(bytes.TrimRight(body, "\n"), []byte("\n"))
	var rec bulkRecord
	var forward [][]byte
	reject := make([]bool, len(lines)/2)
	p.mu.Lock()
	k := len(p.reqs)
	p.mu.Unlock()
	for i := 0; i+1 < len(lines); i += 2 {
		var action struct {
			Create struct {
				ID string `json:"_id"`
			} `json:"create"`
		}
		if err := json.Unmarshal(lines[i], &action); err != nil {
			t.Errorf("proxy: bad action line %q: %v", lines[i], err)
		}
		rec.sent = append(rec.sent, action.Create.ID)
		if k < p.whole || (k < p.whole+p.partial && (i/2)%2 == 1) || p.always[action.Create.ID] {
			reject[i/2] = true
			rec.rejected = append(rec.rejected, action.Create.ID)
			continue
		}
		forward = append(forward, lines[i], lines[i+1])
	}
	p.mu.Lock()
	p.reqs = append(p.reqs, rec)
	p.mu.Unlock()

	if k < p.whole {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"type":"es_rejected_execution_exception","reason":"whole request rejected by the test proxy"},"status":429}`)
		return
	}
	var esItems []json.RawMessage
	if len(forward) > 0 {
		fw := append(bytes.Join(forward, []byte("\n")), '\n')
		res, err := (&http.Client{Transport: p.tr}).Post(p.target+"/_bulk?"+r.URL.RawQuery, "application/x-ndjson", bytes.NewReader(fw))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var a struct {
			Items []json.RawMessage `json:"items"`
		}
		err = json.NewDecoder(res.Body).Decode(&a)
		res.Body.Close()
		if err != nil || len(a.Items) != len(forward)/2 {
			t.Errorf("proxy: Elasticsearch answered %d items for %d (%v)", len(a.Items), len(forward)/2, err)
		}
		esItems = a.Items
	}
	var out bytes.Buffer
	out.WriteString(`{"errors":true,"items":[`)
	for i, rej := range reject {
		if i > 0 {
			out.WriteByte(',')
		}
		if rej {
			out.WriteString(rejected429)
			continue
		}
		out.Write(esItems[0])
		esItems = esItems[1:]
	}
	out.WriteString("]}")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Write(out.Bytes())
}

func sameIDs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
