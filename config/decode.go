package config

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferrylogs/ferry/pipeline/enrich"
	"github.com/ferrylogs/ferry/transport/tlsconf"
)

// FieldError is one problem in a configuration file.
type FieldError struct {
	File         string
	Line, Column int    // 1-based; 0 when unknown
	Path         string // e.g. "inputs[1].paths"; "" for the file as a whole
	Msg          string
	// Absent says the problem is only that a file or directory the
	// configuration names does not exist on this machine: `validate` run
	// on another host than the one the process will run on reports it as
	// a warning, the process itself refuses to start.
	Absent bool
}

// Error formats e as "agent.yaml:7:5: inputs[1].paths: must not be empty".
func (e FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []FieldError

// ValidateResult is what `validate` prints for the result err of loading
// file, and whether the file is valid: every problem an error, except files
// the configuration names that only do not exist on this machine, which are
// warnings (the process checks them again when it starts).
func ValidateResult(file string, err error) (out string, ok bool) {
	if err == nil {
		return file + ": ok\n", true
	}
	es, absent := OnlyAbsent(err)
	if !absent {
		return err.Error() + "\n", false
	}
	var b strings.Builder
	for _, e := range es {
		b.WriteString("warning: " + e.Error() + " (not on this machine; checked again when the process starts)\n")
	}
	b.WriteString(file + ": ok\n")
	return b.String(), true
}

// OnlyAbsent reports whether err is a non-empty Errors whose every problem
// is a file or directory missing on this machine (FieldError.Absent).
func OnlyAbsent(err error) (Errors, bool) {
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		return nil, false
	}
	for _, e := range es {
		if !e.Absent {
			return es, false
		}
	}
	return es, true
}

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

type position struct{ line, col int }

// decoder decodes one file's yaml.Node tree into a config struct and
// collects every problem. Paths look like "inputs[1].paths[0]".
type decoder struct {
	file   string
	errs   Errors
	seen   map[string]position // paths given (non-null) in the file -> key or element position
	failed map[string]bool     // paths that already have an error
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, seen: map[string]position{}, failed: map[string]bool{}}
}

// has reports whether path was given in the file.
func (d *decoder) has(path string) bool { _, ok := d.seen[path]; return ok }

// prefix returns has for the keys of the mapping at path.
func (d *decoder) prefix(path string) func(key string) bool {
	return func(key string) bool { return d.has(path + "." + key) }
}

// fail records a problem at node at.
func (d *decoder) fail(at *yaml.Node, path, msg string) {
	d.failed[path] = true
	d.errs = append(d.errs, FieldError{File: d.file, Line: at.Line, Column: at.Column, Path: path, Msg: msg})
}

// invalid records a failed validation of path, positioned at its key or, if
// the key is absent, at the closest enclosing one. A path that already has an
// error gets no second one.
func (d *decoder) invalid(path, format string, args ...any) {
	d.problem(path, false, format, args...)
}

// fileProblem records that the file or directory a field names could not be
// used because of err; a file that does not exist is marked Absent.
func (d *decoder) fileProblem(path string, err error, format string, args ...any) {
	d.problem(path, errors.Is(err, fs.ErrNotExist), format, args...)
}

func (d *decoder) problem(path string, absent bool, format string, args ...any) {
	if d.failed[path] {
		return
	}
	d.failed[path] = true
	p, ok := d.seen[path]
	for q := path; !ok && q != ""; {
		q = q[:max(strings.LastIndexAny(q, ".["), 0)]
		p, ok = d.seen[q]
	}
	d.errs = append(d.errs, FieldError{File: d.file, Line: p.line, Column: p.col, Path: path, Msg: fmt.Sprintf(format, args...), Absent: absent})
}

// errors returns the problems sorted by position (unpositioned ones last).
func (d *decoder) errors() Errors {
	line := func(e FieldError) int { return cmp.Or(e.Line, math.MaxInt) }
	slices.SortStableFunc(d.errs, func(a, b FieldError) int {
		return cmp.Or(cmp.Compare(line(a), line(b)), cmp.Compare(a.Column, b.Column))
	})
	return d.errs
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// decodeDocument parses data and decodes its single document into out.
func (d *decoder) decodeDocument(data []byte, out any) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, next yaml.Node
	if err := dec.Decode(&doc); err != nil {
		d.syntax(err) // io.EOF: empty file, all defaults
		return
	}
	if err := dec.Decode(&next); err == nil {
		d.errs = append(d.errs, FieldError{File: d.file, Line: next.Line, Column: next.Column, Msg: "only one YAML document is allowed"})
	} else {
		d.syntax(err)
	}
	if len(doc.Content) == 0 {
		return
	}
	root := doc.Content[0]
	d.seen[""] = position{root.Line, root.Column}
	d.value(root, root, "", reflect.ValueOf(out).Elem())
}

