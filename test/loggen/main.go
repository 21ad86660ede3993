// Command loggen writes container log files the way a Kubernetes node does
// (CRI format, /var/log/containers symlinks into /var/log/pods, rename
// rotation) for the demo and the benchmarks, and summarises an NDJSON sink.
//
//	loggen write --dir DIR [--pods 6] [--rate 200] [--rotate-bytes 1MiB] [--lines 0]
//	             [--stamp] [--probe-every 0] [--pods-file FILE] [--seconds 0]
//	             [--haproxy FILE --haproxy-every 10]
//	loggen watch --file out/events.ndjson
//
// For the latency benchmark (test/bench-e2e.sh), --stamp begins every
// message with "stamp=<unix ns> seq=<n>", the time just before the line is
// written, and --probe-every N adds the word "probe" to every Nth line of a
// pod, a sample a poller can search for. --pods-file names real pods (one
// "namespace name uid" a line, from a Kubernetes API server) instead of
// made-up ones, so that an agent finds their metadata. --haproxy writes,
// after every --haproxy-every container lines, an HAProxy request log line
// (as rsyslog writes it) with a client address the GeoIP test databases
// know (or a private one). With --rate the lines are paced by the clock
// (lines due = rate x elapsed), not by ticks, so a busy machine does not
// lower the rate. On exit write prints "container=N haproxy=M" on stdout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loggen write|watch [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch os.Args[1] {
	case "write":
		err = write(ctx, os.Args[2:])
	case "watch":
		err = watch(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loggen:", err)
		os.Exit(1)
	}
}

type pod struct {
	ns, name, container string
	real                string
	f                   *os.File
	size                int64
	rotations           int
}

var messages = []string{
	`GET /api/orders 200 12ms`,
	`POST /api/checkout 201 48ms`,
	`level=warn msg="slow query" duration=1.2s table=orders`,
	`level=error msg="upstream timeout" upstream=payments retry=1`,
	`GET /healthz 200 0ms`,
	`{"level":"info","msg":"cache refreshed","keys":1024}`,
}

// hapClients are the client addresses of the HAProxy lines: ones the GeoIP
// test databases know (test/geoipdb.Places, ASNs) and a private one.
var hapClients = []string{"81.2.69.142", "216.160.83.56", "89.160.20.115", "2001:218::1", "10.1.2.3"}

func write(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("write", flag.ContinueOnError)
	dir := fs.String("dir", "", "root directory (gets containers/ and pods/)")
	pods := fs.Int("pods", 6, "number of pods (spread over dev, staging, prod)")
	rate := fs.Int("rate", 200, "lines per second in all (0 = as fast as possible)")
	rotate := fs.Int64("rotate-bytes", 1<<20, "rotate a file (rename) when it passes this size; 0 = never")
	lines := fs.Int("lines", 0, "stop after this many lines per pod (0 = until interrupted)")
	lineBytes := fs.Int("line-bytes", 0, "pad messages to about this many bytes (0 = natural)")
	partialEvery := fs.Int("partial-every", 10, "split every Nth line into CRI P+F records (0 = never)")
	stamp := fs.Bool("stamp", false, "begin every message with stamp=<unix ns of the write> seq=<n>")
	probeEvery := fs.Int("probe-every", 0, "with --stamp, add the word probe to every Nth line of a pod (0 = never)")
	podsFile := fs.String("pods-file", "", `pods to write for, one "namespace name uid" a line (overrides --pods)`)
	seconds := fs.Float64("seconds", 0, "stop after this many seconds (0 = no limit)")
	hapPath := fs.String("haproxy", "", "also write HAProxy request log lines to this file")
	hapEvery := fs.Int("haproxy-every", 10, "with --haproxy, one HAProxy line after every N container lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--dir is required")
	}
	// The container links point at absolute paths, as the kubelet's do; a
	// relative --dir would make them dangle.
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("--dir %s: %w", *dir, err)
	}
	*dir = abs
	var ps []*pod
	var uids []string
	if *podsFile != "" {
		b, err := os.ReadFile(*podsFile)
		if err != nil {
			return fmt.Errorf("--pods-file: %w", err)
		}
		for n, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(l)
			if len(f) != 3 {
				return fmt.Errorf("--pods-file %s:%d: want \"namespace name uid\", got %q", *podsFile, n+1, l)
			}
			ps = append(ps, &pod{ns: f[0], name: f[1], container: "app"})
			uids = append(uids, f[2])
		}
	} else {
		for i := range *pods {
			ps = append(ps, &pod{ns: []string{"dev", "staging", "prod"}[i%3], name: fmt.Sprintf("shop-%d-%05x", i, i*7919), container: "app"})
			uids = append(uids, fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i))
		}
	}
	for i, p := range ps {
		d := filepath.Join(*dir, "pods", p.ns+"_"+p.name+"_"+uids[i], p.container)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		p.real = filepath.Join(d, "0.log")
		if err := p.open(); err != nil {
			return err
		}
		link := filepath.Join(*dir, "containers", fmt.Sprintf("%s_%s_%s-%064x.log", p.name, p.ns, p.container, i+1))
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return err
		}
		if t, err := os.Readlink(link); err == nil && t == p.real {
			continue // a second run over the same pods: the files are appended to
		}
		_ = os.Remove(link)
		if err := os.Symlink(p.real, link); err != nil {
			return fmt.Errorf("symlink %s: %w", link, err)
		}
	}
	var hap *os.File
	if *hapPath != "" {
		if hap, err = os.OpenFile(*hapPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return fmt.Errorf("open %s: %w", *hapPath, err)
		}
		defer hap.Close()
	}
	var tick <-chan time.Time
	if *rate > 0 {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	var deadline <-chan time.Time
	if *seconds > 0 {
		t := time.NewTimer(time.Duration(*seconds * float64(time.Second)))
		defer t.Stop()
		deadline = t.C
	}
	buf := make([]byte, 0, 4096)
	written := make([]int, len(ps))
	var total, hapLines int
	defer func() { fmt.Printf("container=%d haproxy=%d\n", total, hapLines) }()
	for n := 0; ; {
		done := true
		for i := range ps {
			if *lines == 0 || written[i] < *lines {
				done = false
			}
		}
		if done {
			return nil
		}
		due := 1
		if tick != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-deadline:
				return nil
			case <-tick:
			}
			// Lines due by now, less those written: a late tick catches up.
			due = int(time.Since(start).Seconds()*float64(*rate)) - total
		} else {
			select {
			case <-ctx.Done():
				return nil
			case <-deadline:
				return nil
			default:
			}
		}
		for k := 0; k < due; k, n = k+1, n+1 {
			i := n % len(ps)
			p := ps[i]
			if *lines > 0 && written[i] >= *lines {
				continue
			}
			now := time.Now()
			msg := messages[rand.IntN(len(messages))]
			if *stamp {
				probe := ""
				if *probeEvery > 0 && written[i]%*probeEvery == 0 {
					probe = " probe"
				}
				msg = fmt.Sprintf("stamp=%d seq=%d%s %s", now.UnixNano(), written[i], probe, msg)
			} else {
				msg = fmt.Sprintf("seq=%d %s", written[i], msg)
			}
			if *lineBytes > len(msg) {
				msg += " " + strings.Repeat("z", *lineBytes-len(msg)-1)
			}
			written[i]++
			total++
			ts := now.UTC().Format("2006-01-02T15:04:05.000000000Z")
			stream := "stdout"
			if strings.Contains(msg, "level=error") {
				stream = "stderr"
			}
			buf = buf[:0]
			if *partialEvery > 0 && written[i]%*partialEvery == 0 {
				h := len(msg) / 2
				buf = fmt.Appendf(buf, "%s %s P %s\n%s %s F %s\n", ts, stream, msg[:h], ts, stream, msg[h:])
			} else {
				buf = fmt.Appendf(buf, "%s %s F %s\n", ts, stream, msg)
			}
			if _, err := p.f.Write(buf); err != nil {
				return fmt.Errorf("write %s: %w", p.real, err)
			}
			p.size += int64(len(buf))
			if *rotate > 0 && p.size >= *rotate {
				if err := p.rotate(); err != nil {
					return err
				}
			}
			if hap != nil && *hapEvery > 0 && total%*hapEvery == 0 {
				if _, err := hap.Write(hapLine(buf[:0], now, hapLines)); err != nil {
					return fmt.Errorf("write %s: %w", *hapPath, err)
				}
				hapLines++
			}
		}
	}
}

