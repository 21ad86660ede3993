// Package config loads the YAML configuration of the agent and the aggregator: ${ENV} expansion, defaults, and validation that names every bad field with its line.
//
// Loading works on the yaml.Node tree, so every problem is reported as
// "file:line:col: path: message", and all problems of a file are returned
// together as Errors. Positions point at the key of a mapping field, at the
// element of a list, or at the enclosing item when a required key is missing.
//
// Environment expansion: in every scalar value (never in keys or comments)
// ${VAR} is replaced by the variable's value and ${VAR:-default} by the value,
// or by default when VAR is unset or empty; $$ is a literal $ and any other $
// is kept as is. An unset ${VAR} without a default expands to "" silently
// (as in Fluent Bit and Vector). An unquoted value that expands to "" counts as
// absent, so the field keeps its default (state_dir: ${STATE_DIR}); a quoted
// one ("${VAR}") is the empty string and is validated as such. The expanded
// text is never parsed as YAML. Inside [...] or {...}, quote values holding
// ${...}: YAML reads the { as a flow mapping.
//
// Defaults apply to every absent (or null) field; an empty agent file runs one
// container input, an empty aggregator file one file sink. Anchors and aliases
// work; merge keys (<<) and more than one document are errors.
//
// Secrets: password_file and api_key_file are read at load time into Password
// and APIKey (relative paths are relative to the working directory, trailing
// newlines are dropped). Sink's String, Format, LogValue, MarshalJSON and
// MarshalYAML print "***" for them, so a config can be logged or dumped safely
// (but a dumped config cannot be loaded back with its secrets). Bearer tokens
// are of type Secret, which prints as "***" everywhere; token files are only
// checked at load time (the processes read them, and again when they change),
// and errors never quote a token.
//
// TLS between agent and aggregator: the agent's aggregator.tls and
// bearer_token(_file), the aggregator's tls and auth. Certificate, key and CA
// files must exist and parse at load time; a key must match its certificate.
package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Log configures the process's own logging.
type Log struct {
	Level  string `yaml:"level"`  // debug|info|warn|error, default info
	Format string `yaml:"format"` // json|text, default text
}

// Agent is the configuration of the node agent.
type Agent struct {
	Node     string `yaml:"node"`      // default: $NODE_NAME, else os.Hostname()
	StateDir string `yaml:"state_dir"` // default "./state"
	HTTP     string `yaml:"http"`      // health/ready listen address (host:port), default "127.0.0.1:8081"
	Log      Log    `yaml:"log"`
	// MemoryLimit is the agent's one memory budget, 16MiB..64GiB, default
	// 128MiB (lowered to the container's limit when that is less). The Go
	// runtime's soft limit is set to 80% of it. Log data read and not yet
	// acknowledged is held to parts of it: a sixteenth (8MiB of 128MiB) for
	// lines read and not yet batched, the read-ahead (reading pauses when
	// it is used up; the Go heap grows to about twice what is live, so it
	// costs about twice that in RSS), and at most a quarter for the window
	// of unacknowledged batches, (max_inflight_batches + 1) ×
	// batch_max_bytes, which must fit in it, as must every max_line_bytes.
	MemoryLimit ByteSize         `yaml:"memory_limit"`
	Aggregator  AggregatorClient `yaml:"aggregator"`
	Inputs      []Input          `yaml:"inputs"` // at least one (none: metrics only); default one container input
	Kubernetes  Kubernetes       `yaml:"kubernetes"`
	Metrics     Metrics          `yaml:"metrics"`
}

// Kubernetes is where the agent gets pod and namespace metadata: the API
// server, watched (pods of this node, namespaces) and served from a cache.
type Kubernetes struct {
	// Enabled: auto (default) uses the API server when the agent runs in a
	// cluster (service account) or kubeconfig is set, and runs without
	// metadata otherwise; true requires it; false never asks.
	Enabled    string `yaml:"enabled"`    // auto|true|false
	Kubeconfig string `yaml:"kubeconfig"` // empty: the in-cluster service account
	// DeleteGrace keeps a deleted pod's metadata this long, so that its
	// last lines are still labelled; >= 0, default 5m.
	DeleteGrace Duration `yaml:"delete_grace"`
	// Annotations lists the annotation keys sent with a pod's metadata
	// (default none).
	Annotations []string `yaml:"annotations"`
}

