package elasticsearch

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/parse"
)

// mappedType returns the type mapping m gives the dotted field name, or "".
func mappedType(m obj, name string) string {
	at := m
	parts := strings.Split(name, ".")
	for i, p := range parts {
		props, _ := at["properties"].(obj)
		f, _ := props[p].(obj)
		if f == nil {
			return ""
		}
		if i == len(parts)-1 {
			typ, _ := f["type"].(string)
			return typ
		}
		at = f
	}
	return ""
}

// TestHAProxyTemplateTypesEveryField parses every line of the corpus
// captured from HAProxy and checks that each field the parser writes has
// an explicit type in the HAProxy data streams' mappings (numbers long,
// addresses ip), so none is left to dynamic mapping.
func TestHAProxyTemplateTypesEveryField(t *testing.T) {
	files, _ := filepath.Glob("../../pipeline/parse/testdata/haproxy/*.log")
	if len(files) == 0 {
		t.Fatal("no HAProxy corpus")
	}
	ecs, hap := ecsMappings(), haproxyMappings()
	seen := 0
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var h parse.HAProxy
			if parse.ParseHAProxy(sc.Bytes(), time.UTC, &h) != nil {
				continue
			}
			for k, v := range parse.HAProxyFields(nil, &h) {
				seen++
				typ := mappedType(hap, k)
				if typ == "" {
					typ = mappedType(ecs, k)
				}
				want := "keyword"
				switch {
				case v.GetKind() == nil:
					t.Fatalf("%s: no value", k)
				case strings.HasSuffix(k, ".ip"):
					want = "ip"
				case v.GetStr() == "" || k == "event.outcome":
					want = "long"
					if k == "event.outcome" {
						want = "keyword"
					}
				}
				if typ != want {
					t.Errorf("%s: mapped %q, want %q", k, typ, want)
				}
			}
		}
		f.Close()
	}
	if seen == 0 {
		t.Fatal("no fields")
	}
	if got := composedOf(haproxyTemplate); len(got) != 3 || got[2] != componentHAProxy {
		t.Fatalf("composed of %v", got)
	}
	if !coveredByTemplates("logs-haproxy.log-prod") {
		t.Fatal("logs-haproxy.log-prod is not covered by Ferry's templates")
	}
}