// syntax records a YAML parse error.
func (d *decoder) syntax(err error) {
	if err == io.EOF {
		return
	}
	msg, line := err.Error(), 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		msg = msg[len(m[0]):]
		line, _ = strconv.Atoi(m[1])
	}
	d.errs = append(d.errs, FieldError{File: d.file, Line: line, Msg: "invalid YAML: " + msg})
}

// value decodes n into v; problems are reported at node at (the key of a
// mapping field, or the element itself in a list).
func (d *decoder) value(n, at *yaml.Node, path string, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if d.isNull(n) {
		return
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		if s, ok := d.scalar(n, at, path, v.Type()); ok {
			if err := u.UnmarshalText([]byte(s)); err != nil {
				d.fail(at, path, err.Error())
			}
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.mapping(n, at, path, v)
	case reflect.Slice:
		d.sequence(n, at, path, v)
	case reflect.Map:
		d.stringMap(n, at, path, v)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.value(n, at, path, p.Elem())
		v.Set(p)
	case reflect.String:
		if s, ok := d.scalar(n, at, path, v.Type()); ok {
			v.SetString(s)
		}
	case reflect.Int:
		if s, ok := d.scalar(n, at, path, v.Type()); ok {
			i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 0)
			if err != nil {
				d.fail(at, path, fmt.Sprintf("must be an integer, got %q", s))
			}
			v.SetInt(i)
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, at, path, v.Type()); ok {
			switch strings.ToLower(strings.TrimSpace(s)) {
			case "true":
				v.SetBool(true)
			case "false":
				v.SetBool(false)
			default:
				d.fail(at, path, fmt.Sprintf("must be true or false, got %q", s))
			}
		}
	default:
		panic("config: unsupported field type " + v.Type().String())
	}
}

func (d *decoder) mapping(n, at *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(at, path, "must be a mapping, got "+kindOf(n))
		return
	}
	fields, keys := map[string]int{}, []string{}
	for i := range v.NumField() {
		key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		fields[key] = i
		keys = append(keys, key)
	}
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		f, known := fields[k.Value]
		switch prev := first[k.Value]; {
		case k.Kind != yaml.ScalarNode:
			d.fail(k, path, "keys must be strings")
		case k.ShortTag() == "!!merge":
			d.fail(k, path, "merge keys (<<) are not supported")
		case prev != nil:
			d.fail(k, p, fmt.Sprintf("duplicate key (first at line %d)", prev.Line))
		case !known:
			d.fail(k, p, "unknown field"+suggest(k.Value, keys))
		case d.isNull(val):
			first[k.Value] = k // absent: the default applies
		default:
			first[k.Value] = k
			d.seen[p] = position{k.Line, k.Column}
			d.value(val, k, p, v.Field(f))
		}
	}
}

// stringMap decodes a mapping of strings to strings (the only kind of map
// the configuration has); each key is a path of its own ("a.b.key").
func (d *decoder) stringMap(n, at *yaml.Node, path string, v reflect.Value) {
	if v.Type().Key().Kind() != reflect.String || v.Type().Elem().Kind() != reflect.String {
		panic("config: unsupported field type " + v.Type().String())
	}
	if n.Kind != yaml.MappingNode {
		d.fail(at, path, "must be a mapping, got "+kindOf(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := path + "." + k.Value
		switch prev := first[k.Value]; {
		case k.Kind != yaml.ScalarNode:
			d.fail(k, path, "keys must be strings")
			continue
		case k.ShortTag() == "!!merge":
			d.fail(k, path, "merge keys (<<) are not supported")
			continue
		case prev != nil:
			d.fail(k, p, fmt.Sprintf("duplicate key (first at line %d)", prev.Line))
			continue
		}
		first[k.Value] = k
		d.seen[p] = position{k.Line, k.Column}
		s, ok := d.scalar(val, k, p, v.Type().Elem())
		if ok {
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), reflect.ValueOf(s).Convert(v.Type().Elem()))
		}
	}
	v.Set(m)
}

func (d *decoder) sequence(n, at *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(at, path, "must be a list, got "+kindOf(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.seen[p] = position{e.Line, e.Column}
		d.value(e, e, p, s.Index(i))
	}
	v.Set(s)
}

// scalar returns the ${VAR}-expanded value of scalar node n, reporting
// an error if n is not a scalar.
func (d *decoder) scalar(n, at *yaml.Node, path string, t reflect.Type) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(at, path, fmt.Sprintf("must be %s, got %s", describe(t), kindOf(n)))
		return "", false
	}
	s, err := expand(n.Value, os.LookupEnv)
	if err != nil {
		d.fail(at, path, err.Error())
		return "", false
	}
	return s, true
}

// isNull reports whether n counts as absent: null, ~, empty, or an unquoted
// value that expanded to "".
func (d *decoder) isNull(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return false
	}
	if n.ShortTag() == "!!null" {
		return true
	}
	quoted := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
	s, err := expand(n.Value, os.LookupEnv)
	return err == nil && s == "" && !quoted
}