// AggregatorClient is how the agent ships batches to the aggregator.
type AggregatorClient struct {
	Address string `yaml:"address"` // host:port or dns:///host:port, default "127.0.0.1:7070"
	// Addresses lists the host:port of every aggregator replica, instead of
	// address: streams are spread round-robin over them and a stream
	// broken by one replica reopens on another (as with a dns:/// name that
	// resolves to every replica, such as a headless Service).
	Addresses          []string `yaml:"addresses"`
	Compression        string   `yaml:"compression"`          // none|gzip, default none
	MaxInflightBatches int      `yaml:"max_inflight_batches"` // 1..64, default 4
	BatchMaxEvents     int      `yaml:"batch_max_events"`     // >= 1, default 2048
	BatchMaxBytes      ByteSize `yaml:"batch_max_bytes"`      // 1KiB..64MiB, default 1MiB
	BatchTimeout       Duration `yaml:"batch_timeout"`        // >= 1ms, default 200ms
	BackoffInitial     Duration `yaml:"backoff_initial"`      // >= 10ms, default 100ms
	BackoffMax         Duration `yaml:"backoff_max"`          // >= backoff_initial, default 10s
	ShutdownTimeout    Duration `yaml:"shutdown_timeout"`     // >= 100ms, default 20s

	TLS ClientTLS `yaml:"tls"`
	// BearerToken is sent with every stream as "authorization: Bearer
	// <token>"; it requires tls.enabled. BearerTokenFile holds the token
	// instead (checked at load time, read again by the agent when it
	// changes); at most one of the two.
	BearerToken     Secret `yaml:"bearer_token"`
	BearerTokenFile string `yaml:"bearer_token_file"`
}

// ClientTLS is the agent's side of TLS to the aggregator. Files are PEM,
// checked at load time and read again by the agent when they change.
type ClientTLS struct {
	Enabled            bool   `yaml:"enabled"`              // default false; every other key requires it
	CAFile             string `yaml:"ca_file"`              // CAs of the aggregator's certificate; default the system's
	CertFile           string `yaml:"cert_file"`            // client certificate for mutual TLS; with key_file
	KeyFile            string `yaml:"key_file"`             // its private key; with cert_file
	ServerName         string `yaml:"server_name"`          // name to verify; default the host of address
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // accept any server certificate (tests only); not with ca_file
}

// Input is one source of log files on the node.
type Input struct {
	Name         string   `yaml:"name"`           // default "<type>-<index>"; unique; [A-Za-z0-9._-]
	Type         string   `yaml:"type"`           // container|file|syslog (required)
	Paths        []string `yaml:"paths"`          // globs; container default ["/var/log/containers/*.log"]; required for file
	Exclude      []string `yaml:"exclude"`        // globs
	Format       string   `yaml:"format"`         // auto|cri|docker|plain; default auto for container, plain for file
	StartAt      string   `yaml:"start_at"`       // beginning|end for files found at the very first start; default beginning
	MaxLineBytes ByteSize `yaml:"max_line_bytes"` // 1KiB..64MiB, default 256KiB
	PollInterval Duration `yaml:"poll_interval"`  // >= 10ms, default 250ms
	// ReadDelay: after a write notification a file is read this much
	// later, so that the writes of that window (to any file) are read at
	// once, in one read and one batch; 0..1s, default 100ms (0: at once).
	ReadDelay    Duration `yaml:"read_delay"`
	GlobInterval Duration `yaml:"glob_interval"` // how often to look for new files, >= 100ms, default 1s
	Dataset      string   `yaml:"dataset"`       // optional data_stream.dataset override
	// PartialFlushAfter: a partial record (CRI "P", Docker "log" without a
	// newline) whose continuation has not come after this long is sent on
	// its own, flagged partial; 100ms..1h, default 5s.
	PartialFlushAfter Duration `yaml:"partial_flush_after"`
	// Multiline joins the lines of a stack trace into one event.
	Multiline Multiline `yaml:"multiline"`
	// Parser parses each message further: none|haproxy (default none).
	Parser string `yaml:"parser"`
	// Environment is service.environment and the data stream namespace of
	// the input's events when no Kubernetes metadata says otherwise.
	Environment string `yaml:"environment"`
	// Listen is where a syslog input receives: udp://host:port or
	// tcp://host:port (required for type syslog, only for it).
	Listen string `yaml:"listen"`
	// SpoolMaxBytes bounds a syslog input's spool on disk
	// (<state_dir>/spool/<name>); 4MiB..1TiB, default 256MiB.
	SpoolMaxBytes ByteSize `yaml:"spool_max_bytes"`
}

