// Package harness runs Ferry's real binaries, a real Elasticsearch and a
// Kubernetes-like log writer for the end-to-end and chaos tests.
//
// The binaries get the configuration files the tests share (AgentConfig,
// ESAggregatorConfig); Proc starts, stops and kills them; WaitFor and Poll
// wait for a condition.
//
// Binaries come from $FERRY_BIN (set by `make test` and `make chaos`), else
// they are built once per test binary. Elasticsearch is the shared instance
// ($FERRY_ES_URL, else started once by test/elasticsearch.sh) or a private
// one per test (its own port and FERRY_ES_STATE_DIR) for tests that stop or
// kill it. Every helper takes a testing.TB and fails the test on setup
// errors; the Try* variants return errors instead, for goroutines other than
// the test's own (t.Fatal must only be called from the test goroutine).
package harness
