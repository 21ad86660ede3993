package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ferryharness "github.com/ferrylogs/ferry/test/harness"
)

func TestSilenceAPI(t *testing.T) {
	clock := newClock()
	changed := 0
	api := &SilenceAPI{Store: &FileStore{Path: filepath.Join(t.TempDir(), "s.json")}, Now: clock.Now, Changed: func() { changed++ }}
	srv := httptest.NewServer(api)
	defer srv.Close()
	do := func(method, path, body string, want int) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		return b
	}
	var s SilenceView
	if err := json.Unmarshal(do("POST", "/api/silences", `{"matchers":["severity=\"warning\""],"duration":"2h","created_by":"ann","comment":"deploy"}`, 201), &s); err != nil {
		t.Fatal(err)
	}
	if !s.Active || s.CreatedBy != "ann" || !s.EndsAt.Equal(clock.Now().Add(2*time.Hour)) || changed != 1 {
		t.Errorf("created %+v (changed %d)", s, changed)
	}
	do("POST", "/api/silences", `{"matchers":["severity~\"x\""],"duration":"1h"}`, 400)
	do("POST", "/api/silences", `{"matchers":[],"duration":"1h"}`, 400)
	do("POST", "/api/silences", `{"matchers":["a=\"b\""]}`, 400)
	var list []SilenceView
	_ = json.Unmarshal(do("GET", "/api/silences", "", 200), &list)
	if len(list) != 1 || list[0].ID != s.ID {
		t.Errorf("list %+v", list)
	}
	clock.Set(clock.Now().Add(time.Minute))
	var expired SilenceView
	_ = json.Unmarshal(do("DELETE", "/api/silences/"+s.ID, "", 200), &expired)
	if expired.Active || !expired.EndsAt.Equal(clock.Now()) || changed != 2 {
		t.Errorf("expired %+v", expired)
	}
	do("DELETE", "/api/silences/nope", "", 404)
	do("PUT", "/api/silences", "", 405)
}

// esDoer is a minimal Doer for the test against the real Elasticsearch.
type esDoer struct{ url string }

func (e esDoer) Do(ctx context.Context, method, path string, body, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, method, e.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%d %s", resp.StatusCode, rb)
	}
	if out != nil {
		return json.Unmarshal(rb, out)
	}
	return nil
}

func TestESSilenceStore(t *testing.T) {
	es := testES(t)
	index := fmt.Sprintf("ferry-test-silences-%d", time.Now().UnixNano())
	t.Cleanup(func() { _ = es.Do(context.Background(), "DELETE", "/"+index, nil, nil) })
	store := &ESStore{ES: es, Index: index}
	ctx := context.Background()
	if all, err := store.List(ctx); err != nil || len(all) != 0 {
		t.Fatalf("before any silence: %v, %v (want none, no error)", all, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	s, _ := NewSilence([]string{`alertname="A"`}, now, time.Hour, "ann", "c")
	if err := store.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := Expire(ctx, store, s.ID, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	all, err := store.List(ctx)
	if err != nil || len(all) != 1 || !all[0].EndsAt.Equal(now.Add(time.Minute)) || all[0].Matchers[0] != `alertname="A"` {
		t.Fatalf("list %+v, %v: want the one silence, expired", all, err)
	}
}

// testES is a Doer for the shared real Elasticsearch.
func testES(t *testing.T) esDoer { return esDoer{ferryharness.ESURL(t)} }