// Multiline is an input's rule for joining lines into events (see package
// pipeline/multiline). A pod's annotation ferry.io/multiline (or
// ferry.io/multiline.<container>) naming a built-in rule overrides Rule.
type Multiline struct {
	Rule     string `yaml:"rule"`     // java|python|go|ruby|dotnet|custom|none; default none
	Start    string `yaml:"start"`    // rule custom: a line matching it begins an event (unused by other rules)
	Continue string `yaml:"continue"` // rule custom: a line matching it belongs to the event before (idem)
	Negate   bool   `yaml:"negate"`   // invert start or continue
	// MaxLines and MaxBytes cut a longer event: the rest continues as a
	// new event, both flagged truncated. 2..100000, default 500; 1KiB..
	// 64MiB, default max_line_bytes.
	MaxLines int      `yaml:"max_lines"`
	MaxBytes ByteSize `yaml:"max_bytes"`
	// FlushAfter: an event still open with no new line for this long is
	// sent; 10ms..1h, default 1s.
	FlushAfter Duration `yaml:"flush_after"`
}

// MinHandshakeTimeout bounds the aggregator's handshake_timeout: a TLS
// handshake over a slow link must have time to complete.
const MinHandshakeTimeout = Duration(100 * time.Millisecond)

// MinMaxConnectionAge bounds the aggregator's max_connection_age and
// max_connection_age_grace: agents reconnecting more often than that would
// spend their time on handshakes.
const MinMaxConnectionAge = Duration(time.Second)