func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a scalar"
}

func describe(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Duration]():
		return "a duration"
	case reflect.TypeFor[ByteSize]():
		return "a byte size"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	}
	return t.String()
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key.
func suggest(key string, known []string) string {
	best, bestDist := "", 3 // suggest only within edit distance 2
	for _, k := range known {
		if dist := editDistance(key, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev = cur
	}
	return prev[len(b)]
}

// expand replaces ${VAR} and ${VAR:-default} (default when VAR is unset or
// empty) in s; $$ is a literal $, any other $ is kept.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] != '$' || i+1 == len(s):
			b.WriteByte(s[i])
		case s[i+1] == '$':
			b.WriteByte('$')
			i++
		case s[i+1] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", errors.New("unterminated ${ (write $$ for a literal $)")
			}
			name, def, hasDef := strings.Cut(s[i+2:i+end], ":-")
			if !envName.MatchString(name) {
				return "", fmt.Errorf("invalid variable name %q in ${...}", name)
			}
			v, _ := lookup(name)
			if hasDef && v == "" {
				v = def
			}
			b.WriteString(v)
			i += end
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), nil
}

var (
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	itemName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// Validation.

func (d *decoder) validateAgent(a *Agent) {
	d.nonEmpty("node", a.Node)
	d.nonEmpty("state_dir", a.StateDir)
	d.address("http", a.HTTP, false)
	d.validateLog("log", a.Log)
	c := a.Aggregator
	d.address("aggregator.address", c.Address, true)
	if d.has("aggregator.addresses") {
		switch {
		case d.has("aggregator.address"):
			d.invalid("aggregator.addresses", "set address or addresses, not both")
		case len(c.Addresses) == 0:
			d.invalid("aggregator.addresses", "must not be empty")
		}
		for i, addr := range c.Addresses {
			p := fmt.Sprintf("aggregator.addresses[%d]", i)
			host, port, err := net.SplitHostPort(addr)
			n, perr := strconv.Atoi(port)
			if err != nil || perr != nil || host == "" || n <= 0 || n > 65535 {
				d.invalid(p, "must be host:port (a dns:/// name goes in address), got %q", addr)
			}
		}
	}
	d.oneOf("aggregator.compression", c.Compression, "none", "gzip")
	d.intRange("aggregator.max_inflight_batches", c.MaxInflightBatches, 1, 64)
	d.intRange("aggregator.batch_max_events", c.BatchMaxEvents, 1, math.MaxInt)
	d.sizeRange("aggregator.batch_max_bytes", c.BatchMaxBytes, KiB, 64*MiB)
	d.atLeast("aggregator.batch_timeout", c.BatchTimeout, MinBatchTimeout)
	d.atLeast("aggregator.shutdown_timeout", c.ShutdownTimeout, MinShutdownTimeout)
	d.backoff("aggregator.backoff_initial", c.BackoffInitial, "aggregator.backoff_max", c.BackoffMax, MinBackoff)
	d.validateClientTLS("aggregator.tls", c.TLS)
	d.validateBearer("aggregator", c)
	d.sizeRange("memory_limit", a.MemoryLimit, 16*MiB, 64*GiB)
	if window := ByteSize(c.MaxInflightBatches+1) * c.BatchMaxBytes; a.MemoryLimit >= 16*MiB && window > a.MemoryLimit/4 {
		d.invalid("aggregator.max_inflight_batches", "(max_inflight_batches + 1) × batch_max_bytes = %s must fit in a quarter of memory_limit (%s)", window, a.MemoryLimit/4)
	}

	if len(a.Inputs) == 0 && !a.Metrics.Enabled {
		d.invalid("inputs", "at least one input is required (or metrics.enabled)")
	}
	names := map[string]string{}
	for i, in := range a.Inputs {
		p := fmt.Sprintf("inputs[%d]", i)
		d.uniqueName(p+".name", in.Name, names)
		d.required(p+".type", in.Type, "container", "file", "syslog")
		switch {
		case in.Type == "syslog":
			d.validateSyslogInput(p, in)
		case d.has(p + ".listen"):
			d.invalid(p+".listen", "only for type syslog")
		case d.has(p + ".spool_max_bytes"):
			d.invalid(p+".spool_max_bytes", "only for type syslog")
		}
		switch {
		case in.Type == "syslog":
		case d.has(p + ".paths"):
			d.globs(p+".paths", in.Paths, true)
		case in.Type == "file":
			d.invalid(p+".paths", "required for type file")
		}
		d.globs(p+".exclude", in.Exclude, false)
		d.oneOf(p+".format", in.Format, "auto", "cri", "docker", "plain")
		d.oneOf(p+".start_at", in.StartAt, "beginning", "end")
		d.sizeRange(p+".max_line_bytes", in.MaxLineBytes, KiB, 64*MiB)
		if a.MemoryLimit >= 16*MiB && in.MaxLineBytes > a.MemoryLimit/4 {
			d.invalid(p+".max_line_bytes", "%s must fit in a quarter of memory_limit (%s)", in.MaxLineBytes, a.MemoryLimit/4)
		}
		d.atLeast(p+".poll_interval", in.PollInterval, MinPollInterval)
		if v := in.ReadDelay; v < 0 || v > MaxReadDelay {
			d.invalid(p+".read_delay", "must be between 0s and %s, got %s", MaxReadDelay, v)
		}
		d.atLeast(p+".glob_interval", in.GlobInterval, MinGlobInterval)
		if v := in.PartialFlushAfter; v < MinPartialFlushAfter || v > MaxPartialFlushAfter {
			d.invalid(p+".partial_flush_after", "must be between %s and %s, got %s", MinPartialFlushAfter, MaxPartialFlushAfter, v)
		}
		if in.Dataset != "" {
			d.indexName(p+".dataset", in.Dataset, 100, "-")
		}
		d.validateMultiline(p+".multiline", in.Multiline, a.MemoryLimit)
		d.oneOf(p+".parser", in.Parser, "none", "haproxy")
		if in.Environment != "" {
			d.indexName(p+".environment", in.Environment, 100, "-")
		}
	}
	d.validateKubernetes("kubernetes", a.Kubernetes)
	d.validateMetrics("metrics", a.Metrics)
}

// validateSyslogInput checks the keys of a syslog input: listen is
// udp://host:port or tcp://host:port; no paths, no multiline rule.
func (d *decoder) validateSyslogInput(p string, in Input) {
	network, addr, ok := strings.Cut(in.Listen, "://")
	switch {
	case in.Listen == "":
		d.invalid(p+".listen", "required for type syslog (udp://host:port or tcp://host:port)")
	case !ok || (network != "udp" && network != "tcp"):
		d.invalid(p+".listen", "must be udp://host:port or tcp://host:port, got %q", in.Listen)
	default:
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			d.invalid(p+".listen", "must be udp://host:port or tcp://host:port, got %q", in.Listen)
		}
	}
	for _, k := range []string{"paths", "exclude", "format", "start_at", "poll_interval", "read_delay", "glob_interval", "partial_flush_after"} {
		if d.has(p + "." + k) {
			d.invalid(p+"."+k, "not for type syslog")
		}
	}
	if in.Multiline.Rule != "none" {
		d.invalid(p+".multiline.rule", "not for type syslog")
	}
	d.sizeRange(p+".spool_max_bytes", in.SpoolMaxBytes, 4*MiB, 1024*GiB)
}

