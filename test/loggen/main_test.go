package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestWriteStamped: --stamp lines carry increasing write times and their
// sequence number, every --probe-every-th is a probe, P+F splits join back
// to the message, --pods-file names the pods (directory and link as the
// kubelet lays them out), and --haproxy writes one HAProxy line per
// --haproxy-every container lines.
func TestWriteStamped(t *testing.T) {
	dir := t.TempDir()
	pods := filepath.Join(dir, "pods.txt")
	if err := os.WriteFile(pods, []byte("shop-prod web-0 11111111-2222-4333-8444-555555555555\nshop-prod web-1 66666666-2222-4333-8444-555555555555\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hap := filepath.Join(dir, "haproxy.log")
	err := write(context.Background(), []string{"--dir", dir, "--pods-file", pods, "--rate", "0", "--lines", "30", "--rotate-bytes", "0",
		"--stamp", "--probe-every", "3", "--partial-every", "4", "--haproxy", hap, "--haproxy-every", "5"})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []struct{ name, uid string }{{"web-0", "11111111-2222-4333-8444-555555555555"}, {"web-1", "66666666-2222-4333-8444-555555555555"}} {
		link := filepath.Join(dir, "containers", p.name+"_shop-prod_app-"+strings.Repeat("0", 63)+strconv.Itoa(i+1)+".log")
		real, err := os.Readlink(link)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, "pods", "shop-prod_"+p.name+"_"+p.uid, "app", "0.log"); real != want {
			t.Errorf("%s -> %s, want %s", link, real, want)
		}
		msgs := criMessages(t, real)
		if len(msgs) != 30 {
			t.Fatalf("%s: %d messages, want 30", real, len(msgs))
		}
		var last int64
		for seq, m := range msgs {
			s, ok := strings.CutPrefix(m, "stamp=")
			if !ok {
				t.Fatalf("%s line %d: %q has no stamp", real, seq, m)
			}
			f := strings.Fields(s)
			ns, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || ns <= last {
				t.Errorf("%s line %d: stamp %s not after %d", real, seq, f[0], last)
			}
			last = ns
			if f[1] != "seq="+strconv.Itoa(seq) {
				t.Errorf("%s line %d: %q, want seq=%d", real, seq, f[1], seq)
			}
			if probe := f[2] == "probe"; probe != (seq%3 == 0) {
				t.Errorf("%s line %d: probe %v, want %v", real, seq, probe, seq%3 == 0)
			}
		}
	}
	b, err := os.ReadFile(hap)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 60/5 {
		t.Fatalf("%d HAProxy lines, want %d", len(lines), 60/5)
	}
	for i, l := range lines {
		if !strings.Contains(l, " lb1 haproxy[4242]: "+hapClients[i%len(hapClients)]+":") || !strings.Contains(l, "GET /bench?seq="+strconv.Itoa(i)+"&stamp=") {
			t.Errorf("HAProxy line %d: %q", i, l)
		}
	}
}

// criMessages returns the messages of a CRI log, P records joined to
// their F.
func criMessages(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	var partial string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 {
			t.Fatalf("%s: not CRI: %q", path, sc.Text())
		}
		partial += parts[3]
		if parts[2] == "F" {
			out = append(out, partial)
			partial = ""
		}
	}
	return out
}
