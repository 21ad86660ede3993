package main

import (
	"testing"
	"time"

	"github.com/ferrylogs/ferry/config"
)

// TestTailInputsReadDelay: each input's read_delay reaches its tail input,
// 0 (read at once) included.
func TestTailInputsReadDelay(t *testing.T) {
	ml := config.Multiline{Rule: "none", MaxLines: 500, MaxBytes: config.KiB * 256}
	ins, err := tailInputs([]config.Input{
		{Name: "a", Type: "container", ReadDelay: config.Duration(50 * time.Millisecond), Multiline: ml},
		{Name: "b", Type: "file", ReadDelay: 0, Multiline: ml},
		{Name: "c", Type: "file", ReadDelay: config.DefaultReadDelay, Multiline: ml},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{50 * time.Millisecond, 0, time.Duration(config.DefaultReadDelay)}
	for i, in := range ins {
		if in.ReadDelay != want[i] {
			t.Errorf("input %s: read delay %s, want %s", in.Name, in.ReadDelay, want[i])
		}
	}
}