// validateMultiline checks an input's multiline block: start and continue
// must be valid regular expressions, exactly one of them with rule custom
// (with a built-in rule they are not used).
func (d *decoder) validateMultiline(p string, m Multiline, memoryLimit ByteSize) {
	d.oneOf(p+".rule", m.Rule, "java", "python", "go", "ruby", "dotnet", "custom", "none")
	for _, re := range []struct{ key, v string }{{"start", m.Start}, {"continue", m.Continue}} {
		if _, err := regexp.Compile(re.v); re.v != "" && err != nil {
			d.invalid(p+"."+re.key, "%v", err)
		}
	}
	if m.Rule == "custom" && (m.Start == "") == (m.Continue == "") {
		d.invalid(p+".rule", "custom needs exactly one of start or continue")
	}
	d.intRange(p+".max_lines", m.MaxLines, 2, 100000)
	if d.has(p + ".max_bytes") { // else max_line_bytes, checked as such
		d.sizeRange(p+".max_bytes", m.MaxBytes, KiB, 64*MiB)
		if memoryLimit >= 16*MiB && m.MaxBytes > memoryLimit/4 {
			d.invalid(p+".max_bytes", "%s must fit in a quarter of memory_limit (%s)", m.MaxBytes, memoryLimit/4)
		}
	}
	if v := m.FlushAfter; v < Duration(10*time.Millisecond) || v > Duration(time.Hour) {
		d.invalid(p+".flush_after", "must be between 10ms and 1h, got %s", v)
	}
}

func (d *decoder) validateKubernetes(p string, k Kubernetes) {
	d.oneOf(p+".enabled", k.Enabled, "auto", "true", "false")
	if k.DeleteGrace < 0 {
		d.invalid(p+".delete_grace", "must not be negative, got %s", k.DeleteGrace)
	}
	if k.Kubeconfig != "" && k.Enabled != "false" {
		if _, err := os.Stat(k.Kubeconfig); err != nil {
			d.fileProblem(p+".kubeconfig", err, "%v", err)
		}
	}
	for i, a := range k.Annotations {
		d.nonEmpty(fmt.Sprintf("%s.annotations[%d]", p, i), a)
	}
}

