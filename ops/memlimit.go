package ops

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// memLimitFiles are where cgroup v2 and v1 keep the container's memory
// limit, relative to the cgroup mount.
var memLimitFiles = []string{"memory.max", "memory/memory.limit_in_bytes"}

// CgroupMemoryLimit returns the memory limit of the cgroup mounted at root
// (normally /sys/fs/cgroup), or 0 when there is none.
func CgroupMemoryLimit(root string) (int64, error) {
	for _, name := range memLimitFiles {
		data, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", name, err)
		}
		s := strings.TrimSpace(string(data))
		if s == "max" {
			return 0, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s %q: %w", name, s, err)
		}
		if n <= 0 || n >= 1<<62 { // v1 says "no limit" with a huge number
			return 0, nil
		}
		return n, nil
	}
	return 0, nil
}

// MemoryLimit is a process's memory budget and where it comes from.
type MemoryLimit struct {
	Bytes int64
	// From is "memory_limit" (the configuration) or "container" (the
	// cgroup's limit, which was lower).
	From string
	// Runtime is the Go runtime's soft memory limit set from Bytes (0 when
	// GOMEMLIMIT is set in the environment and was left alone).
	Runtime int64
}

// runtimeShare is the part of the budget given to the Go runtime's soft
// limit: the rest is room for what the runtime does not count (the
// binary, C and kernel buffers) and for the scavenger, which returns freed
// memory to the system with a lag.
const runtimeShare = 0.8

// ApplyMemoryLimit decides the process's memory budget: configured bytes,
// lowered to the container's limit (cgroup mounted at root) when that is
// less, and sets the Go runtime's soft memory limit to 80% of it unless
// GOMEMLIMIT is set. Components size what they hold in memory from the
// result.
func ApplyMemoryLimit(configured int64, root string) (MemoryLimit, error) {
	m := MemoryLimit{Bytes: configured, From: "memory_limit"}
	limit, err := CgroupMemoryLimit(root)
	if err != nil {
		return m, err
	}
	if limit > 0 && limit < m.Bytes {
		m.Bytes, m.From = limit, "container"
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		m.Runtime = int64(float64(m.Bytes) * runtimeShare)
		debug.SetMemoryLimit(m.Runtime)
	}
	return m, nil
}