// Aggregator is the configuration of the aggregator.
type Aggregator struct {
	Listen              string   `yaml:"listen"` // gRPC listen address, default "127.0.0.1:7070"
	HTTP                string   `yaml:"http"`   // health/ready listen address, default "127.0.0.1:8082"
	Log                 Log      `yaml:"log"`
	MaxRecvMessageBytes ByteSize `yaml:"max_recv_message_bytes"` // 1KiB..1GiB, default 16MiB
	MaxBatchesInFlight  int      `yaml:"max_batches_in_flight"`  // per agent stream, 1..1024, default 8
	// AckTimeout ends the stream of an agent that does not read its
	// acknowledgements for this long (>= 1s, default 30s), releasing what it
	// holds; the agent re-sends its batches on a new stream.
	AckTimeout Duration `yaml:"ack_timeout"`
	// WriteTimeout bounds one batch's write into the sinks (>= 1s, default
	// 60s): a batch not written by then is answered with a retry, and its
	// agent sends it again after a pause. It bounds how long an agent's
	// batch is held by a sink that does not answer.
	WriteTimeout Duration `yaml:"write_timeout"`
	// MaxConnections bounds the gRPC connections open at once, 0..2^30; a
	// connection beyond it is closed as soon as it is accepted (and
	// counted), connections already open are served. 0, the default, means
	// the limit of open files (raised to its hard limit at start) less 256
	// kept for the rest of the process, at least 64.
	MaxConnections int `yaml:"max_connections"`
	// HandshakeTimeout closes a connection that has not completed its TLS
	// and HTTP/2 handshakes this long after it was accepted, such as a TCP
	// connection that sends nothing (>= 100ms, default 10s).
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
	// MaxConnectionAge closes an agent's connection gracefully (GOAWAY)
	// after this long, so that agents resolve the aggregator's address
	// again and spread over replicas added since (>= 1s, default 10m);
	// MaxConnectionAgeGrace later the connection is closed (>= 1s, default
	// 2m) and the agent re-sends what was not acknowledged on a new one.
	MaxConnectionAge      Duration `yaml:"max_connection_age"`
	MaxConnectionAgeGrace Duration `yaml:"max_connection_age_grace"`
	// MemoryLimit is the aggregator's one memory budget, 64MiB..1TiB,
	// default 1GiB (lowered to the container's limit when that is less).
	// The Go runtime's soft limit is set to 80% of it; batches received and
	// not yet acknowledged, over all connections, are held to a quarter of
	// it (further batches wait in their connection's flow-control window),
	// and max_recv_message_bytes must fit in that quarter.
	MemoryLimit     ByteSize `yaml:"memory_limit"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"` // >= 100ms, default 20s
	Sinks           []Sink   `yaml:"sinks"`            // at least one; default one file sink

	TLS  ServerTLS `yaml:"tls"`
	Auth Auth      `yaml:"auth"`

	Buffer Buffer `yaml:"buffer"`

	// ClusterName is written as orchestrator.cluster.name on every
	// container event; empty (the default): not written.
	ClusterName string `yaml:"cluster_name"`
	Enrich      Enrich `yaml:"enrich"`
	// Alerting evaluates rules over Elasticsearch and sends notices; nil
	// (absent, the default): off. See alerting.go.
	Alerting *Alerting `yaml:"alerting"`
}

// Enrich sets how the aggregator derives fields from the Kubernetes
// metadata the agents send (see pipeline/enrich).
type Enrich struct {
	Environment EnvironmentRules `yaml:"environment"`
	// GeoIP locates client addresses (see pipeline/enrich.GeoIP); nil,
	// the default: off.
	GeoIP *GeoIP `yaml:"geoip"`
}

// GeoIP sets the GeoIP enrichment: for each field X.ip of Fields an event
// has, X.geo.* from CityDB and X.as.* from ASNDB.
type GeoIP struct {
	// CityDB and ASNDB are MaxMind databases (.mmdb: GeoLite2/GeoIP2 City
	// or Country, and ASN); at least one. They must exist when the
	// configuration is loaded; a file replaced later is reopened.
	CityDB string `yaml:"city_db"`
	ASNDB  string `yaml:"asn_db"`
	// Fields are the typed fields holding the addresses; default
	// [source.ip].
	Fields []string `yaml:"fields"`
	// CacheSize is the number of lookups cached (0..10000000, default
	// 10000; 0: no cache).
	CacheSize int `yaml:"cache_size"`
}

// EnvironmentRules give service.environment, which is also the data stream
// namespace (logs-kubernetes.container-<environment>): the first rule that
// gives a non-empty value wins.
type EnvironmentRules struct {
	// NamespaceLabel: 1. this label of the pod's namespace; default
	// "environment"; empty: rule off.
	NamespaceLabel string `yaml:"namespace_label"`
	// NamespaceRegex: 2. the first capture group of this regular
	// expression (RE2) on the namespace name; default
	// '^(?:.+-)?(dev|staging|prod)$'; empty: rule off.
	NamespaceRegex string `yaml:"namespace_regex"`
	// Namespaces: 3. fixed namespace → environment; default none.
	Namespaces map[string]string `yaml:"namespaces"`
	// Default: 4. default "default"; empty: no service.environment (the
	// data stream namespace is then "default").
	Default string `yaml:"default"`
}