func (d *decoder) validateAggregator(a *Aggregator) {
	d.address("listen", a.Listen, false)
	d.address("http", a.HTTP, false)
	d.validateLog("log", a.Log)
	d.sizeRange("max_recv_message_bytes", a.MaxRecvMessageBytes, KiB, GiB)
	d.intRange("max_batches_in_flight", a.MaxBatchesInFlight, 1, 1024)
	d.atLeast("ack_timeout", a.AckTimeout, MinAckTimeout)
	d.atLeast("write_timeout", a.WriteTimeout, MinWriteTimeout)
	d.intRange("max_connections", a.MaxConnections, 0, 1<<30)
	d.atLeast("handshake_timeout", a.HandshakeTimeout, MinHandshakeTimeout)
	d.atLeast("max_connection_age", a.MaxConnectionAge, MinMaxConnectionAge)
	d.atLeast("max_connection_age_grace", a.MaxConnectionAgeGrace, MinMaxConnectionAge)
	d.sizeRange("memory_limit", a.MemoryLimit, 64*MiB, 1024*GiB)
	if a.MemoryLimit >= 64*MiB && a.MaxRecvMessageBytes > a.MemoryLimit/4 {
		d.invalid("max_recv_message_bytes", "%s must fit in a quarter of memory_limit (%s)", a.MaxRecvMessageBytes, a.MemoryLimit/4)
	}
	d.atLeast("shutdown_timeout", a.ShutdownTimeout, MinShutdownTimeout)
	d.validateServerTLS("tls", a.TLS)
	d.validateAuth("auth", a.Auth, a.TLS.Enabled)
	d.validateBuffer("buffer", &a.Buffer, a.Sinks)
	d.validateEnrich("enrich", a.Enrich)
	if len(a.Sinks) == 0 {
		d.invalid("sinks", "at least one sink is required")
	}
	names := map[string]string{}
	for i := range a.Sinks {
		s := &a.Sinks[i]
		p := fmt.Sprintf("sinks[%d]", i)
		d.uniqueName(p+".name", s.Name, names)
		if !d.required(p+".type", s.Type, "file", "stdout", "elasticsearch") {
			continue
		}
		for key, only := range sinkFieldTypes {
			if only != s.Type && d.has(p+"."+key) {
				d.invalid(p+"."+key, "only applies to type %s", only)
			}
		}
		switch s.Type {
		case "file":
			if s.Path == "" {
				d.invalid(p+".path", "required for type file")
			}
		case "elasticsearch":
			d.validateElasticsearch(p, s)
		}
	}
	if a.Alerting != nil {
		d.validateAlerting("alerting", a.Alerting, a.Sinks)
		d.validateNotify("alerting", a.Alerting, a.Buffer.Dir)
	}
}

func (d *decoder) validateEnrich(p string, e Enrich) {
	if re := e.Environment.NamespaceRegex; re != "" {
		if _, err := enrich.CompileNamespaceRegex(re); err != nil {
			d.invalid(p+".environment.namespace_regex", "%v", err)
		}
	}
	for _, ns := range slices.Sorted(maps.Keys(e.Environment.Namespaces)) {
		switch {
		case ns == "":
			d.invalid(p+".environment.namespaces", "a namespace name must not be empty")
		case e.Environment.Namespaces[ns] == "":
			d.invalid(p+".environment.namespaces."+ns, "the environment must not be empty")
		}
	}
	if e.GeoIP != nil {
		d.validateGeoIP(p+".geoip", e.GeoIP)
	}
}

func (d *decoder) validateGeoIP(p string, g *GeoIP) {
	if g.CityDB == "" && g.ASNDB == "" {
		d.invalid(p+".city_db", "city_db or asn_db is required")
	}
	for key, path := range map[string]string{"city_db": g.CityDB, "asn_db": g.ASNDB} {
		if path == "" {
			continue
		}
		if fi, err := os.Stat(path); err != nil {
			d.fileProblem(p+"."+key, err, "%v", err)
		} else if fi.IsDir() {
			d.invalid(p+"."+key, "%s is a directory, not a database file", path)
		}
	}
	if len(g.Fields) == 0 {
		d.invalid(p+".fields", "must not be empty")
	}
	targets := map[string]string{}
	for i, f := range g.Fields {
		fp := fmt.Sprintf("%s.fields[%d]", p, i)
		t, err := enrich.GeoIPTarget(f)
		if err != nil {
			d.invalid(fp, "%v", err)
			continue
		}
		if other, dup := targets[t]; dup {
			d.invalid(fp, "%s and %s would both write %s.geo", other, f, t)
		}
		targets[t] = f
	}
	d.intRange(p+".cache_size", g.CacheSize, 0, 10000000)
}

