// Package multiline joins the lines of one stream of a log file into events,
// so that a stack trace is one event. It is a pure joiner between parsing
// (after CRI/Docker partial lines are joined) and batching: it reads no file
// and keeps no clock of its own; the caller feeds it lines in file order,
// one Joiner per stream, and tells it the time.
//
// A Rule decides line by line: a line stands alone, begins a group, or
// continues the open group (for a blank line inside a Go goroutine dump or
// between chained Python exceptions: continues it only if a continuation
// follows). The built-in rules (java, python, go, ruby, dotnet) begin a group
// at the exception's own first line, as Google's detect-exceptions and
// Fluent Bit's built-in parsers do, so a log line written before it stays an
// event of its own; the custom rule groups by a start or continue regular
// expression.
//
// A group is one event: the id and offset of its first line, the time of its
// first line, the flags of all its lines, its lines joined by "\n". A group
// that reaches max_lines or max_bytes is cut: both parts are flagged
// truncated and the rest continues as a new group; no line is lost.
package multiline

import (
	"fmt"
	"regexp"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Rule names, as configured.
const (
	RuleNone   = "none"
	RuleJava   = "java"
	RulePython = "python"
	RuleGo     = "go"
	RuleRuby   = "ruby"
	RuleDotnet = "dotnet"
	RuleCustom = "custom"
)

// Rules lists the rule names that configuration accepts.
var Rules = []string{RuleJava, RulePython, RuleGo, RuleRuby, RuleDotnet, RuleCustom, RuleNone}

// Defaults of Config.
const (
	DefaultMaxLines   = 500
	DefaultFlushAfter = time.Second
)

// Config is an input's multiline setting.
type Config struct {
	Rule string // one of Rules; "" is none
	// Start (a line matching it begins an event) or Continue (a line
	// matching it belongs to the event before): one of them with the
	// custom rule; other rules do not use them. Negate inverts the match.
	Start, Continue string
	Negate          bool
	MaxLines        int           // lines per event before it is cut (0: DefaultMaxLines)
	MaxBytes        int           // bytes per event before it is cut (required, > 0)
	FlushAfter      time.Duration // an open group with no new line for this long is sent (0: DefaultFlushAfter)
}

// Spec is a compiled Config, shared read-only by the Joiners of an input.
type Spec struct {
	rule       string
	det        detector
	start      *regexp.Regexp
	cont       *regexp.Regexp
	negate     bool
	maxLines   int
	maxBytes   int
	flushAfter time.Duration
}

// Compile checks c and compiles it. It returns nil, nil for the rule none.
func Compile(c Config) (*Spec, error) {
	s := &Spec{rule: c.Rule, negate: c.Negate, maxLines: c.MaxLines, maxBytes: c.MaxBytes, flushAfter: c.FlushAfter}
	if s.maxLines == 0 {
		s.maxLines = DefaultMaxLines
	}
	if s.flushAfter == 0 {
		s.flushAfter = DefaultFlushAfter
	}
	if s.maxLines < 2 || s.maxBytes <= 0 || s.flushAfter < 0 {
		return nil, fmt.Errorf("multiline: max_lines %d must be at least 2, max_bytes %d and flush_after %s positive", c.MaxLines, c.MaxBytes, c.FlushAfter)
	}
	switch c.Rule {
	case "", RuleNone:
		return nil, nil
	case RuleJava:
		s.det = javaRule{}
	case RulePython:
		s.det = pythonRule{}
	case RuleGo:
		s.det = goRule{}
	case RuleRuby:
		s.det = rubyRule{}
	case RuleDotnet:
		s.det = dotnetRule{}
	case RuleCustom:
		if (c.Start == "") == (c.Continue == "") {
			return nil, fmt.Errorf("multiline: rule custom needs one of start or continue")
		}
		var err error
		if c.Start != "" {
			if s.start, err = regexp.Compile(c.Start); err != nil {
				return nil, fmt.Errorf("multiline: start: %w", err)
			}
			s.det = startRule{s.start, c.Negate}
		} else {
			if s.cont, err = regexp.Compile(c.Continue); err != nil {
				return nil, fmt.Errorf("multiline: continue: %w", err)
			}
			s.det = continueRule{s.cont, c.Negate}
		}
	default:
		return nil, fmt.Errorf("multiline: unknown rule %q (want java, python, go, ruby, dotnet, custom or none)", c.Rule)
	}
	return s, nil
}

// Builtin reports whether name is a rule that needs no regular expression
// (what a pod annotation may name).
func Builtin(name string) bool {
	switch name {
	case RuleJava, RulePython, RuleGo, RuleRuby, RuleDotnet, RuleNone:
		return true
	}
	return false
}

// WithRule returns a Spec with s's limits and the built-in rule name (nil
// for none); s may be nil, then the limits are the defaults with maxBytes.
func (s *Spec) WithRule(name string, maxBytes int) (*Spec, error) {
	if !Builtin(name) {
		return nil, fmt.Errorf("multiline: %q is not a built-in rule (java, python, go, ruby, dotnet or none)", name)
	}
	c := Config{Rule: name, MaxBytes: maxBytes}
	if s != nil {
		c.MaxLines, c.MaxBytes, c.FlushAfter = s.maxLines, s.maxBytes, s.flushAfter
	}
	return Compile(c)
}

// Rule returns the name of the rule.
func (s *Spec) Rule() string { return s.rule }

// FlushAfter returns how long an open group waits for its next line.
func (s *Spec) FlushAfter() time.Duration { return s.flushAfter }

// Line is where a line was and what the parser learnt of it. Off is the
// offset of its first byte, End the offset just past it (its newline).
type Line struct {
	Off, End int64
	Time     int64 // Unix ns
	Flags    uint32
	OrigTime string // the time as written when out of range
}

// Event is a finished event: a single line or a group. Line holds the
// first line's Off, Time and OrigTime, the last line's End and the flags of
// all lines (but FLAG_TIMESTAMP_OUT_OF_RANGE, which goes with the time of
// the first), plus FLAG_MULTILINE when Lines > 1 and FLAG_TRUNCATED when
// the group was cut by the limits.
type Event struct {
	Line
	Lines int
	Msg   []byte // valid until the next call on the Joiner
}

// Joiner joins the lines of one stream. The zero Joiner is not usable: see
// NewJoiner.
type Joiner struct {
	spec  *Spec
	state uint8
	n     int // lines in the open group; 0: none open
	first Line
	end   int64
	flags uint32
	last  int64 // when the group last took a line
	buf   []byte
	// held lines (a blank line inside a group) belong to the group only
	// if a continuation follows; else each is an event of its own.
	held []held
	hbuf []byte

	ready []readyEv
	obuf  []byte
	evs   []Event
}

type held struct {
	Line
	from, to int // in hbuf
}

type readyEv struct {
	Line
	lines    int
	from, to int // in obuf
}

// NewJoiner returns a Joiner of one stream under spec (not nil).
func NewJoiner(spec *Spec) *Joiner { return &Joiner{spec: spec} }

// Spec returns the Joiner's spec.
func (j *Joiner) Spec() *Spec { return j.spec }

// Alone reports, without changing anything, that a line of message msg
// would stand alone: no group is open and the rule does not begin one at
// it. The caller then sends the line as it is instead of calling Push (the
// common case, made cheap).
func (j *Joiner) Alone(msg []byte) bool {
	if j.n != 0 {
		return false
	}
	v, _ := j.spec.det.step(0, msg)
	return v == vPlain
}

// Push takes the next line of the stream, its message being msg (not
// holding '\n' at its end), at time now (Unix ns). It returns true when the
// line is an event by itself, to be sent as it is, after the events Ready
// returns: the Joiner kept nothing of msg. Otherwise the Joiner copied msg
// and the caller forgets it.
func (j *Joiner) Push(l Line, msg []byte, now int64) (alone bool) {
	j.clearReady()
	if j.n == 0 {
		v, st := j.spec.det.step(0, msg)
		if v == vPlain {
			return true
		}
		j.open(l, msg, st, now, false)
		return false
	}
	v, st := j.spec.det.step(j.state, msg)
	switch v {
	case vCont:
		for i := range j.held {
			h := &j.held[i]
			j.add(h.Line, j.hbuf[h.from:h.to], now)
		}
		j.held, j.hbuf = j.held[:0], j.hbuf[:0]
		j.add(l, msg, now)
		j.state = st
		return false
	case vHold:
		if len(j.held) == 0 {
			j.held = append(j.held, held{Line: l, from: len(j.hbuf), to: len(j.hbuf) + len(msg)})
			j.hbuf = append(j.hbuf, msg...)
			j.state, j.last = st, now
			return false
		}
		// A second line in doubt: the group has ended.
	case vStart:
		j.close()
		j.open(l, msg, st, now, false)
		return false
	}
	j.close()
	if v, st := j.spec.det.step(0, msg); v != vPlain {
		j.open(l, msg, st, now, false)
		return false
	}
	return true
}

// open begins a group with line l.
func (j *Joiner) open(l Line, msg []byte, st uint8, now int64, cut bool) {
	j.n, j.first, j.end, j.flags, j.last = 1, l, l.End, l.Flags, now
	if cut {
		j.first.Flags |= uint32(ferryv1.Flag_FLAG_TRUNCATED)
		j.flags |= uint32(ferryv1.Flag_FLAG_TRUNCATED)
	}
	j.buf = append(j.buf[:0], msg...)
	j.state = st
}

// add appends line l to the open group, cutting the group first if l would
// take it past max_lines or max_bytes.
func (j *Joiner) add(l Line, msg []byte, now int64) {
	if j.n >= j.spec.maxLines || len(j.buf)+1+len(msg) > j.spec.maxBytes {
		st := j.state
		j.flags |= uint32(ferryv1.Flag_FLAG_TRUNCATED)
		j.emitGroup()
		j.open(l, msg, st, now, true)
		return
	}
	j.n++
	j.end = l.End
	// A time out of range is the first line's only, as the time is.
	j.flags |= l.Flags &^ uint32(ferryv1.Flag_FLAG_TIMESTAMP_OUT_OF_RANGE)
	j.last = now
	j.buf = append(j.buf, '\n')
	j.buf = append(j.buf, msg...)
}

// close ends the open group: it and then each held line become events.
func (j *Joiner) close() {
	j.emitGroup()
	for i := range j.held {
		h := &j.held[i]
		j.emit(h.Line, 1, j.hbuf[h.from:h.to])
	}
	j.held, j.hbuf = j.held[:0], j.hbuf[:0]
	j.n, j.state = 0, 0
	if cap(j.buf) > keepBytes {
		j.buf = nil
	}
}

// keepBytes bounds the buffers a Joiner keeps between groups: a file that
// once logged a huge trace does not hold its size for ever.
const keepBytes = 64 << 10

// clearReady forgets the events Ready returned.
func (j *Joiner) clearReady() {
	j.ready, j.obuf = j.ready[:0], j.obuf[:0]
	if cap(j.obuf) > keepBytes {
		j.obuf = nil
	}
}

// emitGroup makes the open group (without held lines) an event.
func (j *Joiner) emitGroup() {
	l := j.first
	l.End, l.Flags = j.end, j.flags
	if j.n > 1 {
		l.Flags |= uint32(ferryv1.Flag_FLAG_MULTILINE)
	}
	j.emit(l, j.n, j.buf)
	j.n = 0
}

func (j *Joiner) emit(l Line, lines int, msg []byte) {
	from := len(j.obuf)
	j.obuf = append(j.obuf, msg...)
	j.ready = append(j.ready, readyEv{Line: l, lines: lines, from: from, to: len(j.obuf)})
}

// Ready returns the events finished by the last call to Push or Flush, in
// file order; they are valid until the next call.
func (j *Joiner) Ready() []Event {
	j.evs = j.evs[:0]
	for _, r := range j.ready {
		j.evs = append(j.evs, Event{Line: r.Line, Lines: r.lines, Msg: j.obuf[r.from:r.to:r.to]})
	}
	return j.evs
}

// Flush ends the open group, if any; Ready returns what it made.
func (j *Joiner) Flush() {
	j.clearReady()
	if j.n > 0 {
		j.close()
	}
}

// Open reports whether a group is open, and the offset of its first line:
// no offset past it may be committed until the group is sent.
func (j *Joiner) Open() (first int64, ok bool) { return j.first.Off, j.n > 0 }

// Stale reports whether a group is open and took no line for flush_after
// before now.
func (j *Joiner) Stale(now int64) bool {
	return j.n > 0 && now-j.last >= int64(j.spec.flushAfter)
}

// Reset forgets the open group (the file starts over).
func (j *Joiner) Reset() {
	j.n, j.state = 0, 0
	j.held, j.hbuf, j.ready, j.obuf = j.held[:0], j.hbuf[:0], j.ready[:0], j.obuf[:0]
}

// Annotation is the pod annotation naming the multiline rule of its
// containers; Annotation + "." + <container> names one container's and
// takes precedence.
const Annotation = "ferry.io/multiline"

// FromAnnotations returns the rule a pod's annotations ask for for
// container ("" when they ask for none): the value of
// ferry.io/multiline.<container>, else of ferry.io/multiline.
func FromAnnotations(annotations map[string]string, container string) string {
	if v, ok := annotations[Annotation+"."+container]; ok && container != "" {
		return v
	}
	return annotations[Annotation]
}