// Buffer sets how batches wait for the sinks. A sink with a memory buffer
// is written before the aggregator acks a batch; a sink with a disk buffer
// gets its own write-ahead buffer in <dir>/<sink name>, which the aggregator
// acks once the batch is durable there, feeds the sink from and replays after
// a crash. Each sink may choose with its own `buffer:` key; the default is
// Type when given, else disk for Elasticsearch sinks and memory for others.
type Buffer struct {
	Type         string   `yaml:"type"`          // memory|disk: the default of sinks without their own buffer key
	Dir          string   `yaml:"dir"`           // default "./buffer"; each disk-buffered sink uses <dir>/<sink name>
	MaxBytes     ByteSize `yaml:"max_bytes"`     // per sink, 1MiB..1TiB, default 1GiB; when full, agents are told to retry
	SegmentBytes ByteSize `yaml:"segment_bytes"` // 64KiB..1GiB, default 64MiB
	Sync         string   `yaml:"sync"`          // always|interval|never, default interval
	SyncInterval Duration `yaml:"sync_interval"` // >= 1ms, default 10ms (group commit window)
	Concurrency  int      `yaml:"concurrency"`   // batches written to the sinks at once, 1..64, default 4
}

// ServerTLS is the aggregator's side of TLS. Files are PEM, checked at load
// time and read again by the aggregator when they change.
type ServerTLS struct {
	Enabled  bool   `yaml:"enabled"`   // default false; every other key requires it
	CertFile string `yaml:"cert_file"` // required when enabled
	KeyFile  string `yaml:"key_file"`  // required when enabled
	// ClientCAFile, when set, turns on mutual TLS: agents must present a
	// certificate signed by one of its CAs.
	ClientCAFile string `yaml:"client_ca_file"`
}

// Auth makes the aggregator require "authorization: Bearer <token>" with one
// of the tokens given here or in the file; it requires tls.enabled.
type Auth struct {
	// BearerTokensFile holds one token per line (blank lines and lines
	// starting with # skipped); checked at load time, read again by the
	// aggregator when it changes.
	BearerTokensFile string   `yaml:"bearer_tokens_file"`
	BearerTokens     []Secret `yaml:"bearer_tokens"`
}

// Sink is one output of the aggregator. The sink tag names the only type a
// field applies to; setting it on a sink of another type is an error.
// Defaults of elasticsearch fields are only filled in for elasticsearch sinks.
type Sink struct {
	Name string `yaml:"name"` // default "<type>-<index>"; unique; [A-Za-z0-9._-]
	Type string `yaml:"type"` // file|stdout|elasticsearch (required)
	// Buffer is memory or disk; the default comes from the top-level
	// buffer.type, else disk for elasticsearch and memory for the others.
	Buffer string `yaml:"buffer"`

	Path string `yaml:"path" sink:"file"` // required for file

	URLs                  []string `yaml:"urls" sink:"elasticsearch"` // required; http(s)://host[:port]
	Username              string   `yaml:"username" sink:"elasticsearch"`
	Password              string   `yaml:"password" sink:"elasticsearch"`
	PasswordFile          string   `yaml:"password_file" sink:"elasticsearch"` // read at load time into Password
	APIKey                string   `yaml:"api_key" sink:"elasticsearch"`
	APIKeyFile            string   `yaml:"api_key_file" sink:"elasticsearch"` // read at load time into APIKey
	CAFile                string   `yaml:"ca_file" sink:"elasticsearch"`      // PEM, checked at load time
	TLSSkipVerify         bool     `yaml:"tls_skip_verify" sink:"elasticsearch"`
	FlushBytes            ByteSize `yaml:"flush_bytes" sink:"elasticsearch"`             // 1KiB..100MiB, default 5MiB
	FlushEvents           int      `yaml:"flush_events" sink:"elasticsearch"`            // >= 1, default 5000
	FlushInterval         Duration `yaml:"flush_interval" sink:"elasticsearch"`          // >= 10ms, default 1s; the longest a bulk waits for more events (it goes out earlier when no more are expected and a request slot is free)
	MaxConcurrentRequests int      `yaml:"max_concurrent_requests" sink:"elasticsearch"` // 1..64, default 2
	RetryInitial          Duration `yaml:"retry_initial" sink:"elasticsearch"`           // >= 10ms, default 200ms
	RetryMax              Duration `yaml:"retry_max" sink:"elasticsearch"`               // >= retry_initial, default 30s
	DeadLetterDataStream  string   `yaml:"dead_letter_data_stream" sink:"elasticsearch"` // default "logs-ferry.deadletter-default"
	Retention             Duration `yaml:"retention" sink:"elasticsearch"`               // data stream retention; 0 = keep forever (default)
	SetupTemplates        *bool    `yaml:"setup_templates" sink:"elasticsearch"`         // default true
	// TemplateConflict says what to do with a data stream that another
	// index template outranks Ferry's for: error (refuse its events,
	// retryably, until fixed) or warn (write anyway). Default error.
	TemplateConflict string `yaml:"template_conflict" sink:"elasticsearch"`
}

