package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferrylogs/ferry/deploy/kibana"
)

// fakeKibana mimics POST /api/saved_objects/_import: it checks the request
// as Kibana would (kbn-xsrf, multipart part "file", one object a line) and
// answers with answer(objects).
type fakeKibana struct {
	t      *testing.T
	answer func(w http.ResponseWriter, objs []map[string]any)

	mu   sync.Mutex
	reqs []*http.Request
	objs []map[string]any
}

func (k *fakeKibana) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.reqs = append(k.reqs, r)
	k.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("kbn-xsrf") == "" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"statusCode":400,"error":"Bad Request","message":"Request must contain a kbn-xsrf header."}`)
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		fmt.Fprintf(w, `{"statusCode":415,"error":"Unsupported Media Type","message":%q}`, err.Error())
		return
	}
	if !strings.HasSuffix(hdr.Filename, ".ndjson") {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"statusCode":400,"error":"Bad Request","message":"Invalid file extension .txt"}`)
		return
	}
	var objs []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var o map[string]any
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			k.t.Errorf("import file line %d: %v", len(objs)+1, err)
		}
		objs = append(objs, o)
	}
	k.mu.Lock()
	k.objs = objs
	k.mu.Unlock()
	k.answer(w, objs)
}

func succeed(w http.ResponseWriter, objs []map[string]any) {
	var res []map[string]any
	for _, o := range objs {
		res = append(res, map[string]any{"type": o["type"], "id": o["id"], "meta": map[string]any{}})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "successCount": len(objs), "successResults": res})
}

// partial fails the HAProxy dashboard (missing reference) and the logs
// data view (conflict): HTTP 200 all the same, as Kibana answers.
func partial(w http.ResponseWriter, objs []map[string]any) {
	_ = json.NewEncoder(w).Encode(map[string]any{
		"success": false, "successCount": len(objs) - 2,
		"errors": []map[string]any{
			{"type": "dashboard", "id": "ferry-haproxy-overview", "title": "[Ferry] HAProxy traffic",
				"meta": map[string]any{"title": "[Ferry] HAProxy traffic"},
				"error": map[string]any{"type": "missing_references",
					"references": []map[string]any{{"type": "map", "id": "ferry-haproxy-origins"}}}},
			{"type": "index-pattern", "id": "ferry-logs", "meta": map[string]any{"title": "Ferry logs"},
				"error": map[string]any{"type": "unknown", "message": "version conflict", "statusCode": 409}},
		},
	})
}

func TestKibanaImport(t *testing.T) {
	want, err := kibana.Objects()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte("aWQ6a2V5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		answer   func(http.ResponseWriter, []map[string]any)
		args     []string
		code     int
		path     string // request path expected
		auth     string // Authorization header expected
		out, err []string
	}{
		{name: "success", answer: succeed, code: 0, path: "/api/saved_objects/_import",
			out: []string{fmt.Sprintf("imported %d saved objects", len(want))}},
		{name: "space and basic auth", answer: succeed, args: []string{"--space", "ops", "--username", "ferry", "--password-file", pwFile},
			code: 0, path: "/s/ops/api/saved_objects/_import", auth: "Basic ZmVycnk6czNjcmV0", out: []string{"(space ops)"}},
		{name: "api key", answer: succeed, args: []string{"--api-key-file", keyFile},
			code: 0, path: "/api/saved_objects/_import", auth: "ApiKey aWQ6a2V5"},
		{name: "partial failure, HTTP 200", answer: partial, code: 1, path: "/api/saved_objects/_import",
			err: []string{fmt.Sprintf("2 of %d objects not imported", len(want)),
				`dashboard ferry-haproxy-overview ("[Ferry] HAProxy traffic"): missing_references [map ferry-haproxy-origins]`,
				`index-pattern ferry-logs ("Ferry logs"): unknown: version conflict`}},
		{name: "success claimed, objects missing", code: 1, path: "/api/saved_objects/_import",
			answer: func(w http.ResponseWriter, objs []map[string]any) {
				fmt.Fprintf(w, `{"success":true,"successCount":%d}`, len(objs)-1)
			},
			err: []string{fmt.Sprintf("imported %d of %d objects", len(want)-1, len(want))}},
		{name: "unauthorized", code: 1, path: "/api/saved_objects/_import",
			answer: func(w http.ResponseWriter, _ []map[string]any) {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"statusCode":401,"error":"Unauthorized","message":"[security_exception] unable to authenticate user"}`)
			},
			err: []string{"HTTP 401", "unable to authenticate user"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := &fakeKibana{t: t, answer: c.answer}
			srv := httptest.NewServer(k)
			defer srv.Close()
			var stdout, stderr bytes.Buffer
			args := append([]string{"import", "--url", srv.URL + "/"}, c.args...)
			code := kibanaCommand(context.Background(), args, &stdout, &stderr)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, c.code, stderr.String())
			}
			for _, s := range c.out {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout %q lacks %q", stdout.String(), s)
				}
			}
			for _, s := range c.err {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr %q lacks %q", stderr.String(), s)
				}
			}
			if len(k.reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(k.reqs))
			}
			r := k.reqs[0]
			if r.URL.Path != c.path || r.URL.Query().Get("overwrite") != "true" {
				t.Errorf("request %s, want %s?overwrite=true", r.URL, c.path)
			}
			if got := r.Header.Get("Authorization"); got != c.auth {
				t.Errorf("Authorization %q, want %q", got, c.auth)
			}
			if len(k.objs) != len(want) {
				t.Errorf("Kibana got %d objects, want %d", len(k.objs), len(want))
			}
			for i, o := range k.objs {
				if i < len(want) && (o["id"] != want[i].ID || o["type"] != want[i].Type) {
					t.Errorf("object %d is %v %v, want %s %s", i, o["type"], o["id"], want[i].Type, want[i].ID)
				}
			}
		})
	}
}

func TestKibanaImportUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{nil, 2, "usage"},
		{[]string{"import"}, 1, "--url is required"},
		{[]string{"import", "--url", "kibana:5601"}, 1, "want http(s)://"},
		{[]string{"import", "--url", "http://k", "--username", "u"}, 1, "--username and --password-file go together"},
		{[]string{"import", "--url", "http://k", "--api-key-file", "/x", "--username", "u"}, 1, "not both"},
		{[]string{"import", "--url", "http://k", "--password-file", "/nonexistent", "--username", "u"}, 1, "/nonexistent"},
	} {
		var stdout, stderr bytes.Buffer
		code := kibanaCommand(context.Background(), c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.err)
		}
	}
	var stdout bytes.Buffer
	if code := kibanaCommand(context.Background(), []string{"ndjson"}, &stdout, io.Discard); code != 0 {
		t.Fatalf("ndjson: exit %d", code)
	}
	b, _ := kibana.NDJSON()
	if !bytes.Equal(stdout.Bytes(), b) {
		t.Error("kibana ndjson differs from the package's NDJSON")
	}
}

// TestKibanaSubcommand: the aggregator's command line reaches it.
func TestKibanaSubcommand(t *testing.T) {
	srv := httptest.NewServer(&fakeKibana{t: t, answer: partial})
	defer srv.Close()
	if code := run([]string{"kibana", "import", "--url", srv.URL}); code != 1 {
		t.Errorf("aggregator kibana import with failed objects: exit %d, want 1", code)
	}
}
