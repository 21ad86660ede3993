// Command loggen writes container log files the way a Kubernetes node does
// (CRI format, /var/log/containers symlinks into /var/log/pods, rename
// rotation) for the demo and the benchmarks, and summarises an NDJSON sink.
//
//	loggen write --dir DIR [--pods 6] [--rate 200] [--rotate-bytes 1MiB] [--lines 0]
//	loggen watch --file out/events.ndjson
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

func write(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("write", flag.ContinueOnError)
	dir := fs.String("dir", "", "root directory (gets containers/ and pods/)")
	pods := fs.Int("pods", 6, "number of pods (spread over dev, staging, prod)")
	rate := fs.Int("rate", 200, "lines per second in all (0 = as fast as possible)")
	rotate := fs.Int64("rotate-bytes", 1<<20, "rotate a file (rename) when it passes this size; 0 = never")
	lines := fs.Int("lines", 0, "stop after this many lines per pod (0 = until interrupted)")
	lineBytes := fs.Int("line-bytes", 0, "pad messages to about this many bytes (0 = natural)")
	partialEvery := fs.Int("partial-every", 10, "split every Nth line into CRI P+F records (0 = never)")
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
	ps := make([]*pod, *pods)
	for i := range ps {
		p := &pod{ns: []string{"dev", "staging", "prod"}[i%3], name: fmt.Sprintf("shop-%d-%05x", i, i*7919), container: "app"}
		uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		d := filepath.Join(*dir, "pods", p.ns+"_"+p.name+"_"+uid, p.container)
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
		_ = os.Remove(link)
		if err := os.Symlink(p.real, link); err != nil {
			return fmt.Errorf("symlink %s: %w", link, err)
		}
		ps[i] = p
	}
	var tick <-chan time.Time
	perTick := 1
	if *rate > 0 {
		interval := time.Second / time.Duration(max(*rate, 1))
		if interval < time.Millisecond {
			perTick = *rate / 1000
			interval = time.Millisecond
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	buf := make([]byte, 0, 4096)
	written := make([]int, len(ps))
	for n := 0; ; n++ {
		done := true
		for i := range ps {
			if *lines == 0 || written[i] < *lines {
				done = false
			}
		}
		if done {
			return nil
		}
		if tick != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-tick:
			}
		} else if ctx.Err() != nil {
			return nil
		}
		for k := 0; k < perTick; k++ {
			i := (n*perTick + k) % len(ps)
			p := ps[i]
			if *lines > 0 && written[i] >= *lines {
				continue
			}
			msg := fmt.Sprintf("seq=%d %s", written[i], messages[rand.IntN(len(messages))])
			if *lineBytes > len(msg) {
				msg += " " + strings.Repeat("z", *lineBytes-len(msg)-1)
			}
			written[i]++
			ts := time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")
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
		}
	}
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
