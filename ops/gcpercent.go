package ops

import (
	"os"
	"runtime/debug"
	"strconv"
)

// ApplyGCPercent sets the Go garbage collector's target percentage (what
// GOGC sets) to percent unless GOGC is set in the environment, which wins.
// It returns the percentage in effect and where it comes from ("default"
// or "GOGC"; for a GOGC the runtime could not parse, the runtime's 100).
//
// A higher percentage collects less often, for CPU, and lets the heap grow
// further past what is live between collections; the soft memory limit
// (ApplyMemoryLimit, set before) still bounds the heap: the collector runs
// earlier, whatever the percentage, when the heap nears it.
func ApplyGCPercent(percent int) (int, string) {
	if v := os.Getenv("GOGC"); v != "" {
		if v == "off" {
			return -1, "GOGC"
		}
		if n, err := strconv.Atoi(v); err == nil {
			return n, "GOGC"
		}
		return 100, "GOGC"
	}
	debug.SetGCPercent(percent)
	return percent, "default"
}