// LoadAgent reads the agent configuration file at path.
func LoadAgent(path string) (*Agent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseAgent(path, data)
}

// ParseAgent parses an agent configuration; name is used in error messages.
func ParseAgent(name string, data []byte) (*Agent, error) {
	a := DefaultAgent()
	a.Inputs = nil
	d := newDecoder(name)
	d.decodeDocument(data, a)
	if !d.has("inputs") {
		a.Inputs = DefaultAgent().Inputs
	}
	for i := range a.Inputs {
		inputDefaults(&a.Inputs[i], i, d.prefix(fmt.Sprintf("inputs[%d]", i)))
	}
	d.validateAgent(a)
	if len(d.errs) > 0 {
		return nil, d.errors()
	}
	return a, nil
}

// LoadAggregator reads the aggregator configuration file at path.
func LoadAggregator(path string) (*Aggregator, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseAggregator(path, data)
}

// ParseAggregator parses an aggregator configuration; name is used in error
// messages. It reads password_file and api_key_file.
func ParseAggregator(name string, data []byte) (*Aggregator, error) {
	a := DefaultAggregator()
	a.Sinks = nil
	d := newDecoder(name)
	d.decodeDocument(data, a)
	if !d.has("sinks") {
		a.Sinks = DefaultAggregator().Sinks
	}
	for i := range a.Sinks {
		sinkDefaults(&a.Sinks[i], i, d.prefix(fmt.Sprintf("sinks[%d]", i)))
		if a.Sinks[i].Buffer == "" {
			a.Sinks[i].Buffer = defaultSinkBuffer(a.Sinks[i].Type, a.Buffer.Type)
		}
	}
	if g := a.Enrich.GeoIP; g != nil {
		if !d.has("enrich.geoip.fields") {
			g.Fields = []string{"source.ip"}
		}
		if !d.has("enrich.geoip.cache_size") {
			g.CacheSize = 10000
		}
	}
	if a.Alerting != nil {
		alertingDefaults(a.Alerting, d.prefix("alerting"))
	}
	d.validateAggregator(a)
	if len(d.errs) > 0 {
		return nil, d.errors()
	}
	return a, nil
}

// DefaultAgent returns the configuration the agent runs with when no file is given.
func DefaultAgent() *Agent {
	node := os.Getenv("NODE_NAME")
	if node == "" {
		node, _ = os.Hostname()
	}
	a := &Agent{
		Node:        node,
		StateDir:    "./state",
		HTTP:        "127.0.0.1:8081",
		Log:         Log{Level: "info", Format: "text"},
		MemoryLimit: 128 * MiB,
		Aggregator: AggregatorClient{
			Address:            "127.0.0.1:7070",
			Compression:        "none",
			MaxInflightBatches: 4,
			BatchMaxEvents:     2048,
			BatchMaxBytes:      1 * MiB,
			BatchTimeout:       Duration(200 * time.Millisecond),
			BackoffInitial:     Duration(100 * time.Millisecond),
			BackoffMax:         Duration(10 * time.Second),
			ShutdownTimeout:    Duration(20 * time.Second),
		},
		Inputs:     []Input{{Type: "container"}},
		Kubernetes: Kubernetes{Enabled: "auto", DeleteGrace: Duration(5 * time.Minute)},
		Metrics:    DefaultMetrics(),
	}
	inputDefaults(&a.Inputs[0], 0, func(string) bool { return false })
	return a
}

