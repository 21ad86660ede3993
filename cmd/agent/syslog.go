package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/ferrylogs/ferry/config"
	"github.com/ferrylogs/ferry/pipeline/parse"
	"github.com/ferrylogs/ferry/pipeline/syslog"
	"github.com/ferrylogs/ferry/pipeline/tail"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/transport"
)

// syslogInputs opens the syslog inputs of cfg: each spools under
// <state_dir>/spool/<name> and is bound to its address now.
func syslogInputs(cfg *config.Agent, log *slog.Logger) ([]*syslog.Input, error) {
	var out []*syslog.Input
	for _, in := range cfg.Inputs {
		if in.Type != "syslog" {
			continue
		}
		s, err := syslog.Open(syslog.Config{
			Name:            in.Name,
			Listen:          in.Listen,
			Dir:             filepath.Join(cfg.StateDir, "spool", in.Name),
			MaxMessageBytes: int(in.MaxLineBytes),
			SpoolMaxBytes:   int64(in.SpoolMaxBytes),
			Fields:          tail.InputFields(in.Dataset, in.Environment),
		}, log)
		if err != nil {
			closeSyslog(out)
			return nil, err
		}
		log.Info("syslog input listening", "input", in.Name, "listen", in.Listen, "address", s.Addr().String(), "parser", in.Parser)
		out = append(out, s)
	}
	return out, nil
}

func closeSyslog(ins []*syslog.Input) {
	for _, s := range ins {
		_ = s.Close()
	}
}

// parsers returns the parser of each input that has one, by input name.
func parsers(ins []config.Input) map[string]transport.Parser {
	m, _, _ := parserSet(ins)
	return m
}

// parserSet is parsers, with the function that takes back the fields each
// parser made (transport.ClientConfig.ReleaseFields), and the fast form of
// each parser (transport.ClientConfig.FieldAppenders).
func parserSet(ins []config.Input) (map[string]transport.Parser, map[string]func(map[string]*ferryv1.Value), map[string]transport.FieldAppender) {
	var m map[string]transport.Parser
	var rel map[string]func(map[string]*ferryv1.Value)
	var app map[string]transport.FieldAppender
	for _, in := range ins {
		if in.Parser == "haproxy" {
			if m == nil {
				m = map[string]transport.Parser{}
				rel = map[string]func(map[string]*ferryv1.Value){}
				app = map[string]transport.FieldAppender{}
			}
			p := parse.NewHAProxyParser(time.Local)
			m[in.Name], rel[in.Name], app[in.Name] = p.Refine, p.Release, p
		}
	}
	return m, rel, app
}

// commits routes the acknowledgements of chunks: those of a syslog input's
// spool to it, the others (files) to the tail manager.
type commits struct {
	files  transport.Committer
	syslog map[*tail.File]*syslog.Input
}

func newCommits(files transport.Committer, ins []*syslog.Input) *commits {
	c := &commits{files: files, syslog: make(map[*tail.File]*syslog.Input, len(ins))}
	for _, s := range ins {
		c.syslog[s.File()] = s
	}
	return c
}

// Commit implements transport.Committer.
func (c *commits) Commit(f *tail.File, end int64, final bool) {
	if s := c.syslog[f]; s != nil {
		s.Commit(end)
		return
	}
	c.files.Commit(f, end, final)
}

// runSyslog runs the syslog inputs and returns the channel the shipper
// reads: files' chunks and the inputs' chunks merged (files alone when there
// is no syslog input). wait returns once every input has stopped.
func runSyslog(ctx context.Context, files <-chan *tail.Chunk, ins []*syslog.Input, log *slog.Logger) (out <-chan *tail.Chunk, wait func()) {
	if len(ins) == 0 {
		return files, func() {}
	}
	merged := make(chan *tail.Chunk)
	var wg sync.WaitGroup
	for _, s := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx, merged); err != nil {
				log.Error("syslog input stopped", "err", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case c := <-files:
				select {
				case merged <- c:
				case <-ctx.Done():
					c.Release()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return merged, wg.Wait
}

// syslogCounters sums the counters of the syslog inputs into m.
func syslogCounters(m map[string]uint64, ins []*syslog.Input) {
	for _, s := range ins {
		for k, v := range s.Counters() {
			m[k] += v
		}
	}
}

// syslogNeedsRestart reports an error if a reload changes what only a
// restart applies: syslog inputs added, removed or changed, and inputs with
// a parser (added, removed, or their parser changed).
func syslogNeedsRestart(cur, next []config.Input) error {
	key := func(ins []config.Input) string {
		s := ""
		for _, in := range ins {
			switch {
			case in.Type == "syslog":
				s += fmt.Sprintf("%+v;", in)
			case in.Parser != "none":
				s += in.Name + ":" + in.Parser + ";"
			}
		}
		return s
	}
	if key(cur) != key(next) {
		return fmt.Errorf("syslog inputs and parsers change only at a restart")
	}
	return nil
}
