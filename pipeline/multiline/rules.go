package multiline

import (
	"bytes"
	"regexp"
)

// verdict is what a rule makes of one line.
type verdict uint8

const (
	// vPlain: the line is not part of the open group (if any); in state 0,
	// it stands alone.
	vPlain verdict = iota
	// vStart: the line begins a new group, ending the open one.
	vStart
	// vCont: the line continues the open group.
	vCont
	// vHold: the line continues the open group only if the next line is a
	// continuation (a blank line inside a trace).
	vHold
)

// A detector is a state machine over the lines of one stream. State 0 is
// "no group open"; any other state is the rule's own. It must be a pure
// function of its arguments: a group re-read after a crash must be cut the
// same way.
type detector interface {
	step(state uint8, line []byte) (verdict, uint8)
}

// Built-in states (0 is "no group open").
const (
	sTrace   uint8 = iota + 1 // inside a trace
	sPyError                  // python: after the final "XError: msg" line
	sPyBlank                  // python: a blank line held after it
	sPyChain                  // python: after "During handling..." / "The above exception..."
	sGoBlank                  // go: a blank line held inside a dump
)

// trimSpace returns line without its leading spaces and tabs, and whether
// there were any.
func trimSpace(line []byte) ([]byte, bool) {
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return line[i:], i > 0
}

// trimCR drops a trailing '\r' (a Windows line end in a container log).
func trimCR(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}