func (d *decoder) validateBuffer(p string, b *Buffer, sinks []Sink) {
	if d.has(p + ".type") {
		d.required(p+".type", b.Type, "memory", "disk")
	}
	disk := false
	for i := range sinks {
		if d.required(fmt.Sprintf("sinks[%d].buffer", i), sinks[i].Buffer, "memory", "disk") && sinks[i].Buffer == "disk" {
			disk = true
		}
	}
	if disk && b.Dir == "" {
		d.invalid(p+".dir", "required when a sink has a disk buffer")
	}
	d.sizeRange(p+".max_bytes", b.MaxBytes, MiB, 1024*GiB)
	d.sizeRange(p+".segment_bytes", b.SegmentBytes, 64*KiB, GiB)
	d.required(p+".sync", b.Sync, "always", "interval", "never")
	d.atLeast(p+".sync_interval", b.SyncInterval, MinSyncInterval)
	d.intRange(p+".concurrency", b.Concurrency, 1, 64)
	if b.SegmentBytes > b.MaxBytes {
		d.invalid(p+".segment_bytes", "must not exceed max_bytes")
	}
}

// sinkFieldTypes maps each type-specific Sink key to its sink type.
var sinkFieldTypes = func() map[string]string {
	m := map[string]string{}
	t := reflect.TypeFor[Sink]()
	for i := range t.NumField() {
		f := t.Field(i)
		if only := f.Tag.Get("sink"); only != "" {
			m[f.Tag.Get("yaml")] = only
		}
	}
	return m
}()

func (d *decoder) validateElasticsearch(p string, s *Sink) {
	if !d.has(p + ".urls") {
		d.invalid(p+".urls", "required for type elasticsearch")
	} else if len(s.URLs) == 0 {
		d.invalid(p+".urls", "must not be empty")
	}
	for i, raw := range s.URLs {
		d.esURL(fmt.Sprintf("%s.urls[%d]", p, i), raw)
	}
	d.secretFile(p, "password", &s.Password, s.PasswordFile)
	d.secretFile(p, "api_key", &s.APIKey, s.APIKeyFile)
	secretKey := func(key string) string { // the key the secret was given by
		if d.has(p + "." + key + "_file") {
			return p + "." + key + "_file"
		}
		return p + "." + key
	}
	switch {
	case s.Username != "" && s.Password == "" && !d.failed[p+".password_file"]:
		d.invalid(p+".username", "requires password or password_file")
	case s.Password != "" && s.Username == "":
		d.invalid(secretKey("password"), "requires username")
	case s.APIKey != "" && s.Username != "":
		d.invalid(secretKey("api_key"), "cannot be used together with username")
	}
	if s.CAFile != "" {
		d.caFile(p+".ca_file", s.CAFile)
	}
	d.sizeRange(p+".flush_bytes", s.FlushBytes, KiB, 100*MiB)
	d.intRange(p+".flush_events", s.FlushEvents, 1, math.MaxInt)
	d.atLeast(p+".flush_interval", s.FlushInterval, MinFlushInterval)
	d.intRange(p+".max_concurrent_requests", s.MaxConcurrentRequests, 1, 64)
	d.backoff(p+".retry_initial", s.RetryInitial, p+".retry_max", s.RetryMax, MinBackoff)
	d.indexName(p+".dead_letter_data_stream", s.DeadLetterDataStream, 255, "")
	d.oneOf(p+".template_conflict", s.TemplateConflict, "error", "warn")
	if s.Retention < 0 {
		d.invalid(p+".retention", "must not be negative (0 keeps data forever), got %s", s.Retention)
	}
}

// secretFile reads <key>_file into *secret. Errors never include the secret.
func (d *decoder) secretFile(p, key string, secret *string, file string) {
	if file == "" {
		return
	}
	path := p + "." + key + "_file"
	if *secret != "" {
		d.invalid(path, "cannot be used together with %s", key)
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		d.fileProblem(path, err, "cannot read: %v", err)
		return
	}
	if *secret = strings.TrimRight(string(b), "\r\n"); *secret == "" {
		d.invalid(path, "file %s is empty", file)
	}
}

// validateClientTLS checks the agent's tls mapping at p.
func (d *decoder) validateClientTLS(p string, c ClientTLS) {
	if !c.Enabled {
		d.onlyWithTLS(p, "ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify")
		return
	}
	if c.CAFile != "" {
		d.caFile(p+".ca_file", c.CAFile)
	}
	d.keyPair(p, c.CertFile, c.KeyFile)
	if d.has(p+".server_name") && c.ServerName == "" {
		d.invalid(p+".server_name", "must not be empty")
	}
	if c.InsecureSkipVerify && c.CAFile != "" {
		d.invalid(p+".insecure_skip_verify", "cannot be used together with ca_file")
	}
}

// validateServerTLS checks the aggregator's tls mapping at p.
func (d *decoder) validateServerTLS(p string, t ServerTLS) {
	if !t.Enabled {
		d.onlyWithTLS(p, "cert_file", "key_file", "client_ca_file")
		return
	}
	if t.CertFile == "" {
		d.invalid(p+".cert_file", "required when %s.enabled is true", p)
	}
	if t.KeyFile == "" {
		d.invalid(p+".key_file", "required when %s.enabled is true", p)
	}
	if t.CertFile != "" && t.KeyFile != "" {
		d.keyPair(p, t.CertFile, t.KeyFile)
	}
	if t.ClientCAFile != "" {
		d.caFile(p+".client_ca_file", t.ClientCAFile)
	}
}

