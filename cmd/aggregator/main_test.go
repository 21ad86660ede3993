package main

import (
	"os"
	"testing"

	"github.com/ferrylogs/ferry/test/harness"
)

// TestMain stops the shared Elasticsearch some tests here start, if this
// package is its last user (see harness.StopSharedES).
func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
