package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

func TestIDDependsOnWhereNotWhat(t *testing.T) {
	base := IDString(ID(nil, "node-1", "fe00-1-abc", 100))
	if base != IDString(ID(nil, "node-1", "fe00-1-abc", 100)) {
		t.Fatal("the same place must give the same id")
	}
	if len(base) != 22 {
		t.Fatalf("id %q has %d characters, want 22", base, len(base))
	}
	others := []string{
		IDString(ID(nil, "node-2", "fe00-1-abc", 100)),
		IDString(ID(nil, "node-1", "fe00-1-abd", 100)),
		IDString(ID(nil, "node-1", "fe00-1-abc", 101)),
		IDString(ID(nil, "node-1fe00-1-abc", "", 100)), // separators matter
	}
	for i, o := range others {
		if o == base {
			t.Errorf("case %d: a different place gave the same id", i)
		}
	}
}

func TestSanitizeDataStreamPart(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "default"},
		{"prod", "prod"},
		{"Shop-Prod", "shop_prod"},
		{"a b/c*d?e\"f<g>h|i,j#k:l\\m", "a_b_c_d_e_f_g_h_i_j_k_l_m"},
		{"_.+x", "x"},
		{"---", "default"},
		{strings.Repeat("a", 150), strings.Repeat("a", 100)},
		{"ÉTÉ", "été"},
	}
	for _, c := range cases {
		if got := SanitizeDataStreamPart(c.in, "default"); got != c.want {
			t.Errorf("SanitizeDataStreamPart(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDataStream(t *testing.T) {
	cases := []struct {
		name string
		ev   *ferryv1.Event
		want string
	}{
		{"container log", &ferryv1.Event{Kubernetes: &ferryv1.Kubernetes{Pod: "web-1", Namespace: "prod"}}, "logs-kubernetes.container-default"},
		{"plain file", &ferryv1.Event{}, "logs-file-default"},
		{"metric", &ferryv1.Event{Kind: ferryv1.Kind_KIND_METRIC}, "metrics-node-default"},
		{"enriched", &ferryv1.Event{Fields: map[string]*ferryv1.Value{
			"data_stream.dataset": Str("haproxy.log"), "data_stream.namespace": Str("Shop-Prod")}}, "logs-haproxy.log-shop_prod"},
	}
	for _, c := range cases {
		if got := DataStream(c.ev); got != c.want {
			t.Errorf("%s: DataStream = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestAppendDocument(t *testing.T) {
	ts := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	ev := &ferryv1.Event{
		Id:           ID(nil, "node-1", "f", 7),
		TimeUnixNano: ts.UnixNano(),
		Message:      []byte("quote\" backslash\\ tab\t nl\n ctl\x01 bad\xff end \u2028"),
		Stream:       ferryv1.StreamName_STREAM_STDERR,
		Source:       &ferryv1.Source{Path: "/var/log/pods/x/0.log", Offset: 42, Input: "container-0"},
		Kubernetes:   &ferryv1.Kubernetes{Namespace: "prod", Pod: "web-1", PodUid: "u-1", Container: "app", ContainerId: "abc"},
		Flags:        uint32(ferryv1.Flag_FLAG_TRUNCATED | ferryv1.Flag_FLAG_INVALID_UTF8),
		Fields: map[string]*ferryv1.Value{
			"service.name": Str("shop"), "http.response.status_code": Int(503),
			"m.ratio": Float(0.5), "m.up": Bool(true), "data_stream.namespace": Str("prod"),
		},
	}
	doc := AppendDocument(nil, "node-1", ev, ts.Add(time.Second))
	if !utf8.Valid(doc) {
		t.Fatal("document is not valid UTF-8")
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("document is not valid JSON: %v\n%s", err, doc)
	}
	get := func(path string) any {
		var cur any = m
		for _, k := range strings.Split(path, "/") {
			obj, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = obj[k]
		}
		return cur
	}
	want := map[string]any{
		"@timestamp":                "2026-11-25T10:00:00.123456789Z",
		"message":                   "quote\" backslash\\ tab\t nl\n ctl\x01 bad\ufffd end \u2028",
		"event/id":                  IDString(ev.Id),
		"event/ingested":            "2026-11-25T10:00:01.123456789Z",
		"event/dataset":             "kubernetes.container",
		"data_stream/type":          "logs",
		"data_stream/dataset":       "kubernetes.container",
		"data_stream/namespace":     "prod",
		"log/file/path":             "/var/log/pods/x/0.log",
		"log/offset":                float64(42),
		"stream":                    "stderr",
		"host/name":                 "node-1",
		"kubernetes/namespace":      "prod",
		"kubernetes/pod/name":       "web-1",
		"kubernetes/pod/uid":        "u-1",
		"kubernetes/container/name": "app",
		"kubernetes/node/name":      "node-1",
		"container/id":              "abc",
		"ferry/input":               "container-0",
		"service.name":              "shop",
		"http.response.status_code": float64(503),
		"m.ratio":                   0.5,
		"m.up":                      true,
	}
	for path, w := range want {
		if got := get(path); got != w {
			t.Errorf("%s = %#v, want %#v", path, got, w)
		}
	}
	flags, _ := get("ferry/flags").([]any)
	if len(flags) != 2 || flags[0] != "truncated" || flags[1] != "invalid_utf8" {
		t.Errorf("ferry.flags = %v", flags)
	}
	if _, dup := m["data_stream.namespace"]; dup {
		t.Error("data_stream.namespace written twice")
	}
}

func FuzzAppendDocument(f *testing.F) {
	f.Add([]byte("hello"), "node", "key", "value")
	f.Add([]byte("\xff\xfe\x00\"\\\u2029"), "n\"ode", "a.b", "\x01")
	f.Fuzz(func(t *testing.T, msg []byte, node, key, val string) {
		ev := &ferryv1.Event{Id: ID(nil, node, "f", 1), Message: msg,
			Fields: map[string]*ferryv1.Value{key: Str(val)}}
		doc := AppendDocument(nil, node, ev, time.Unix(0, 0))
		if !json.Valid(doc) {
			t.Fatalf("invalid JSON: %q", doc)
		}
	})
}