// onlyWithTLS reports the keys of the tls mapping at p that are given
// while enabled is not true.
func (d *decoder) onlyWithTLS(p string, keys ...string) {
	for _, k := range keys {
		if d.has(p + "." + k) {
			d.invalid(p+"."+k, "only applies when %s.enabled is true", p)
		}
	}
}

// caFile checks a file of PEM CA certificates.
func (d *decoder) caFile(path, file string) {
	if pem, err := os.ReadFile(file); err != nil {
		d.fileProblem(path, err, "cannot read: %v", err)
	} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		d.invalid(path, "no PEM certificate found in %s", file)
	}
}

// keyPair checks cert_file and key_file of the tls mapping at p: both or
// neither; the certificate parses and the key matches it.
func (d *decoder) keyPair(p, certFile, keyFile string) {
	certPath, keyPath := p+".cert_file", p+".key_file"
	switch {
	case certFile == "" && keyFile == "":
		return
	case keyFile == "":
		d.invalid(certPath, "requires key_file")
		return
	case certFile == "":
		d.invalid(keyPath, "requires cert_file")
		return
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		d.fileProblem(certPath, err, "cannot read: %v", err)
	} else if err := parseCert(certPEM); err != nil {
		d.invalid(certPath, "%s: %v", certFile, err)
		certPEM = nil
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		d.fileProblem(keyPath, err, "cannot read: %v", err)
		return
	}
	if certPEM == nil {
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		// crypto/tls's messages never quote the key.
		msg := strings.TrimPrefix(err.Error(), "tls: ")
		if strings.Contains(msg, "does not match") {
			d.invalid(keyPath, "private key in %s does not match cert_file", keyFile)
		} else {
			d.invalid(keyPath, "no usable private key in %s: %s", keyFile, msg)
		}
	}
}

// parseCert checks that data holds a PEM certificate and that the first
// one parses.
func parseCert(data []byte) error {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return errors.New("no PEM certificate found")
		}
		if b.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				return fmt.Errorf("invalid certificate: %v", err)
			}
			return nil
		}
	}
}

// validateBearer checks the agent's bearer_token and bearer_token_file under
// p. Errors never quote the token.
func (d *decoder) validateBearer(p string, c AggregatorClient) {
	key := p + ".bearer_token"
	switch {
	case c.BearerTokenFile != "":
		key += "_file"
		if c.BearerToken != "" {
			d.invalid(key, "cannot be used together with bearer_token")
			return
		}
		b, err := os.ReadFile(c.BearerTokenFile)
		if err != nil {
			d.fileProblem(key, err, "cannot read: %v", err)
			return
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			d.invalid(key, "file %s is empty", c.BearerTokenFile)
		} else if err := tlsconf.CheckToken(tok); err != nil {
			d.invalid(key, "file %s: %v", c.BearerTokenFile, err)
		}
	case d.has(key):
		d.token(key, c.BearerToken)
	default:
		return
	}
	if !c.TLS.Enabled && !d.failed[key] {
		d.invalid(key, "requires %s.tls.enabled: true (a token is never sent without TLS)", p)
	}
}

// token checks a bearer token without quoting it.
func (d *decoder) token(path string, tok Secret) {
	if tok == "" {
		d.invalid(path, "must not be empty")
	} else if err := tlsconf.CheckToken(string(tok)); err != nil {
		d.invalid(path, "%v", err)
	}
}

// validateAuth checks the aggregator's auth mapping at p. Errors never quote
// a token.
func (d *decoder) validateAuth(p string, a Auth, tlsEnabled bool) {
	if !d.has(p) {
		return
	}
	if f := a.BearerTokensFile; f != "" {
		path := p + ".bearer_tokens_file"
		if b, err := os.ReadFile(f); err != nil {
			d.fileProblem(path, err, "cannot read: %v", err)
		} else if toks, err := tlsconf.ParseTokens(b); err != nil {
			d.invalid(path, "%s: %v", f, err)
		} else if len(toks) == 0 {
			d.invalid(path, "no token in %s", f)
		}
	}
	if d.has(p+".bearer_tokens") && len(a.BearerTokens) == 0 {
		d.invalid(p+".bearer_tokens", "must not be empty")
	}
	for i, tok := range a.BearerTokens {
		d.token(fmt.Sprintf("%s.bearer_tokens[%d]", p, i), tok)
	}
	switch {
	case a.BearerTokensFile == "" && !d.has(p+".bearer_tokens"):
		d.invalid(p, "set bearer_tokens_file or bearer_tokens (remove auth to accept any agent)")
	case !tlsEnabled:
		d.invalid(p, "requires tls.enabled: true (tokens are never accepted without TLS)")
	}
}