// DefaultAggregator returns the configuration the aggregator runs with when no file is given.
func DefaultAggregator() *Aggregator {
	a := &Aggregator{
		Listen:              "127.0.0.1:7070",
		HTTP:                "127.0.0.1:8082",
		Log:                 Log{Level: "info", Format: "text"},
		MaxRecvMessageBytes: 16 * MiB,
		MaxBatchesInFlight:  8,
		AckTimeout:          Duration(30 * time.Second),
		WriteTimeout:        Duration(60 * time.Second),
		HandshakeTimeout:    Duration(10 * time.Second),
		MemoryLimit:         1 * GiB,
		ShutdownTimeout:     Duration(20 * time.Second),
		Buffer:              Buffer{Dir: "./buffer", MaxBytes: 1 * GiB, SegmentBytes: 64 * MiB, Sync: "interval", SyncInterval: Duration(10 * time.Millisecond), Concurrency: 4},
		Sinks:               []Sink{{Type: "file", Path: "./out/events.ndjson", Buffer: "memory"}},
		Enrich: Enrich{Environment: EnvironmentRules{
			NamespaceLabel: "environment", NamespaceRegex: `^(?:.+-)?(dev|staging|prod)$`, Default: "default",
		}},
		MaxConnectionAge: Duration(10 * time.Minute), MaxConnectionAgeGrace: Duration(2 * time.Minute),
	}
	sinkDefaults(&a.Sinks[0], 0, func(string) bool { return false })
	return a
}

// inputDefaults fills the absent fields of input i; has reports whether a key
// was given in the file.
func inputDefaults(in *Input, i int, has func(key string) bool) {
	if in.Name == "" {
		in.Name = fmt.Sprintf("%s-%d", in.Type, i)
	}
	if !has("paths") && in.Type == "container" {
		in.Paths = []string{"/var/log/containers/*.log"}
	}
	if !has("format") {
		in.Format = "plain"
		if in.Type == "container" {
			in.Format = "auto"
		}
	}
	if !has("start_at") {
		in.StartAt = "beginning"
	}
	if !has("max_line_bytes") {
		in.MaxLineBytes = 256 * KiB
	}
	if !has("poll_interval") {
		in.PollInterval = Duration(250 * time.Millisecond)
	}
	if !has("read_delay") {
		in.ReadDelay = DefaultReadDelay
	}
	if !has("glob_interval") {
		in.GlobInterval = Duration(time.Second)
	}
	if !has("partial_flush_after") {
		in.PartialFlushAfter = Duration(5 * time.Second)
	}
	if !has("multiline.rule") {
		in.Multiline.Rule = "none"
	}
	if !has("multiline.max_lines") {
		in.Multiline.MaxLines = 500
	}
	if !has("multiline.max_bytes") {
		in.Multiline.MaxBytes = in.MaxLineBytes
	}
	if !has("multiline.flush_after") {
		in.Multiline.FlushAfter = Duration(time.Second)
	}
	if !has("parser") {
		in.Parser = "none"
	}
	if !has("spool_max_bytes") && in.Type == "syslog" {
		in.SpoolMaxBytes = 256 * MiB
	}
}

// defaultSinkBuffer is the buffer of a sink that does not name one.
func defaultSinkBuffer(sinkType, def string) string {
	switch {
	case def != "":
		return def
	case sinkType == "elasticsearch":
		return "disk"
	default:
		return "memory"
	}
}