// hapLine appends an HAProxy HTTP request log line as rsyslog writes it to
// a file; the request carries its sequence number and write time.
func hapLine(b []byte, now time.Time, seq int) []byte {
	client := hapClients[seq%len(hapClients)]
	status := []int{200, 200, 200, 404, 502}[seq%5]
	b = append(b, now.Format("Jan _2 15:04:05")...)
	b = append(b, " lb1 haproxy[4242]: "...)
	b = append(b, client...) // HAProxy writes an IPv6 client without brackets
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(40000+seq%20000), 10)
	b = append(b, " ["...)
	b = append(b, now.Format("02/Jan/2006:15:04:05.000")...)
	b = fmt.Appendf(b, "] fe_bench be_app/app%d 0/0/1/%d/%d %d %d - - ---- 3/2/1/1/0 0/0 \"GET /bench?seq=%d&stamp=%d HTTP/1.1\"\n",
		seq%3+1, seq%40, seq%40+1, status, 512+seq%4096, seq, now.UnixNano())
	return b
}

func (p *pod) open() error {
	f, err := os.OpenFile(p.real, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", p.real, err)
	}
	fi, _ := f.Stat()
	p.f, p.size = f, fi.Size()
	return nil
}

// rotate renames the file like kubelet does and starts a new one; it keeps
// the last two rotated files.
func (p *pod) rotate() error {
	p.f.Close()
	p.rotations++
	if err := os.Rename(p.real, fmt.Sprintf("%s.%d", p.real, p.rotations)); err != nil {
		return fmt.Errorf("rotate %s: %w", p.real, err)
	}
	_ = os.Remove(fmt.Sprintf("%s.%d", p.real, p.rotations-2))
	return p.open()
}

// watch prints, every two seconds, how many events arrived per namespace
// and the latest one.
func watch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	file := fs.String("file", "", "NDJSON sink file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var (
		off    int64
		counts = map[string]int{}
		total  int
		last   string
	)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f, err := os.Open(*file)
		if err != nil {
			continue
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			continue
		}
		r := bufio.NewReaderSize(f, 1<<20)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				break
			}
			off += int64(len(line))
			var d struct {
				Message    string `json:"message"`
				Kubernetes struct {
					Namespace string `json:"namespace"`
					Pod       struct {
						Name string `json:"name"`
					} `json:"pod"`
				} `json:"kubernetes"`
				Stream string `json:"stream"`
			}
			if json.Unmarshal(line, &d) != nil {
				continue
			}
			counts[d.Kubernetes.Namespace]++
			total++
			last = fmt.Sprintf("%s/%s [%s] %s", d.Kubernetes.Namespace, d.Kubernetes.Pod.Name, d.Stream, d.Message)
		}
		f.Close()
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
		}
		fmt.Printf("%s  events=%d  %s\n    latest: %.120s\n", time.Now().Format("15:04:05"), total, strings.Join(parts, " "), last)
	}
}
