package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferrylogs/ferry/transport/tlsconf/tlstest"
)

func ptr[T any](v T) *T { return &v }

// tlsFixtures writes a CA, server and client certificates and token files
// to a new directory, and points FERRY_TEST_TLS_DIR at it (the good files
// refer to it).
func tlsFixtures(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ferry-ca")
	ca.Write(t, dir, "ca")
	ca.Server(t, "ferry-aggregator.logging.svc").Write(t, dir, "server")
	ca.Client(t, "agent").Write(t, dir, "client")
	tlstest.WriteFile(t, filepath.Join(dir, "agent-token"), []byte("agent-token-value\n"))
	tlstest.WriteFile(t, filepath.Join(dir, "tokens"), []byte("# agents\nfile-token-1\nfile-token-2\n"))
	t.Setenv("FERRY_TEST_TLS_DIR", dir)
	return dir
}

func TestAgentGood(t *testing.T) {
	dir := tlsFixtures(t)
	got, err := LoadAgent("testdata/agent.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Agent{
		Node:        "node-a",
		StateDir:    "/var/lib/ferry",
		HTTP:        "0.0.0.0:9081",
		Log:         Log{Level: "debug", Format: "json"},
		MemoryLimit: 256 * MiB,
		Aggregator: AggregatorClient{
			Address:            "dns:///ferry-aggregator.logging.svc:7070",
			Compression:        "gzip",
			MaxInflightBatches: 8,
			BatchMaxEvents:     4096,
			BatchMaxBytes:      2 * MiB,
			BatchTimeout:       Duration(500 * time.Millisecond),
			BackoffInitial:     Duration(time.Second),
			BackoffMax:         Duration(time.Minute),
			ShutdownTimeout:    Duration(30 * time.Second),
			TLS: ClientTLS{
				Enabled:    true,
				CAFile:     dir + "/ca.pem",
				CertFile:   dir + "/client.pem",
				KeyFile:    dir + "/client-key.pem",
				ServerName: "ferry-aggregator.logging.svc",
			},
			BearerTokenFile: dir + "/agent-token",
		},
		Inputs: []Input{{
			Name:              "containers",
			Type:              "container",
			Paths:             []string{"/var/log/containers/*.log"},
			Exclude:           []string{"/var/log/containers/ferry-*.log"},
			Format:            "cri",
			StartAt:           "end",
			MaxLineBytes:      512 * KiB,
			PollInterval:      Duration(100 * time.Millisecond),
			ReadDelay:         DefaultReadDelay,
			GlobInterval:      Duration(5 * time.Second),
			Dataset:           "kubernetes.container",
			PartialFlushAfter: Duration(5 * time.Second),
			Multiline:         Multiline{Rule: "none", MaxLines: 500, MaxBytes: 512 * KiB, FlushAfter: Duration(time.Second)},
			Parser:            "none",
		}, {
			Name:              "file-1", // defaults from here on
			Type:              "file",
			Paths:             []string{"/var/log/syslog", "/var/log/*.log"},
			Format:            "plain",
			StartAt:           "beginning",
			MaxLineBytes:      256 * KiB,
			PollInterval:      Duration(250 * time.Millisecond),
			ReadDelay:         DefaultReadDelay,
			GlobInterval:      Duration(time.Second),
			PartialFlushAfter: Duration(5 * time.Second),
			Multiline:         Multiline{Rule: "none", MaxLines: 500, MaxBytes: 256 * KiB, FlushAfter: Duration(time.Second)},
			Parser:            "none",
		}},
		Kubernetes: Kubernetes{Enabled: "true", DeleteGrace: Duration(2 * time.Minute), Annotations: []string{"team", "ferry.io/owner"}},
		Metrics:    DefaultMetrics(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestAggregatorGood(t *testing.T) {
	dir := tlsFixtures(t)
	t.Setenv("FERRY_TEST_API_KEY", "") // ${FERRY_TEST_API_KEY:-default}
	t.Setenv("FERRY_TEST_TOKEN", "")   // ${FERRY_TEST_TOKEN:-default}
	got, err := LoadAggregator("testdata/aggregator.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Aggregator{
		Listen:              "0.0.0.0:7070",
		HTTP:                "0.0.0.0:9082",
		Log:                 Log{Level: "warn", Format: "json"},
		MaxRecvMessageBytes: 32 * MiB,
		MaxBatchesInFlight:  16,
		AckTimeout:          Duration(time.Minute),
		WriteTimeout:        Duration(90 * time.Second),
		MaxConnections:      5000,
		HandshakeTimeout:    Duration(5 * time.Second),
		MemoryLimit:         2 * GiB,
		ShutdownTimeout:     Duration(45 * time.Second),
		Buffer: Buffer{Type: "disk", Dir: "/var/lib/ferry/buffer", MaxBytes: 2 * GiB, SegmentBytes: 32 * MiB,
			Sync: "always", SyncInterval: Duration(5 * time.Millisecond), Concurrency: 8},
		MaxConnectionAge: Duration(5 * time.Minute), MaxConnectionAgeGrace: Duration(30 * time.Second),
		Enrich: DefaultAggregator().Enrich,
		TLS: ServerTLS{
			Enabled:      true,
			CertFile:     dir + "/server.pem",
			KeyFile:      dir + "/server-key.pem",
			ClientCAFile: dir + "/ca.pem",
		},
		Auth: Auth{
			BearerTokensFile: dir + "/tokens",
			BearerTokens:     []Secret{"inline-token-1", "inline-token-2"},
		},
		Sinks: []Sink{
			{Name: "archive", Type: "file", Path: "/data/events.ndjson", Buffer: "memory"},
			{Name: "stdout-1", Type: "stdout", Buffer: "disk"},
			{
				Name:                  "es",
				Type:                  "elasticsearch",
				Buffer:                "disk",
				URLs:                  []string{"https://es-0.example:9200", "http://es-1.example:9200"},
				Username:              "ferry",
				Password:              "s3cr3t-from-file",
				PasswordFile:          "testdata/es-password.txt",
				CAFile:                "testdata/ca.pem",
				TLSSkipVerify:         true,
				FlushBytes:            10_000_000,
				FlushEvents:           10000,
				FlushInterval:         Duration(2 * time.Second),
				MaxConcurrentRequests: 4,
				RetryInitial:          Duration(500 * time.Millisecond),
				RetryMax:              Duration(time.Minute),
				DeadLetterDataStream:  "logs-ferry.dlq-prod",
				Retention:             Duration(30 * 24 * time.Hour),
				SetupTemplates:        ptr(false),
				TemplateConflict:      "warn",
			},
			{
				Name:                  "es-cloud",
				Type:                  "elasticsearch",
				Buffer:                "disk",
				URLs:                  []string{"https://cloud.example"},
				APIKey:                "c2VjcmV0LWFwaS1rZXk=",
				FlushBytes:            5 * MiB,
				FlushEvents:           5000,
				FlushInterval:         Duration(time.Second),
				MaxConcurrentRequests: 2,
				RetryInitial:          Duration(200 * time.Millisecond),
				RetryMax:              Duration(30 * time.Second),
				DeadLetterDataStream:  "logs-ferry.deadletter-default",
				SetupTemplates:        ptr(true),
				TemplateConflict:      "error",
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want) // Sink's %#v is redacted
		for i := range min(len(got.Sinks), len(want.Sinks)) {
			if !reflect.DeepEqual(got.Sinks[i], want.Sinks[i]) {
				t.Errorf("sinks[%d] differ: got password=%q api_key=%q", i, got.Sinks[i].Password, got.Sinks[i].APIKey)
			}
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("NODE_NAME", "node-from-env")
	a := DefaultAgent()
	if a.Node != "node-from-env" || a.StateDir != "./state" || a.HTTP != "127.0.0.1:8081" ||
		a.Log != (Log{"info", "text"}) || a.Aggregator.Address != "127.0.0.1:7070" ||
		a.Aggregator.BatchMaxBytes != MiB || a.Aggregator.BackoffMax != Duration(10*time.Second) {
		t.Errorf("DefaultAgent() = %+v", a)
	}
	wantIn := Input{Name: "container-0", Type: "container", Paths: []string{"/var/log/containers/*.log"},
		Format: "auto", StartAt: "beginning", MaxLineBytes: 256 * KiB,
		PollInterval: Duration(250 * time.Millisecond), ReadDelay: DefaultReadDelay, GlobInterval: Duration(time.Second),
		PartialFlushAfter: Duration(5 * time.Second),
		Multiline:         Multiline{Rule: "none", MaxLines: 500, MaxBytes: 256 * KiB, FlushAfter: Duration(time.Second)}, Parser: "none"}
	if len(a.Inputs) != 1 || !reflect.DeepEqual(a.Inputs[0], wantIn) {
		t.Errorf("DefaultAgent().Inputs = %+v", a.Inputs)
	}
	g := DefaultAggregator()
	if g.Listen != "127.0.0.1:7070" || g.HTTP != "127.0.0.1:8082" || g.MaxRecvMessageBytes != 16*MiB ||
		g.MaxBatchesInFlight != 8 || g.ShutdownTimeout != Duration(20*time.Second) ||
		!reflect.DeepEqual(g.Sinks, []Sink{{Name: "file-0", Type: "file", Path: "./out/events.ndjson", Buffer: "memory"}}) {
		t.Errorf("DefaultAggregator() = %+v", g)
	}

	// Empty, comment-only, "---" and null-valued files are all defaults.
	for _, src := range []string{"", "# nothing\n", "---\n", "inputs:\nlog: ~\naggregator: null\n"} {
		a, err := ParseAgent("agent.yaml", []byte(src))
		if err != nil || !reflect.DeepEqual(a, DefaultAgent()) {
			t.Errorf("ParseAgent(%q) = %+v, %v; want defaults", src, a, err)
		}
		g, err := ParseAggregator("aggregator.yaml", []byte(src))
		if err != nil && src != "inputs:\nlog: ~\naggregator: null\n" || err == nil && !reflect.DeepEqual(g, DefaultAggregator()) {
			t.Errorf("ParseAggregator(%q) = %+v, %v; want defaults", src, g, err)
		}
	}

	// Per-item defaults depend on the type.
	a, err := ParseAgent("agent.yaml", []byte("inputs:\n  - type: file\n    paths: [/x]\n  - type: container\n"))
	if err != nil {
		t.Fatal(err)
	}
	if in := a.Inputs[0]; in.Name != "file-0" || in.Format != "plain" || in.Paths[0] != "/x" {
		t.Errorf("file input = %+v", in)
	}
	if in := a.Inputs[1]; in.Name != "container-1" || in.Format != "auto" || len(in.Paths) != 1 {
		t.Errorf("container input = %+v", in)
	}
}

// Each bad file's complete error output, in file order.
var badFiles = map[string][]string{
	"agent.keys.bad.yaml": {
		`2:1: nodename: unknown field`,
		`5:3: log.level: duplicate key (first at line 4)`,
		`7:3: aggregator.adress: unknown field (did you mean "address"?)`,
		`12:5: inputs[0].pathz: unknown field (did you mean "paths"?)`,
		`13:5: inputs[0].colour: unknown field`,
		`14:5: inputs[1]: merge keys (<<) are not supported`,
		`14:5: inputs[1].type: required (one of container, file, syslog)`,
	},
	"agent.noinputs.bad.yaml": {
		`1:1: inputs: at least one input is required (or metrics.enabled)`,
	},
	"agent.syntax.bad.yaml": {
		`2: invalid YAML: did not find expected '-' indicator`,
	},
	"agent.twodocs.bad.yaml": {
		`2:1: only one YAML document is allowed`,
	},
	"agent.types.bad.yaml": {
		`2:1: node: must be a string, got a list`,
		`3:1: state_dir: must be a string, got a mapping`,
		`4:1: log: must be a mapping, got a scalar`,
		`6:3: aggregator.max_inflight_batches: must be an integer, got "lots"`,
		`7:3: aggregator.batch_max_events: must be an integer, got "1.5"`,
		`8:3: aggregator.batch_max_bytes: invalid byte size "5K" (want e.g. 1024, 512B, 256KiB, 5MiB, 1GiB, 5MB)`,
		`9:3: aggregator.batch_timeout: invalid duration "soon" (want e.g. 250ms, 1s, 2m, 1h30m, 7d, or whole seconds)`,
		`10:3: aggregator.backoff_max: must be a duration, got a list`,
		`13:5: inputs[0].paths: must be a list, got a scalar`,
		`14:5: inputs[0].poll_interval: invalid duration "1.5" (want e.g. 250ms, 1s, 2m, 1h30m, 7d, or whole seconds)`,
		`16:17: inputs[1].paths[1]: must be a string, got a list`,
		`16:23: inputs[1].paths[2]: must be a string, got a mapping`,
	},
	"agent.values.bad.yaml": {
		`2:1: node: must not be empty`,
		`3:1: state_dir: must not be empty`,
		`4:1: http: must be host:port, got "localhost"`,
		`6:3: log.level: must be one of debug, info, warn, error, got "verbose"`,
		`7:3: log.format: must be one of json, text, got "xml"`,
		`9:3: aggregator.address: must be host:port or dns:///host:port, got ":7070"`,
		`10:3: aggregator.compression: must be one of none, gzip, got "zstd"`,
		`11:3: aggregator.max_inflight_batches: must be between 1 and 64, got 100`,
		`12:3: aggregator.batch_max_events: must be at least 1, got 0`,
		`13:3: aggregator.batch_max_bytes: must be between 1KiB and 64MiB, got 512B`,
		`14:3: aggregator.batch_timeout: must be at least 1ms, got 0s`,
		`16:3: aggregator.backoff_max: must be at least backoff_initial (5s)`,
		`17:3: aggregator.shutdown_timeout: must be at least 100ms, got -1s`,
		`20:5: inputs[0].paths: must not be empty`,
		`21:5: inputs[0].format: must be one of auto, cri, docker, plain, got "json"`,
		`22:5: inputs[0].start_at: must be one of beginning, end, got "middle"`,
		`23:5: inputs[1].name: must contain only letters, digits, '.', '_' and '-', got "app logs"`,
		`23:5: inputs[1].paths: required for type file`,
		`27:13: inputs[2].paths[0]: invalid glob pattern "/var/log/[a-"`,
		`27:29: inputs[2].paths[1]: must not be empty`,
		`28:15: inputs[2].exclude[0]: invalid glob pattern "\\"`,
		`29:5: inputs[2].max_line_bytes: must be between 1KiB and 64MiB, got 1GiB`,
		`30:5: inputs[2].poll_interval: must be at least 10ms, got 0s`,
		`31:5: inputs[2].glob_interval: must be at least 100ms, got -5s`,
		`32:5: inputs[2].dataset: must be lowercase, got "Nginx-Access"`,
		`33:5: inputs[3].name: duplicate name "dup" (also inputs[2])`,
		`34:5: inputs[3].type: must be one of container, file, syslog, got "socket"`,
	},
	"agent.addresses.bad.yaml": {
		`3:3: aggregator.addresses: set address or addresses, not both`,
		`3:32: aggregator.addresses[1]: must be host:port (a dns:/// name goes in address), got "dns:///agg:7070"`,
		`3:51: aggregator.addresses[2]: must be host:port (a dns:/// name goes in address), got "10.0.0.3"`,
		`3:63: aggregator.addresses[3]: must be host:port (a dns:/// name goes in address), got "host:0"`,
	},
	"agent.memory.bad.yaml": {
		`4:3: aggregator.max_inflight_batches: (max_inflight_batches + 1) × batch_max_bytes = 9MiB must fit in a quarter of memory_limit (8MiB)`,
		`8:5: inputs[0].max_line_bytes: 16MiB must fit in a quarter of memory_limit (8MiB)`,
	},
	"agent.memory.small.bad.yaml": {
		`1:1: memory_limit: must be between 16MiB and 64GiB, got 8MiB`,
	},
	"aggregator.memory.bad.yaml": {
		`2:1: max_recv_message_bytes: 32MiB must fit in a quarter of memory_limit (16MiB)`,
		`3:1: ack_timeout: must be at least 1s, got 0s`,
	},
	"aggregator.conns.bad.yaml": {
		`1:1: max_connections: must be between 0 and 1073741824, got -1`,
		`2:1: handshake_timeout: must be at least 100ms, got 10ms`,
		`3:1: max_connection_age: must be at least 1s, got 500ms`,
		`4:1: max_connection_age_grace: must be at least 1s, got 0s`,
	},
	"aggregator.nosinks.bad.yaml": {
		`1:1: sinks: at least one sink is required`,
	},
	"aggregator.sinks.bad.yaml": {
		`2:1: listen: must be host:port, got "0.0.0.0"`,
		`3:1: http: must be host:port, got "127.0.0.1:99999"`,
		`4:1: max_recv_message_bytes: must be between 1KiB and 1GiB, got 2GiB`,
		`5:1: max_batches_in_flight: must be between 1 and 1024, got 0`,
		`6:1: shutdown_timeout: must be at least 100ms, got 0s`,
		`8:5: sinks[0].path: required for type file`,
		`9:5: sinks[0].urls: only applies to type elasticsearch`,
		`10:5: sinks[0].flush_events: only applies to type elasticsearch`,
		`11:5: sinks[1].path: required for type file`,
		`13:5: sinks[2].path: only applies to type file`,
		`14:5: sinks[3].urls: required for type elasticsearch`,
		`16:5: sinks[4].name: duplicate name "es" (also sinks[3])`,
		`18:12: sinks[4].urls[0]: must be an http:// or https:// URL with a host, got "ftp://es:21"`,
		`18:27: sinks[4].urls[1]: must not contain credentials; use username/password or api_key`,
		`18:62: sinks[4].urls[2]: must be an http:// or https:// URL`,
		`21:5: sinks[4].password_file: cannot be used together with password`,
		`22:5: sinks[4].api_key_file: cannot read: open testdata/missing-api-key: no such file or directory`,
		`23:5: sinks[4].ca_file: no PEM certificate found in testdata/es-password.txt`,
		`25:5: sinks[5].urls: must not be empty`,
		`26:5: sinks[5].username: requires password or password_file`,
		`27:5: sinks[5].flush_bytes: must be between 1KiB and 100MiB, got 512MiB`,
		`28:5: sinks[5].flush_events: must be at least 1, got 0`,
		`29:5: sinks[5].flush_interval: must be at least 10ms, got 0s`,
		`30:5: sinks[5].max_concurrent_requests: must be between 1 and 64, got 65`,
		`32:5: sinks[5].retry_max: must be at least retry_initial (1m)`,
		`33:5: sinks[5].dead_letter_data_stream: must not contain spaces or any of \ / * ? " < > | , # :, got "logs-ferry dead"`,
		`34:5: sinks[5].retention: must not be negative (0 keeps data forever), got -24h`,
		`37:5: sinks[6].password: requires username`,
		`42:5: sinks[7].api_key: cannot be used together with username`,
		`43:5: sinks[7].dead_letter_data_stream: must not start with -, _, + or ., got "_logs"`,
		`44:5: sinks[8].type: must be one of file, stdout, elasticsearch, got "kafka"`,
		`45:5: sinks[8].brokers: unknown field`,
		`46:5: sinks[9].type: required (one of file, stdout, elasticsearch)`,
	},
}

func load(path string) (any, error) {
	if strings.HasPrefix(filepath.Base(path), "agent.") {
		return LoadAgent(path)
	}
	return LoadAggregator(path)
}

func TestBadFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) != len(badFiles) {
		t.Errorf("testdata has %d bad files, the table %d", len(files), len(badFiles))
	}
	for name, lines := range badFiles {
		t.Run(name, func(t *testing.T) {
			want := slices.Clone(lines) // the table stays as is for -count=2
			path := "testdata/" + name
			cfg, err := load(path)
			if !reflect.ValueOf(cfg).IsNil() {
				t.Errorf("got a config with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v (%T) is not Errors", err, err)
			}
			for i := range want {
				want[i] = path + ":" + want[i]
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if len(errs) != len(want) {
				t.Errorf("%d errors, want %d", len(errs), len(want))
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error output reveals a secret")
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := LoadAgent("testdata/nope.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadAgent: %v", err)
	}
	if _, err := LoadAggregator("testdata/nope.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadAggregator: %v", err)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("NODE_NAME", "default-node")
	t.Setenv("FERRY_NODE", "node-7")
	t.Setenv("FERRY_EMPTY", "")
	t.Setenv("FERRY_N", "16")
	t.Setenv("FERRY_YAMLISH", "a: b # not a comment")
	t.Setenv("FERRY_LOGDIR", "/srv/logs")
	os.Unsetenv("FERRY_UNSET") // t.Setenv above restores the others; this one is never set

	for _, tc := range []struct {
		src  string
		get  func(*Agent) any
		want any
		err  string // instead of want
	}{
		{src: "node: ${FERRY_NODE}", get: node, want: "node-7"},
		{src: "node: n-${FERRY_NODE}-${FERRY_NODE}", get: node, want: "n-node-7-node-7"},
		{src: "node: ${FERRY_UNSET:-fallback}", get: node, want: "fallback"},
		{src: "node: ${FERRY_EMPTY:-fallback}", get: node, want: "fallback"},
		{src: "node: ${FERRY_NODE:-fallback}", get: node, want: "node-7"},
		{src: "node: ${FERRY_YAMLISH}", get: node, want: "a: b # not a comment"},
		{src: "node: 'a$$b$c$'", get: node, want: "a$b$c$"},
		{src: "node: $${FERRY_NODE}", get: node, want: "${FERRY_NODE}"},
		{src: "node: ${FERRY_NODE} # ${FERRY_UNSET comment", get: node, want: "node-7"},
		// Unquoted and empty: absent, so the default applies. Quoted: the empty string.
		{src: "node: ${FERRY_UNSET}", get: node, want: "default-node"},
		{src: "node: ${FERRY_EMPTY}", get: node, want: "default-node"},
		{src: `node: "${FERRY_UNSET}"`, err: `agent.yaml:1:1: node: must not be empty`},
		{src: "aggregator:\n  max_inflight_batches: ${FERRY_N}", get: func(a *Agent) any { return a.Aggregator.MaxInflightBatches }, want: 16},
		{src: "aggregator:\n  max_inflight_batches: ${FERRY_UNSET}", get: func(a *Agent) any { return a.Aggregator.MaxInflightBatches }, want: 4},
		{src: "aggregator:\n  batch_timeout: ${FERRY_N}ms", get: func(a *Agent) any { return a.Aggregator.BatchTimeout }, want: Duration(16 * time.Millisecond)},
		{src: "inputs:\n  - type: file\n    paths: [\"${FERRY_LOGDIR}/*.log\", '${FERRY_LOGDIR}/b']", get: func(a *Agent) any { return a.Inputs[0].Paths }, want: []string{"/srv/logs/*.log", "/srv/logs/b"}},
		// Keys are not expanded.
		{src: "${FERRY_NODE}: x", err: `agent.yaml:1:1: ${FERRY_NODE}: unknown field`},
		{src: "log:\n  level: debug\nnode: ${FERRY_NODE", err: `agent.yaml:3:1: node: unterminated ${ (write $$ for a literal $)`},
		{src: "node: ${1X}", err: `agent.yaml:1:1: node: invalid variable name "1X" in ${...}`},
		{src: "node: ${}", err: `agent.yaml:1:1: node: invalid variable name "" in ${...}`},
		{src: "aggregator:\n  max_inflight_batches: ${FERRY_NODE}", err: `agent.yaml:2:3: aggregator.max_inflight_batches: must be an integer, got "node-7"`},
	} {
		a, err := ParseAgent("agent.yaml", []byte(tc.src))
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %s", tc.src, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.src, err)
		case !reflect.DeepEqual(tc.get(a), tc.want):
			t.Errorf("%q: got %#v, want %#v", tc.src, tc.get(a), tc.want)
		}
	}
}

func node(a *Agent) any { return a.Node }

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "x", "E": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for in, want := range map[string]string{
		"":              "",
		"plain":         "plain",
		"$":             "$",
		"a$":            "a$",
		"$A":            "$A",
		"${A}":          "x",
		"${A}${A}":      "xx",
		"${B}":          "",
		"${B:-d}":       "d",
		"${E:-d}":       "d",
		"${A:-d}":       "x",
		"${B:-}":        "",
		"${B:-a:-b}":    "a:-b",
		"$$":            "$",
		"$$$$":          "$$",
		"$${A}":         "${A}",
		"$$$${A}":       "$${A}",
		"$$${A}":        "$x",
		"p@$$w0rd":      "p@$w0rd",
		"${A}}":         "x}",
		"price: $5.00":  "price: $5.00",
		"^foo$|bar$":    "^foo$|bar$",
		"${A_1}${_b2} ": " ",
	} {
		got, err := expand(in, lookup)
		if err != nil || got != want {
			t.Errorf("expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"${", "${A", "x${A:-d", "${A B}", "${-}", "${A:d}"} {
		if got, err := expand(in, lookup); err == nil {
			t.Errorf("expand(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0":        0,
		"5":        5 * time.Second,
		" 30 ":     30 * time.Second,
		"-1":       -time.Second,
		"250ms":    250 * time.Millisecond,
		"1s":       time.Second,
		"2m":       2 * time.Minute,
		"1h30m":    90 * time.Minute,
		"1.5s":     1500 * time.Millisecond,
		"100us":    100 * time.Microsecond,
		"7d":       7 * 24 * time.Hour,
		"0d":       0,
		"-1s":      -time.Second,
		"0s":       0,
		"2562047h": 2562047 * time.Hour,
	} {
		got, err := parseDuration(in)
		if err != nil || time.Duration(got) != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "1.5", "5x", "d", "1.5d", "1d12h", "9223372037", "106752d", "1 s", "s"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                  "0s",
		250 * time.Millisecond:             "250ms",
		time.Second:                        "1s",
		90 * time.Second:                   "1m30s",
		2 * time.Minute:                    "2m",
		time.Hour:                          "1h",
		90 * time.Minute:                   "1h30m",
		time.Hour + time.Second:            "1h0m1s",
		30 * 24 * time.Hour:                "30d",
		36 * time.Hour:                     "36h",
		-2 * time.Minute:                   "-2m",
		1500 * time.Microsecond:            "1.5ms",
		time.Minute + 500*time.Millisecond: "1m0.5s",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
		if back, err := parseDuration(Duration(d).String()); err != nil || time.Duration(back) != d {
			t.Errorf("round trip of %v: %v, %v", d, back, err)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0":          0,
		"1024":       1024,
		"512B":       512,
		"512b":       512,
		"1KiB":       1 << 10,
		"256KiB":     256 << 10,
		"256kib":     256 << 10,
		"256Ki":      256 << 10,
		"5MiB":       5 << 20,
		"5 MiB":      5 << 20,
		" 5Mi ":      5 << 20,
		"1GiB":       1 << 30,
		"2TiB":       2 << 40,
		"1.5KiB":     1536,
		"0.5MiB":     512 << 10,
		"5MB":        5_000_000,
		"5mb":        5_000_000,
		"1KB":        1000,
		"1kB":        1000,
		"2GB":        2_000_000_000,
		"1TB":        1_000_000_000_000,
		"1.5MB":      1_500_000,
		"8388607TiB": 8388607 << 40,
	} {
		got, err := parseByteSize(in)
		if err != nil || int64(got) != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "B", "KiB", "-1", "-1KiB", "5K", "5M", "5G", "5 MiBs", "lots", "1.3B", "0.1KiB", "1..5KiB", "1e3", "1/2KiB", "8388608TiB", "99999999999999999999"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for b, want := range map[ByteSize]string{
		0:          "0B",
		1:          "1B",
		1000:       "1KB",
		1023:       "1023B",
		1024:       "1KiB",
		1536:       "1536B",
		256 * KiB:  "256KiB",
		MiB:        "1MiB",
		5_000_000:  "5MB",
		5 * GiB:    "5GiB",
		3 * TiB:    "3TiB",
		2 * 1e12:   "2TB",
		1024 * TiB: "1024TiB",
		-2 * KiB:   "-2KiB",
		1_000_001:  "1000001B",
	} {
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(b), got, want)
		}
		if back, err := parseByteSize(want); b >= 0 && (err != nil || back != b) {
			t.Errorf("round trip of %d: %d, %v", int64(b), back, err)
		}
	}
}

func TestUnitsYAML(t *testing.T) {
	type units struct {
		D Duration `yaml:"d"`
		B ByteSize `yaml:"b"`
	}
	out, err := yaml.Marshal(units{Duration(90 * time.Second), 5 * MiB})
	if err != nil || string(out) != "d: 1m30s\nb: 5MiB\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}
	var u units // plain yaml.Unmarshal works too, via UnmarshalText
	if err := yaml.Unmarshal([]byte("d: 2\nb: 1024\n"), &u); err != nil || u != (units{Duration(2 * time.Second), KiB}) {
		t.Errorf("yaml.Unmarshal = %+v, %v", u, err)
	}
	if err := yaml.Unmarshal(out, &u); err != nil || u != (units{Duration(90 * time.Second), 5 * MiB}) {
		t.Errorf("yaml.Unmarshal = %+v, %v", u, err)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	const apiKey = "api-key-from-env-0123456789"
	const password = "s3cr3t-from-file"
	const token = "bearer-token-from-env-42"
	tlsFixtures(t)
	t.Setenv("FERRY_TEST_API_KEY", apiKey)
	t.Setenv("FERRY_TEST_TOKEN", token)
	cfg, err := LoadAggregator("testdata/aggregator.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sinks[2].Password != password || cfg.Sinks[3].APIKey != apiKey || cfg.Auth.BearerTokens[0] != token {
		t.Fatalf("secrets not loaded: %q %q %q", cfg.Sinks[2].Password, cfg.Sinks[3].APIKey, cfg.Auth.BearerTokens[0])
	}

	var outputs []string
	for _, v := range []any{cfg, *cfg, cfg.Sinks, cfg.Sinks[2], &cfg.Sinks[3], cfg.Auth, cfg.Auth.BearerTokens} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
		outputs = append(outputs, fmt.Sprint(v), fmt.Sprintln(v))
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		y, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "v", v)
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "v", v)
		outputs = append(outputs, string(b), string(y), buf.String())
	}
	outputs = append(outputs, cfg.Sinks[2].String(), cfg.Sinks[3].LogValue().String())
	for _, out := range outputs {
		if strings.Contains(out, password) || strings.Contains(out, apiKey) || strings.Contains(out, token) || strings.Contains(out, "inline-token-2") {
			t.Errorf("secret revealed in %s", out)
		}
		if !strings.Contains(out, "***") {
			t.Errorf("secret not shown as *** in %s", out)
		}
	}

	// Redacting for output leaves the config itself intact.
	if cfg.Sinks[2].Password != password || cfg.Sinks[3].APIKey != apiKey {
		t.Errorf("printing changed the secrets")
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("sink", "sink", cfg.Sinks[3])
	if want := "sink.name=es-cloud sink.type=elasticsearch sink.urls=https://cloud.example sink.api_key=***"; !strings.Contains(buf.String(), want) {
		t.Errorf("slog output %q lacks %q", buf.String(), want)
	}
	if got, want := cfg.Sinks[0].String(), "{name=archive type=file path=/data/events.ndjson}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestSinkFieldTypes(t *testing.T) {
	// Every Sink field but name, type and buffer belongs to one sink type.
	if n := reflect.TypeFor[Sink]().NumField() - 3; len(sinkFieldTypes) != n {
		t.Errorf("sinkFieldTypes has %d keys, want %d", len(sinkFieldTypes), n)
	}
	for key, typ := range sinkFieldTypes {
		if typ != "file" && typ != "elasticsearch" {
			t.Errorf("%s: unknown sink type %q", key, typ)
		}
	}
}

func TestFieldError(t *testing.T) {
	for _, tc := range []struct {
		e    FieldError
		want string
	}{
		{FieldError{"agent.yaml", 7, 5, "inputs[1].paths", "must not be empty", false}, "agent.yaml:7:5: inputs[1].paths: must not be empty"},
		{FieldError{"agent.yaml", 3, 0, "", "invalid YAML: x", false}, "agent.yaml:3: invalid YAML: x"},
		{FieldError{"agent.yaml", 0, 0, "node", "must not be empty", false}, "agent.yaml: node: must not be empty"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	errs := Errors{{File: "a", Line: 1, Column: 2, Msg: "x"}, {File: "a", Line: 3, Column: 4, Path: "p", Msg: "y"}}
	if got := errs.Error(); got != "a:1:2: x\na:3:4: p: y" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

// TestTLSConfig: every bad combination of the TLS and token keys, with its
// position. DIR stands for the fixtures' directory.
func TestTLSConfig(t *testing.T) {
	dir := tlsFixtures(t)
	tlstest.WriteFile(t, filepath.Join(dir, "empty"), []byte("\n"))
	tlstest.WriteFile(t, filepath.Join(dir, "comments-only"), []byte("# no agents yet\n\n"))
	tlstest.WriteFile(t, filepath.Join(dir, "badtokens"), []byte("good-token\nsecret value\n"))
	const secret = "two words"
	for _, tc := range []struct {
		name string
		agg  bool // an aggregator file, else an agent file
		src  string
		want []string
	}{{
		name: "agent: keys without tls.enabled",
		src: `aggregator:
  tls:
    ca_file: ${FERRY_TEST_TLS_DIR}/ca.pem
    server_name: aggregator
    insecure_skip_verify: false
  bearer_token: abc
`,
		want: []string{
			`3:5: aggregator.tls.ca_file: only applies when aggregator.tls.enabled is true`,
			`4:5: aggregator.tls.server_name: only applies when aggregator.tls.enabled is true`,
			`5:5: aggregator.tls.insecure_skip_verify: only applies when aggregator.tls.enabled is true`,
			`6:3: aggregator.bearer_token: requires aggregator.tls.enabled: true (a token is never sent without TLS)`,
		},
	}, {
		name: "agent: token file without tls",
		src: `aggregator:
  bearer_token_file: ${FERRY_TEST_TLS_DIR}/agent-token
`,
		want: []string{`2:3: aggregator.bearer_token_file: requires aggregator.tls.enabled: true (a token is never sent without TLS)`},
	}, {
		name: "agent: bad values",
		src: `aggregator:
  tls:
    enabled: true
    ca_file: ${FERRY_TEST_TLS_DIR}/agent-token
    cert_file: ${FERRY_TEST_TLS_DIR}/client.pem
    insecure_skip_verify: true
    server_name: ""
  bearer_token: "` + secret + `"
`,
		want: []string{
			`4:5: aggregator.tls.ca_file: no PEM certificate found in DIR/agent-token`,
			`5:5: aggregator.tls.cert_file: requires key_file`,
			`6:5: aggregator.tls.insecure_skip_verify: cannot be used together with ca_file`,
			`7:5: aggregator.tls.server_name: must not be empty`,
			`8:3: aggregator.bearer_token: a token must be printable ASCII without spaces`,
		},
	}, {
		name: "agent: key without certificate, token twice",
		src: `aggregator:
  tls:
    enabled: true
    key_file: ${FERRY_TEST_TLS_DIR}/client-key.pem
  bearer_token: abc
  bearer_token_file: ${FERRY_TEST_TLS_DIR}/agent-token
`,
		want: []string{
			`4:5: aggregator.tls.key_file: requires cert_file`,
			`6:3: aggregator.bearer_token_file: cannot be used together with bearer_token`,
		},
	}, {
		name: "agent: missing, mismatched, empty",
		src: `aggregator:
  tls:
    enabled: true
    ca_file: ${FERRY_TEST_TLS_DIR}/missing.pem
    cert_file: ${FERRY_TEST_TLS_DIR}/client.pem
    key_file: ${FERRY_TEST_TLS_DIR}/server-key.pem
  bearer_token_file: ${FERRY_TEST_TLS_DIR}/empty
`,
		want: []string{
			`4:5: aggregator.tls.ca_file: cannot read: open DIR/missing.pem: no such file or directory`,
			`6:5: aggregator.tls.key_file: private key in DIR/server-key.pem does not match cert_file`,
			`7:3: aggregator.bearer_token_file: file DIR/empty is empty`,
		},
	}, {
		name: "agent: certificate and key swapped",
		src: `aggregator:
  tls:
    enabled: true
    cert_file: ${FERRY_TEST_TLS_DIR}/client-key.pem
    key_file: ${FERRY_TEST_TLS_DIR}/client.pem
`,
		want: []string{`4:5: aggregator.tls.cert_file: DIR/client-key.pem: no PEM certificate found`},
	}, {
		name: "agent: a certificate for a key",
		src: `aggregator:
  tls:
    enabled: true
    cert_file: ${FERRY_TEST_TLS_DIR}/client.pem
    key_file: ${FERRY_TEST_TLS_DIR}/ca.pem
  bearer_token_file: ${FERRY_TEST_TLS_DIR}/missing-token
`,
		want: []string{
			`5:5: aggregator.tls.key_file: no usable private key in DIR/ca.pem: found a certificate rather than a key in the PEM for the private key`,
			`6:3: aggregator.bearer_token_file: cannot read: open DIR/missing-token: no such file or directory`,
		},
	}, {
		name: "aggregator: enabled without files",
		agg:  true,
		src: `tls:
  enabled: true
`,
		want: []string{
			`1:1: tls.cert_file: required when tls.enabled is true`,
			`1:1: tls.key_file: required when tls.enabled is true`,
		},
	}, {
		name: "aggregator: keys without tls.enabled",
		agg:  true,
		src: `tls:
  cert_file: ${FERRY_TEST_TLS_DIR}/server.pem
  client_ca_file: ${FERRY_TEST_TLS_DIR}/ca.pem
auth:
  bearer_tokens: [tok]
`,
		want: []string{
			`2:3: tls.cert_file: only applies when tls.enabled is true`,
			`3:3: tls.client_ca_file: only applies when tls.enabled is true`,
			`4:1: auth: requires tls.enabled: true (tokens are never accepted without TLS)`,
		},
	}, {
		name: "aggregator: bad files and tokens",
		agg:  true,
		src: `tls:
  enabled: true
  cert_file: ${FERRY_TEST_TLS_DIR}/server.pem
  key_file: ${FERRY_TEST_TLS_DIR}/missing-key.pem
  client_ca_file: ${FERRY_TEST_TLS_DIR}/tokens
auth:
  bearer_tokens_file: ${FERRY_TEST_TLS_DIR}/badtokens
  bearer_tokens: ["", "` + secret + `"]
`,
		want: []string{
			`4:3: tls.key_file: cannot read: open DIR/missing-key.pem: no such file or directory`,
			`5:3: tls.client_ca_file: no PEM certificate found in DIR/tokens`,
			`7:3: auth.bearer_tokens_file: DIR/badtokens: line 2: a token must be printable ASCII without spaces`,
			`8:19: auth.bearer_tokens[0]: must not be empty`,
			`8:23: auth.bearer_tokens[1]: a token must be printable ASCII without spaces`,
		},
	}, {
		name: "aggregator: certificate without key",
		agg:  true,
		src: `tls:
  enabled: true
  cert_file: ${FERRY_TEST_TLS_DIR}/server.pem
`,
		want: []string{`1:1: tls.key_file: required when tls.enabled is true`},
	}, {
		name: "aggregator: empty auth",
		agg:  true,
		src: `tls:
  enabled: true
  cert_file: ${FERRY_TEST_TLS_DIR}/server.pem
  key_file: ${FERRY_TEST_TLS_DIR}/server-key.pem
auth: {}
`,
		want: []string{`5:1: auth: set bearer_tokens_file or bearer_tokens (remove auth to accept any agent)`},
	}, {
		name: "aggregator: no tokens",
		agg:  true,
		src: `tls:
  enabled: true
  cert_file: ${FERRY_TEST_TLS_DIR}/server.pem
  key_file: ${FERRY_TEST_TLS_DIR}/server-key.pem
auth:
  bearer_tokens_file: ${FERRY_TEST_TLS_DIR}/comments-only
  bearer_tokens: []
`,
		want: []string{
			`6:3: auth.bearer_tokens_file: no token in DIR/comments-only`,
			`7:3: auth.bearer_tokens: must not be empty`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.agg {
				_, err = ParseAggregator("aggregator.yaml", []byte(tc.src))
			} else {
				_, err = ParseAgent("agent.yaml", []byte(tc.src))
			}
			if err == nil {
				t.Fatal("no error")
			}
			file := "agent.yaml:"
			if tc.agg {
				file = "aggregator.yaml:"
			}
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				want[i] = file + w
			}
			got := strings.Split(strings.ReplaceAll(err.Error(), dir, "DIR"), "\n")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "secret value") {
				t.Errorf("error output reveals a token")
			}
		})
	}
}

// TestTLSAgentGood: insecure_skip_verify without ca_file, an inline token
// that never prints.
func TestTLSAgentGood(t *testing.T) {
	const token = "agent-inline-token-9"
	t.Setenv("FERRY_TEST_TOKEN", token)
	a, err := ParseAgent("agent.yaml", []byte("aggregator:\n  tls:\n    enabled: true\n    insecure_skip_verify: true\n  bearer_token: ${FERRY_TEST_TOKEN}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !a.Aggregator.TLS.InsecureSkipVerify || a.Aggregator.BearerToken != token {
		t.Fatalf("aggregator = %+v", a.Aggregator)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "agent", a, "aggregator", a.Aggregator)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "agent", a)
	j, _ := json.Marshal(a)
	y, _ := yaml.Marshal(a)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %v %q %x", a, a, *a, a.Aggregator, a.Aggregator.BearerToken, a.Aggregator.BearerToken), buf.String(), string(j), string(y)} {
		if strings.Contains(out, token) || !strings.Contains(out, "***") {
			t.Errorf("token not redacted in %s", out)
		}
	}
}

func TestBufferValidation(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"empty dir", "buffer: {dir: \"\"}\nsinks: [{type: elasticsearch, urls: [\"http://es:9200\"]}]\n", "buffer.dir: required when a sink has a disk buffer"},
		{"unknown type", "buffer: {type: tape}\n", "buffer.type"},
		{"unknown sink buffer", "sinks: [{type: stdout, buffer: tape}]\n", "sinks[0].buffer"},
		{"bad sync", "buffer: {sync: sometimes}\n", "buffer.sync"},
		{"segment above max", "buffer: {max_bytes: 2MiB, segment_bytes: 4MiB}\n", "buffer.segment_bytes: must not exceed max_bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAggregator("agg.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "agg.yaml:") {
				t.Fatalf("err = %v, want a position", err)
			}
		})
	}
}

func TestSinkBufferDefaults(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"elasticsearch on disk, others in memory", "sinks: [{type: elasticsearch, urls: [\"http://es:9200\"]}, {type: stdout}]\n", []string{"disk", "memory"}},
		{"top-level type wins", "buffer: {type: memory}\nsinks: [{type: elasticsearch, urls: [\"http://es:9200\"]}, {type: stdout}]\n", []string{"memory", "memory"}},
		{"sink key wins", "buffer: {type: disk}\nsinks: [{type: file, path: /x, buffer: memory}, {type: stdout}]\n", []string{"memory", "disk"}},
		{"embedded default", "", []string{"memory"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAggregator("agg.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range a.Sinks {
				got = append(got, s.Buffer)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("sink buffers = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDurationLowerBounds: a duration that paces a loop is refused below its
// bound, by name, line and column (poll_interval: 1ns once burnt 180% CPU),
// and accepted at the bound.
func TestDurationLowerBounds(t *testing.T) {
	es := "sinks:\n  - type: elasticsearch\n    urls: [\"http://es:9200\"]\n"
	cases := []struct {
		name, yaml, path string
		aggregator       bool
		min              Duration
	}{
		{"poll_interval", "inputs:\n  - type: container\n    poll_interval: %s\n", "3:5: inputs[0].poll_interval", false, MinPollInterval},
		{"glob_interval", "inputs:\n  - type: container\n    glob_interval: %s\n", "3:5: inputs[0].glob_interval", false, MinGlobInterval},
		{"batch_timeout", "aggregator:\n  batch_timeout: %s\n", "2:3: aggregator.batch_timeout", false, MinBatchTimeout},
		{"backoff_initial", "aggregator:\n  backoff_initial: %s\n", "2:3: aggregator.backoff_initial", false, MinBackoff},
		{"backoff_max", "aggregator:\n  backoff_initial: 10ms\n  backoff_max: %s\n", "3:3: aggregator.backoff_max", false, MinBackoff},
		{"agent shutdown_timeout", "aggregator:\n  shutdown_timeout: %s\n", "2:3: aggregator.shutdown_timeout", false, MinShutdownTimeout},
		{"ack_timeout", "ack_timeout: %s\n", "1:1: ack_timeout", true, MinAckTimeout},
		{"write_timeout", "write_timeout: %s\n", "1:1: write_timeout", true, MinWriteTimeout},
		{"aggregator shutdown_timeout", "shutdown_timeout: %s\n", "1:1: shutdown_timeout", true, MinShutdownTimeout},
		{"sync_interval", "buffer:\n  sync_interval: %s\n", "2:3: buffer.sync_interval", true, MinSyncInterval},
		{"flush_interval", es + "    flush_interval: %s\n", "4:5: sinks[0].flush_interval", true, MinFlushInterval},
		{"retry_initial", es + "    retry_initial: %s\n", "4:5: sinks[0].retry_initial", true, MinBackoff},
		{"retry_max", es + "    retry_initial: 10ms\n    retry_max: %s\n", "5:5: sinks[0].retry_max", true, MinBackoff},
	}
	parse := func(aggregator bool, src string) error {
		if aggregator {
			_, err := ParseAggregator("c.yaml", []byte(src))
			return err
		}
		_, err := ParseAgent("c.yaml", []byte(src))
		return err
	}
	t.Run("partial_flush_after", func(t *testing.T) {
		const src = "inputs:\n  - type: container\n    partial_flush_after: %s\n"
		for bad, shown := range map[string]string{"0s": "0s", "99ms": "99ms", "-1s": "-1s", "61m": "1h1m"} {
			err := parse(false, fmt.Sprintf(src, bad))
			want := "c.yaml:3:5: inputs[0].partial_flush_after: must be between 100ms and 1h, got " + shown
			if err == nil || err.Error() != want {
				t.Errorf("%s: err = %v, want %s", bad, err, want)
			}
		}
		for _, good := range []string{"100ms", "5s", "1h"} {
			if err := parse(false, fmt.Sprintf(src, good)); err != nil {
				t.Errorf("%s: %v", good, err)
			}
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, bad := range []string{"1ns", (tc.min - 1).String(), "0s"} {
				err := parse(tc.aggregator, fmt.Sprintf(tc.yaml, bad))
				want := fmt.Sprintf("c.yaml:%s: must be at least %s, got %s", tc.path, tc.min, bad)
				if err == nil || err.Error() != want {
					t.Errorf("%s: err = %v, want %s", bad, err, want)
				}
			}
			if err := parse(tc.aggregator, fmt.Sprintf(tc.yaml, tc.min)); err != nil {
				t.Errorf("%s (the bound itself): %v", tc.min, err)
			}
		})
	}
}

// template_conflict (issue 19, case 10b) is error or warn, error by
// default, and only for elasticsearch sinks.
func TestTemplateConflict(t *testing.T) {
	for _, tc := range []struct{ line, want, err string }{
		{"", "error", ""},
		{"template_conflict: warn", "warn", ""},
		{"template_conflict: error", "error", ""},
		{"template_conflict: ignore", "", `sinks[0].template_conflict: must be one of error, warn, got "ignore"`},
	} {
		src := "sinks:\n  - type: elasticsearch\n    urls: [\"http://es:9200\"]\n    " + tc.line + "\n"
		c, err := ParseAggregator("aggregator.yaml", []byte(src))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %s", tc.line, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.line, err)
		case c.Sinks[0].TemplateConflict != tc.want:
			t.Errorf("%q: template_conflict %q, want %q", tc.line, c.Sinks[0].TemplateConflict, tc.want)
		}
	}
	_, err := ParseAggregator("aggregator.yaml", []byte("sinks:\n  - {type: file, path: x, template_conflict: warn}\n"))
	if err == nil || !strings.Contains(err.Error(), "sinks[0].template_conflict: only applies to type elasticsearch") {
		t.Errorf("template_conflict on a file sink: %v", err)
	}
}

func TestAgentKubernetes(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	def := Kubernetes{Enabled: "auto", DeleteGrace: Duration(5 * time.Minute)}
	for _, tc := range []struct {
		name, src string
		want      Kubernetes
		err       string
	}{
		{name: "absent", src: "", want: def},
		{name: "the contract", src: "kubernetes:\n  enabled: auto\n  kubeconfig: \"\"\n  delete_grace: 5m\n  annotations: []\n", want: def},
		{name: "all set", src: "kubernetes:\n  enabled: true\n  kubeconfig: " + kc + "\n  delete_grace: 30s\n  annotations: [team, ferry.io/owner]\n",
			want: Kubernetes{Enabled: "true", Kubeconfig: kc, DeleteGrace: Duration(30 * time.Second), Annotations: []string{"team", "ferry.io/owner"}}},
		{name: "off", src: "kubernetes: {enabled: false, kubeconfig: /nonexistent}\n",
			want: Kubernetes{Enabled: "false", Kubeconfig: "/nonexistent", DeleteGrace: Duration(5 * time.Minute)}},
		{name: "zero grace", src: "kubernetes: {delete_grace: 0s}\n", want: Kubernetes{Enabled: "auto"}},
		{name: "bad enabled", src: "kubernetes:\n  enabled: yes\n", err: `agent.yaml:2:3: kubernetes.enabled: must be one of auto, true, false, got "yes"`},
		{name: "negative grace", src: "kubernetes:\n  delete_grace: -1s\n", err: "agent.yaml:2:3: kubernetes.delete_grace: must not be negative"},
		{name: "missing kubeconfig", src: "kubernetes:\n  kubeconfig: /nonexistent/kc\n", err: "agent.yaml:2:3: kubernetes.kubeconfig: stat /nonexistent/kc: no such file or directory"},
		{name: "empty annotation", src: "kubernetes:\n  annotations: [team, \"\"]\n", err: "kubernetes.annotations[1]: must not be empty"},
		{name: "typo", src: "kubernetes:\n  delete_grase: 1m\n", err: "agent.yaml:2:3: kubernetes.delete_grase: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseAgent("agent.yaml", []byte(tc.src))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := c.Kubernetes
			if got.Enabled != tc.want.Enabled || got.Kubeconfig != tc.want.Kubeconfig || got.DeleteGrace != tc.want.DeleteGrace ||
				!slices.Equal(got.Annotations, tc.want.Annotations) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAggregatorEnrich(t *testing.T) {
	def := EnvironmentRules{NamespaceLabel: "environment", NamespaceRegex: `^(?:.+-)?(dev|staging|prod)$`, Default: "default"}
	for _, tc := range []struct {
		name, src string
		cluster   string
		want      EnvironmentRules
		err       string
	}{
		{name: "absent", src: "", want: def},
		{name: "the contract", src: "cluster_name: \"\"\nenrich:\n  environment:\n    namespace_label: environment\n" +
			"    namespace_regex: '^(?:.+-)?(dev|staging|prod)$'\n    namespaces: { payments: prod, edge: prod }\n    default: default\n",
			want: EnvironmentRules{NamespaceLabel: "environment", NamespaceRegex: def.NamespaceRegex, Namespaces: map[string]string{"payments": "prod", "edge": "prod"}, Default: "default"}},
		{name: "all set", src: "cluster_name: eu-1\nenrich:\n  environment:\n    namespace_label: env\n    namespace_regex: '^(.*)-env$'\n    namespaces:\n      kube-system: infra\n    default: none\n",
			cluster: "eu-1", want: EnvironmentRules{NamespaceLabel: "env", NamespaceRegex: "^(.*)-env$", Namespaces: map[string]string{"kube-system": "infra"}, Default: "none"}},
		{name: "rules off", src: "enrich:\n  environment:\n    namespace_label: \"\"\n    namespace_regex: \"\"\n    default: \"\"\n", want: EnvironmentRules{}},
		{name: "bad regex", src: "enrich:\n  environment:\n    namespace_regex: '^(prod'\n", err: "aggregator.yaml:3:5: enrich.environment.namespace_regex: error parsing regexp: missing closing ): `^(prod`"},
		{name: "no capture group", src: "enrich:\n  environment:\n    namespace_regex: '^(?:prod|dev)$'\n", err: "aggregator.yaml:3:5: enrich.environment.namespace_regex: \"^(?:prod|dev)$\" has no capture group"},
		{name: "empty environment", src: "enrich:\n  environment:\n    namespaces:\n      payments: \"\"\n", err: "aggregator.yaml:4:7: enrich.environment.namespaces.payments: the environment must not be empty"},
		{name: "not a mapping", src: "enrich:\n  environment:\n    namespaces: [payments]\n", err: "aggregator.yaml:3:5: enrich.environment.namespaces: must be a mapping, got a list"},
		{name: "not a string", src: "enrich:\n  environment:\n    namespaces: {payments: {a: b}}\n", err: "aggregator.yaml:3:18: enrich.environment.namespaces.payments: must be a string, got a mapping"},
		{name: "duplicate", src: "enrich:\n  environment:\n    namespaces:\n      a: x\n      a: y\n", err: "aggregator.yaml:5:7: enrich.environment.namespaces.a: duplicate key (first at line 4)"},
		{name: "typo", src: "enrich:\n  environment:\n    namespace_lable: env\n", err: "aggregator.yaml:3:5: enrich.environment.namespace_lable: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseAggregator("aggregator.yaml", []byte(tc.src))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := c.Enrich.Environment
			if got.NamespaceLabel != tc.want.NamespaceLabel || got.NamespaceRegex != tc.want.NamespaceRegex || got.Default != tc.want.Default ||
				!maps.Equal(got.Namespaces, tc.want.Namespaces) || c.ClusterName != tc.cluster {
				t.Fatalf("got %+v cluster %q, want %+v cluster %q", got, c.ClusterName, tc.want, tc.cluster)
			}
		})
	}
}

func TestAggregatorGeoIP(t *testing.T) {
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "GeoLite2-City.mmdb"), filepath.Join(dir, "GeoLite2-ASN.mmdb")
	for _, f := range []string{city, asn} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil { // opened by the aggregator, not here
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "nope.mmdb")
	for _, tc := range []struct {
		name, src string
		want      *GeoIP
		err       string
	}{
		{name: "absent", src: "", want: nil},
		{name: "the contract", src: "enrich:\n  geoip:\n    city_db: " + city + "\n    asn_db: " + asn + "\n    fields: [source.ip]\n",
			want: &GeoIP{CityDB: city, ASNDB: asn, Fields: []string{"source.ip"}, CacheSize: 10000}},
		{name: "defaults", src: "enrich:\n  geoip:\n    city_db: " + city + "\n",
			want: &GeoIP{CityDB: city, Fields: []string{"source.ip"}, CacheSize: 10000}},
		{name: "all set", src: "enrich:\n  geoip:\n    asn_db: " + asn + "\n    fields: [source.ip, destination.ip, client.address]\n    cache_size: 0\n",
			want: &GeoIP{ASNDB: asn, Fields: []string{"source.ip", "destination.ip", "client.address"}, CacheSize: 0}},
		{name: "no database", src: "enrich:\n  geoip:\n    fields: [source.ip]\n", err: "aggregator.yaml:2:3: enrich.geoip.city_db: city_db or asn_db is required"},
		{name: "missing file", src: "enrich:\n  geoip:\n    city_db: " + missing + "\n", err: "aggregator.yaml:3:5: enrich.geoip.city_db: stat " + missing + ": no such file or directory"},
		{name: "missing asn file", src: "enrich:\n  geoip:\n    city_db: " + city + "\n    asn_db: " + missing + "\n", err: "aggregator.yaml:4:5: enrich.geoip.asn_db: stat " + missing + ": no such file or directory"},
		{name: "a directory", src: "enrich:\n  geoip:\n    city_db: " + dir + "\n", err: "enrich.geoip.city_db: " + dir + " is a directory"},
		{name: "empty fields", src: "enrich:\n  geoip:\n    city_db: " + city + "\n    fields: []\n", err: "aggregator.yaml:4:5: enrich.geoip.fields: must not be empty"},
		{name: "undotted field", src: "enrich:\n  geoip:\n    city_db: " + city + "\n    fields: [ip]\n", err: "enrich.geoip.fields[0]: \"ip\" is not a dotted field name"},
		{name: "fixed field", src: "enrich:\n  geoip:\n    city_db: " + city + "\n    fields: [message.ip]\n", err: "enrich.geoip.fields[0]: \"message.ip\" would put its results in message.geo"},
		{name: "same target", src: "enrich:\n  geoip:\n    city_db: " + city + "\n    fields: [source.ip, source.address]\n", err: "enrich.geoip.fields[1]: source.ip and source.address would both write source.geo"},
		{name: "cache too big", src: "enrich:\n  geoip:\n    city_db: " + city + "\n    cache_size: 20000000\n", err: "aggregator.yaml:4:5: enrich.geoip.cache_size: must be between 0 and 10000000, got 20000000"},
		{name: "typo", src: "enrich:\n  geoip:\n    city_db: " + city + "\n    citydb: x\n", err: "aggregator.yaml:4:5: enrich.geoip.citydb: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseAggregator("aggregator.yaml", []byte(tc.src))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Enrich.GeoIP, tc.want) {
				t.Fatalf("got %+v, want %+v", c.Enrich.GeoIP, tc.want)
			}
		})
	}
}

func TestAgentMetrics(t *testing.T) {
	root := t.TempDir()
	cg := filepath.Join(root, "sys", "fs", "cgroup")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	def := DefaultMetrics()
	contract := "metrics:\n  enabled: true\n  interval: 10s\n  host_root: " + root + "\n" +
		"  sets: [cpu, load, memory, swap, filesystem, diskio, network, uptime, containers]\n" +
		"  cgroup_root: " + cg + "\n  exclude_mount_types: [tmpfs, overlay, proc, sysfs, cgroup2, nsfs]\n" +
		"  exclude_interfaces: ['^lo$', '^veth', '^cali']\n  environment: default\n"
	for _, tc := range []struct {
		name, src string
		want      Metrics
		inputs    int
		err       string
	}{
		{name: "absent", src: "", want: def, inputs: 1},
		{name: "the contract", src: contract, inputs: 1, want: Metrics{Enabled: true, Interval: Duration(10 * time.Second), HostRoot: root,
			Sets: DefaultMetricSets, CgroupRoot: cg, ExcludeMountTypes: []string{"tmpfs", "overlay", "proc", "sysfs", "cgroup2", "nsfs"},
			ExcludeInterfaces: DefaultExcludeInterfaces, Environment: "default"}},
		{name: "metrics only", src: "inputs: []\nmetrics: {enabled: true, interval: 1s, sets: [cpu, core], environment: prod}\n", inputs: 0,
			want: Metrics{Enabled: true, Interval: Duration(time.Second), Sets: []string{"cpu", "core"}, ExcludeMountTypes: def.ExcludeMountTypes,
				ExcludeInterfaces: def.ExcludeInterfaces, Environment: "prod"}},
		{name: "no inputs, no metrics", src: "inputs: []\n", err: "inputs: at least one input is required (or metrics.enabled)"},
		{name: "no inputs, metrics off", src: "inputs: []\nmetrics: {enabled: false}\n", err: "inputs: at least one input is required (or metrics.enabled)"},
		{name: "short interval", src: "metrics:\n  interval: 100ms\n", err: "agent.yaml:2:3: metrics.interval: must be at least 1s"},
		{name: "unknown set", src: "metrics:\n  sets: [cpu, gpu]\n", err: `metrics.sets[1]: must be one of cpu, core, load`},
		{name: "set twice", src: "metrics:\n  sets: [cpu, cpu]\n", err: "metrics.sets[1]: cpu given twice"},
		{name: "no sets", src: "metrics:\n  enabled: true\n  sets: []\n", err: "agent.yaml:3:3: metrics.sets: must not be empty when metrics are enabled"},
		{name: "missing host root", src: "metrics:\n  enabled: true\n  host_root: /nonexistent/host\n", err: "agent.yaml:3:3: metrics.host_root: stat /nonexistent/host: no such file or directory"},
		{name: "bad regexp", src: "metrics:\n  exclude_interfaces: ['^lo$', '(']\n", err: "metrics.exclude_interfaces[1]: error parsing regexp"},
		{name: "bad environment", src: "metrics:\n  environment: Prod\n", err: `agent.yaml:2:3: metrics.environment: must be lowercase, got "Prod"`},
		{name: "typo", src: "metrics:\n  intervall: 1m\n", err: "agent.yaml:2:3: metrics.intervall: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseAgent("agent.yaml", []byte(tc.src))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, w := c.Metrics, tc.want
			if got.Enabled != w.Enabled || got.Interval != w.Interval || got.HostRoot != w.HostRoot || got.CgroupRoot != w.CgroupRoot ||
				got.Environment != w.Environment || !slices.Equal(got.Sets, w.Sets) ||
				!slices.Equal(got.ExcludeMountTypes, w.ExcludeMountTypes) || !slices.Equal(got.ExcludeInterfaces, w.ExcludeInterfaces) {
				t.Fatalf("got %+v, want %+v", got, w)
			}
			if len(c.Inputs) != tc.inputs {
				t.Fatalf("%d inputs, want %d", len(c.Inputs), tc.inputs)
			}
		})
	}
}

func TestInputMultiline(t *testing.T) {
	const head = "inputs:\n  - type: container\n    max_line_bytes: 64KiB\n    multiline:\n"
	for _, tc := range []struct {
		name, src string
		want      Multiline
		err       string
	}{
		{name: "defaults", src: "inputs:\n  - type: container\n    max_line_bytes: 64KiB\n",
			want: Multiline{Rule: "none", MaxLines: 500, MaxBytes: 64 * KiB, FlushAfter: Duration(time.Second)}},
		{name: "the issue's block", src: head + "      rule: custom\n      start: '^\\d{4}-\\d{2}-\\d{2}'\n      negate: false\n      max_lines: 500\n      flush_after: 1s\n",
			want: Multiline{Rule: "custom", Start: `^\d{4}-\d{2}-\d{2}`, MaxLines: 500, MaxBytes: 64 * KiB, FlushAfter: Duration(time.Second)}},
		{name: "java", src: head + "      rule: java\n      max_lines: 50\n      max_bytes: 1MiB\n      flush_after: 200ms\n",
			want: Multiline{Rule: "java", MaxLines: 50, MaxBytes: MiB, FlushAfter: Duration(200 * time.Millisecond)}},
		{name: "continue negate", src: head + "      rule: custom\n      continue: '^\\S'\n      negate: true\n",
			want: Multiline{Rule: "custom", Continue: `^\S`, Negate: true, MaxLines: 500, MaxBytes: 64 * KiB, FlushAfter: Duration(time.Second)}},
		{name: "unknown rule", src: head + "      rule: perl\n", err: "agent.yaml:5:7: inputs[0].multiline.rule: must be one of java, python, go, ruby, dotnet, custom, none"},
		{name: "custom without regex", src: head + "      rule: custom\n", err: "inputs[0].multiline.rule: custom needs exactly one of start or continue"},
		{name: "both regexes", src: head + "      rule: custom\n      start: a\n      continue: b\n", err: "inputs[0].multiline.rule: custom needs exactly one of start or continue"},
		{name: "the issue's block as written (start unused with java)", src: head + "      rule: java\n      start: '^\\d{4}-\\d{2}-\\d{2}'\n      negate: false\n      max_lines: 500\n      flush_after: 1s\n",
			want: Multiline{Rule: "java", Start: `^\d{4}-\d{2}-\d{2}`, MaxLines: 500, MaxBytes: 64 * KiB, FlushAfter: Duration(time.Second)}},
		{name: "bad start with java", src: head + "      rule: java\n      start: '['\n", err: "agent.yaml:6:7: inputs[0].multiline.start: error parsing regexp"},
		{name: "bad regex", src: head + "      rule: custom\n      continue: '('\n", err: "inputs[0].multiline.continue: error parsing regexp"},
		{name: "max_lines", src: head + "      rule: go\n      max_lines: 1\n", err: "inputs[0].multiline.max_lines: must be between 2 and 100000, got 1"},
		{name: "max_bytes", src: head + "      rule: go\n      max_bytes: 100\n", err: "inputs[0].multiline.max_bytes: must be between"},
		{name: "flush_after", src: head + "      rule: go\n      flush_after: 2h\n", err: "inputs[0].multiline.flush_after: must be between 10ms and 1h, got 2h"},
		{name: "typo", src: head + "      rules: go\n", err: "inputs[0].multiline.rules: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseAgent("agent.yaml", []byte(tc.src))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Inputs[0].Multiline; got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSyslogInput: the issue 13 contract (syslog and file inputs with
// parser, dataset and environment) is accepted as spelled, with defaults;
// each bad key is reported by name.
func TestSyslogInput(t *testing.T) {
	src := `inputs:
  - type: syslog
    listen: udp://0.0.0.0:5514      # or tcp://
    parser: haproxy                  # none | haproxy
    dataset: haproxy.log
    environment: prod
  - type: file
    paths: [/var/log/haproxy.log]
    parser: haproxy
    dataset: haproxy.log
`
	a, err := ParseAgent("agent.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s, f := a.Inputs[0], a.Inputs[1]
	if s.Name != "syslog-0" || s.Listen != "udp://0.0.0.0:5514" || s.Parser != "haproxy" || s.Dataset != "haproxy.log" ||
		s.Environment != "prod" || s.SpoolMaxBytes != 256*MiB || s.MaxLineBytes != 256*KiB {
		t.Errorf("syslog input = %+v", s)
	}
	if f.Parser != "haproxy" || f.Environment != "" || f.SpoolMaxBytes != 0 {
		t.Errorf("file input = %+v", f)
	}
	for _, tc := range []struct{ src, want string }{
		{"inputs:\n  - type: syslog\n", "inputs[0].listen: required for type syslog"},
		{"inputs:\n  - type: syslog\n    listen: 0.0.0.0:5514\n", "inputs[0].listen: must be udp://host:port or tcp://host:port"},
		{"inputs:\n  - type: syslog\n    listen: sctp://h:1\n", "inputs[0].listen: must be udp://host:port or tcp://host:port"},
		{"inputs:\n  - type: syslog\n    listen: tcp://h\n", "inputs[0].listen: must be udp://host:port or tcp://host:port"},
		{"inputs:\n  - type: syslog\n    listen: tcp://:1\n    paths: [/x]\n", "inputs[0].paths: not for type syslog"},
		{"inputs:\n  - type: syslog\n    listen: tcp://:1\n    multiline: {rule: java}\n", "inputs[0].multiline.rule: not for type syslog"},
		{"inputs:\n  - type: syslog\n    listen: tcp://:1\n    spool_max_bytes: 1KiB\n", "inputs[0].spool_max_bytes"},
		{"inputs:\n  - type: file\n    paths: [/x]\n    listen: tcp://:1\n", "inputs[0].listen: only for type syslog"},
		{"inputs:\n  - type: file\n    paths: [/x]\n    spool_max_bytes: 1GiB\n", "inputs[0].spool_max_bytes: only for type syslog"},
		{"inputs:\n  - type: file\n    paths: [/x]\n    parser: nginx\n", "inputs[0].parser"},
		{"inputs:\n  - type: file\n    paths: [/x]\n    environment: a-b\n", "inputs[0].environment"},
	} {
		_, err := ParseAgent("agent.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.src, err, tc.want)
		}
	}
}