func isBlank(line []byte) bool {
	t, _ := trimSpace(trimCR(line))
	return len(t) == 0
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c|0x20 >= 'a' && c|0x20 <= 'z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// qualifiedName returns the length of the dotted name ("java.lang.X$Y")
// line starts with, and how many dots it holds; 0 if it starts with none.
func qualifiedName(line []byte) (n, dots int) {
	if len(line) == 0 || !isIdentStart(line[0]) {
		return 0, 0
	}
	for n < len(line) {
		c := line[n]
		switch {
		case isIdent(c):
		case c == '.' && n+1 < len(line) && isIdentStart(line[n+1]):
			dots++
		default:
			return n, dots
		}
		n++
	}
	return n, dots
}

// throwable reports whether line starts with the first line of a Java or
// .NET exception: a qualified name (with at least one dot) whose last part
// ends in one of suffixes, then the end of the line, ": message", or (.NET)
// " (0x80131904): message".
func throwable(line []byte, suffixes ...string) bool {
	n, dots := qualifiedName(line)
	if n == 0 || dots == 0 {
		return false
	}
	name := line[:n]
	ok := false
	for _, s := range suffixes {
		if bytes.HasSuffix(name, []byte(s)) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	rest := trimCR(line[n:])
	if len(rest) > 3 && rest[0] == ' ' && rest[1] == '(' {
		if i := bytes.IndexByte(rest, ')'); i > 0 {
			rest = rest[i+1:]
		}
	}
	return len(rest) == 0 || rest[0] == ':'
}

// javaRule: "Exception in thread "main" x.y.ZException: msg" or
// "x.y.ZException: msg" (also ...Error, ...Throwable) begins a trace;
// "\tat ...", "Caused by: ...", "Suppressed: ...", "\t... 12 more" and
// "... 3 common frames omitted" continue it.
type javaRule struct{}

var (
	javaThread   = []byte(`Exception in thread "`)
	javaAt       = []byte("at ")
	javaCaused   = []byte("Caused by: ")
	javaSuppress = []byte("Suppressed: ")
	dots3        = []byte("... ")
)

func (javaRule) step(state uint8, line []byte) (verdict, uint8) {
	if state != 0 {
		t, indented := trimSpace(line)
		switch {
		case indented && bytes.HasPrefix(t, javaAt),
			bytes.HasPrefix(t, javaCaused), bytes.HasPrefix(t, javaSuppress),
			bytes.HasPrefix(t, dots3) && len(t) > 4 && t[4] >= '0' && t[4] <= '9':
			return vCont, sTrace
		}
	}
	if bytes.HasPrefix(line, javaThread) || throwable(line, "Exception", "Error", "Throwable") {
		return vStart, sTrace
	}
	return vPlain, 0
}

// pythonRule: "Traceback (most recent call last):" begins a traceback;
// indented lines (frames, code, 3.11 carets, exception groups) continue
// it, as does the final "XError: msg" line; after that, an optional blank
// line and "During handling of the above exception, another exception
// occurred:" or "The above exception was the direct cause of the following
// exception:" chain the next traceback into the same event.
type pythonRule struct{}

var (
	pyTraceback = []byte("Traceback (most recent call last):")
	pyDuring    = []byte("During handling of the above exception, another exception occurred:")
	pyAbove     = []byte("The above exception was the direct cause of the following exception:")
)

func (pythonRule) step(state uint8, line []byte) (verdict, uint8) {
	l := trimCR(line)
	switch state {
	case sTrace:
		if _, indented := trimSpace(l); indented {
			return vCont, sTrace
		}
		if n, _ := qualifiedName(l); n > 0 && (n == len(l) || l[n] == ':') {
			return vCont, sPyError
		}
	case sPyError, sPyBlank:
		if bytes.Equal(l, pyDuring) || bytes.Equal(l, pyAbove) {
			return vCont, sPyChain
		}
		if state == sPyError && len(l) == 0 {
			return vHold, sPyBlank
		}
	case sPyChain:
		if len(l) == 0 {
			return vCont, sPyChain
		}
		if bytes.Equal(l, pyTraceback) {
			return vCont, sTrace
		}
	}
	if bytes.Equal(l, pyTraceback) {
		return vStart, sTrace
	}
	return vPlain, 0
}

// goRule: "panic: ...", "fatal error: ...", "SIGQUIT: quit" (any SIGxxx),
// a line holding "http: panic serving " or a "goroutine 1 [running]:"
// header begins a dump; goroutine headers, function lines ("main.main()"),
// indented file lines, "created by ...", "[signal ...]", "panic: ..."
// (re-panics), "runtime stack:", "PC=..." and "...additional frames
// elided..." continue it, and so do blank lines followed by one of them.
type goRule struct{}

var (
	goPanic     = []byte("panic: ")
	goFatal     = []byte("fatal error: ")
	goHTTPPanic = []byte("http: panic serving ")
	goRoutine   = []byte("goroutine ")
	goCreated   = []byte("created by ")
	goSignal    = []byte("[signal ")
	goRuntime   = []byte("runtime stack:")
	goPC        = []byte("PC=")
	goElided    = []byte("...additional frames elided...")
)

// goroutineHeader: "goroutine 18 [chan receive, 2 minutes]:" (also with
// the "gp=... m=..." of GOTRACEBACK=system).
func goroutineHeader(l []byte) bool {
	return bytes.HasPrefix(l, goRoutine) && len(l) > len(goRoutine) && l[len(goRoutine)] >= '0' && l[len(goRoutine)] <= '9' &&
		bytes.HasSuffix(l, []byte("]:"))
}

// goFunc: a frame's function line, "main.(*T).run(0xc000012345, {0x1, 0x2})"
// or "panic({0x45e0a0?, 0xc000012345?})": no space before the first '(',
// ending in ')'.
func goFunc(l []byte) bool {
	if len(l) < 3 || !isIdentStart(l[0]) || l[len(l)-1] != ')' {
		return false
	}
	p := bytes.IndexByte(l, '(')
	return p > 0 && bytes.IndexByte(l[:p], ' ') < 0
}

func goSignalName(l []byte) bool {
	if len(l) < 5 || string(l[:3]) != "SIG" {
		return false
	}
	i := 3
	for i < len(l) && l[i] >= 'A' && l[i] <= 'Z' {
		i++
	}
	return i > 3 && i+1 < len(l) && l[i] == ':' && l[i+1] == ' '
}

func (goRule) step(state uint8, line []byte) (verdict, uint8) {
	l := trimCR(line)
	if state != 0 {
		if goroutineHeader(l) || bytes.HasPrefix(l, goRuntime) || bytes.HasPrefix(l, goPanic) {
			return vCont, sTrace
		}
		if state == sTrace {
			if len(l) == 0 {
				return vHold, sGoBlank
			}
			if _, indented := trimSpace(l); indented ||
				goFunc(l) || bytes.HasPrefix(l, goCreated) || bytes.HasPrefix(l, goSignal) ||
				bytes.HasPrefix(l, goPC) || bytes.HasPrefix(l, goFatal) || bytes.Equal(l, goElided) {
				return vCont, sTrace
			}
		}
	}
	if bytes.HasPrefix(l, goPanic) || bytes.HasPrefix(l, goFatal) || goSignalName(l) || goroutineHeader(l) ||
		bytes.Contains(l, goHTTPPanic) {
		return vStart, sTrace
	}
	return vPlain, 0
}

// rubyRule: the first line of an uncaught exception,
// "/app/x.rb:3:in 'm': message (NameError)", or Rails'
// "NoMethodError (undefined method 'x' for nil):" begins a trace; frames
// ("\tfrom /app/x.rb:7:in '<main>'", "  app/models/x.rb:12:in 'y'"),
// "... 12 levels..." and whitespace-only lines continue it.
type rubyRule struct{}

var (
	rbFrom     = []byte("from ")
	rbRB       = []byte(".rb:")
	rbIn       = []byte(":in ")
	rbErrParen = []byte("Error (")
	rbExParen  = []byte("Exception (")
	rbLevels   = []byte(" levels...")
)

// rbLocation reports whether l holds "<file>:<digits>:in ", the file
// ending in ".rb" if rb.
func rbLocation(l []byte, rb bool) bool {
	for {
		i := bytes.Index(l, rbIn)
		if i < 0 {
			return false
		}
		d := i
		for d > 0 && l[d-1] >= '0' && l[d-1] <= '9' {
			d--
		}
		if d < i && d > 0 && l[d-1] == ':' && (!rb || bytes.HasSuffix(l[:d], rbRB)) {
			return true
		}
		l = l[i+len(rbIn):]
	}
}

func (rubyRule) step(state uint8, line []byte) (verdict, uint8) {
	l := trimCR(line)
	if state != 0 {
		t, indented := trimSpace(l)
		switch {
		case indented && len(t) == 0,
			bytes.HasPrefix(t, rbFrom) && rbLocation(t, false),
			indented && rbLocation(t, true),
			bytes.HasPrefix(t, dots3) && bytes.HasSuffix(t, rbLevels):
			return vCont, sTrace
		}
	}
	if len(l) > 0 && l[len(l)-1] == ')' && rbLocation(l, true) ||
		bytes.HasSuffix(l, []byte("):")) && (bytes.Contains(l, rbErrParen) || bytes.Contains(l, rbExParen)) {
		return vStart, sTrace
	}
	return vPlain, 0
}

// dotnetRule: "System.InvalidOperationException: msg", with "Unhandled
// exception. " or "Unhandled Exception: " before it or indentation (ASP.NET
// Core's console logger) begins a trace; "   at ...", " ---> inner", "---
// End of inner exception stack trace ---" and "--- End of stack trace from
// previous location ---" continue it.
type dotnetRule struct{}

var (
	netUnhandled  = []byte("Unhandled exception. ")
	netUnhandled2 = []byte("Unhandled Exception: ")
	netInner      = []byte("---> ")
	netEnd        = []byte("--- End of ")
)

func (dotnetRule) step(state uint8, line []byte) (verdict, uint8) {
	t, indented := trimSpace(line)
	if state != 0 {
		if indented && bytes.HasPrefix(t, javaAt) || bytes.HasPrefix(t, netInner) || bytes.HasPrefix(t, netEnd) {
			return vCont, sTrace
		}
	}
	t = bytes.TrimPrefix(t, netUnhandled)
	t = bytes.TrimPrefix(t, netUnhandled2)
	if throwable(t, "Exception") {
		return vStart, sTrace
	}
	return vPlain, 0
}

// startRule (custom): a line matching re (not matching, with negate)
// begins an event; any other line belongs to the event before it (lines
// before the first start make one event).
type startRule struct {
	re     *regexp.Regexp
	negate bool
}

func (r startRule) step(state uint8, line []byte) (verdict, uint8) {
	if state != 0 && r.re.Match(line) == r.negate {
		return vCont, sTrace
	}
	return vStart, sTrace
}

// continueRule (custom): a line matching re (not matching, with negate)
// belongs to the event before it; any other line begins an event.
type continueRule struct {
	re     *regexp.Regexp
	negate bool
}

func (r continueRule) step(state uint8, line []byte) (verdict, uint8) {
	if state != 0 && r.re.Match(line) != r.negate {
		return vCont, sTrace
	}
	return vStart, sTrace
}