func (d *decoder) validateLog(p string, l Log) {
	d.oneOf(p+".level", l.Level, "debug", "info", "warn", "error")
	d.oneOf(p+".format", l.Format, "json", "text")
}

func (d *decoder) nonEmpty(path, v string) {
	if v == "" {
		d.invalid(path, "must not be empty")
	}
}

func (d *decoder) oneOf(path, v string, allowed ...string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	d.invalid(path, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	return false
}

// required is oneOf for a key that must be given.
func (d *decoder) required(path, v string, allowed ...string) bool {
	if v == "" {
		d.invalid(path, "required (one of %s)", strings.Join(allowed, ", "))
		return false
	}
	return d.oneOf(path, v, allowed...)
}

func (d *decoder) intRange(path string, v, lo, hi int) {
	switch {
	case hi == math.MaxInt && v < lo:
		d.invalid(path, "must be at least %d, got %d", lo, v)
	case v < lo || v > hi:
		d.invalid(path, "must be between %d and %d, got %d", lo, hi, v)
	}
}

func (d *decoder) sizeRange(path string, v, lo, hi ByteSize) {
	if v < lo || v > hi {
		d.invalid(path, "must be between %s and %s, got %s", lo, hi, v)
	}
}

// atLeast checks a duration's lower bound: what a loop waits between two
// turns (a poll, a flush, a retry) must not be so short that the loop spins.
func (d *decoder) atLeast(path string, v, lo Duration) {
	if v < lo {
		d.invalid(path, "must be at least %s, got %s", lo, v)
	}
}

// backoff checks lo <= initial <= max, blaming whichever of the two was given.
func (d *decoder) backoff(initPath string, init Duration, maxPath string, max, lo Duration) {
	d.atLeast(initPath, init, lo)
	d.atLeast(maxPath, max, lo)
	if init >= lo && max >= lo && max < init {
		if d.has(maxPath) || !d.has(initPath) {
			d.invalid(maxPath, "must be at least %s (%s)", initPath[strings.LastIndex(initPath, ".")+1:], init)
		} else {
			d.invalid(initPath, "must be at most %s (%s)", maxPath[strings.LastIndex(maxPath, ".")+1:], max)
		}
	}
}

// address checks host:port; dial addresses need a host and a non-zero port
// and may be written dns:///host:port.
func (d *decoder) address(path, addr string, dial bool) {
	hostPort, want := addr, "host:port"
	if dial {
		hostPort, want = strings.TrimPrefix(addr, "dns:///"), "host:port or dns:///host:port"
	}
	host, port, err := net.SplitHostPort(hostPort)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 0 || n > 65535 || dial && (host == "" || n == 0) {
		d.invalid(path, "must be %s, got %q", want, addr)
	}
}

func (d *decoder) uniqueName(path, name string, seen map[string]string) {
	if !itemName.MatchString(name) {
		d.invalid(path, "must contain only letters, digits, '.', '_' and '-', got %q", name)
	} else if first, dup := seen[name]; dup {
		d.invalid(path, "duplicate name %q (also %s)", name, first)
	} else {
		seen[name] = path[:strings.LastIndex(path, ".")]
	}
}

// globs checks filepath.Match patterns; nonEmpty requires at least one.
func (d *decoder) globs(path string, patterns []string, nonEmpty bool) {
	if nonEmpty && len(patterns) == 0 {
		d.invalid(path, "must not be empty")
	}
	for i, pat := range patterns {
		p := fmt.Sprintf("%s[%d]", path, i)
		if pat == "" {
			d.invalid(p, "must not be empty")
		} else if _, err := filepath.Match(pat, ""); err != nil {
			d.invalid(p, "invalid glob pattern %q", pat)
		}
	}
}

// esURL checks an http(s)://host[:port] URL without echoing credentials.
func (d *decoder) esURL(path, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		d.invalid(path, "must be an http:// or https:// URL") // err may quote credentials
	case u.User != nil:
		d.invalid(path, "must not contain credentials; use username/password or api_key")
	case u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "":
		d.invalid(path, "must be an http:// or https:// URL with a host, got %q", raw)
	}
}

// indexName checks an Elasticsearch index or data stream name part.
func (d *decoder) indexName(path, v string, maxLen int, extraForbidden string) {
	forbidden := `\/*?"<>|,#:` + extraForbidden
	switch {
	case v == "":
		d.invalid(path, "must not be empty")
	case len(v) > maxLen:
		d.invalid(path, "must be at most %d bytes", maxLen)
	case v != strings.ToLower(v):
		d.invalid(path, "must be lowercase, got %q", v)
	case strings.ContainsAny(v, forbidden+" "):
		d.invalid(path, "must not contain spaces or any of %s, got %q", strings.Join(strings.Split(forbidden, ""), " "), v)
	case strings.IndexAny(v[:1], "-_+.") == 0:
		d.invalid(path, "must not start with -, _, + or ., got %q", v)
	}
}
