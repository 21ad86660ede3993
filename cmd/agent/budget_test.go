package main

import (
	"testing"

	"github.com/ferrylogs/ferry/config"
)

// TestReadAheadBytes: the read-ahead budget is a sixteenth of the memory
// budget (8MiB of the default), and even the smallest memory_limit leaves
// room for a few chunks of a follower (each counts about 240KiB).
func TestReadAheadBytes(t *testing.T) {
	for _, c := range []struct {
		limit config.ByteSize
		want  int64
	}{
		{128 * config.MiB, 8 << 20},
		{16 * config.MiB, 1 << 20},
		{1 * config.GiB, 64 << 20},
	} {
		if got := readAheadBytes(int64(c.limit)); got != c.want {
			t.Errorf("readAheadBytes(%s) = %d, want %d", c.limit, got, c.want)
		}
	}
	if def := config.DefaultAgent().MemoryLimit; readAheadBytes(int64(def)) != 8<<20 {
		t.Errorf("default memory_limit %s gives a read-ahead of %d, documented as 8MiB", def, readAheadBytes(int64(def)))
	}
}