// sinkDefaults fills the absent fields of sink i; has reports whether a key
// was given in the file.
func sinkDefaults(s *Sink, i int, has func(key string) bool) {
	if s.Name == "" {
		s.Name = fmt.Sprintf("%s-%d", s.Type, i)
	}
	if s.Type != "elasticsearch" {
		return
	}
	if !has("flush_bytes") {
		s.FlushBytes = 5 * MiB
	}
	if !has("flush_events") {
		s.FlushEvents = 5000
	}
	if !has("flush_interval") {
		s.FlushInterval = Duration(time.Second)
	}
	if !has("max_concurrent_requests") {
		s.MaxConcurrentRequests = 2
	}
	if !has("retry_initial") {
		s.RetryInitial = Duration(200 * time.Millisecond)
	}
	if !has("retry_max") {
		s.RetryMax = Duration(30 * time.Second)
	}
	if !has("dead_letter_data_stream") {
		s.DeadLetterDataStream = "logs-ferry.deadletter-default"
	}
	if s.SetupTemplates == nil {
		t := true
		s.SetupTemplates = &t
	}
	if !has("template_conflict") {
		s.TemplateConflict = "error"
	}
}

// redacted is what secrets print as.
const redacted = "***"

// LogValue implements slog.LogValuer: the fields that apply to the sink's
// type, with password and api_key shown as "***".
func (s Sink) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("name", s.Name), slog.String("type", s.Type)}
	switch s.Type {
	case "file":
		attrs = append(attrs, slog.String("path", s.Path))
	case "elasticsearch":
		attrs = append(attrs, slog.String("urls", strings.Join(s.URLs, ",")))
		opt := func(k, v string) {
			if v != "" {
				attrs = append(attrs, slog.String(k, v))
			}
		}
		opt("username", s.Username)
		opt("password", mask(s.Password))
		opt("password_file", s.PasswordFile)
		opt("api_key", mask(s.APIKey))
		opt("api_key_file", s.APIKeyFile)
		opt("ca_file", s.CAFile)
		attrs = append(attrs,
			slog.Bool("tls_skip_verify", s.TLSSkipVerify),
			slog.String("flush_bytes", s.FlushBytes.String()),
			slog.Int("flush_events", s.FlushEvents),
			slog.String("flush_interval", s.FlushInterval.String()),
			slog.Int("max_concurrent_requests", s.MaxConcurrentRequests),
			slog.String("retry_initial", s.RetryInitial.String()),
			slog.String("retry_max", s.RetryMax.String()),
			slog.String("dead_letter_data_stream", s.DeadLetterDataStream),
			slog.String("retention", s.Retention.String()),
			slog.Bool("setup_templates", s.SetupTemplates == nil || *s.SetupTemplates),
			slog.String("template_conflict", s.TemplateConflict),
		)
	}
	return slog.GroupValue(attrs...)
}

// String returns the sink as "{name=es type=elasticsearch ...}" with secrets
// shown as "***".
func (s Sink) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, a := range s.LogValue().Group() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", a.Key, a.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// Format makes every fmt verb (%v, %+v, %#v, %d, ...) print String, so no
// verb reveals a secret.
func (s Sink) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// MarshalJSON encodes the sink with secrets replaced by "***".
func (s Sink) MarshalJSON() ([]byte, error) {
	type plain Sink
	return json.Marshal(plain(s.redact()))
}

// MarshalYAML encodes the sink with secrets replaced by "***".
func (s Sink) MarshalYAML() (any, error) {
	type plain Sink
	return plain(s.redact()), nil
}

func (s Sink) redact() Sink {
	s.Password, s.APIKey = mask(s.Password), mask(s.APIKey)
	return s
}

// Secret is a string that prints as "***" (empty as "") through fmt,
// slog, JSON and YAML, wherever it sits in a config.
type Secret string

// String returns "***" for a non-empty secret.
func (s Secret) String() string { return mask(string(s)) }

// Format makes every fmt verb print String.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes the secret as "***".
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML encodes the secret as "***".
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return redacted
}
