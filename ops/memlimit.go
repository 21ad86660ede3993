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

// SetMemoryLimit makes the Go runtime's soft memory limit follow the
// container's: 90% of the cgroup limit, unless GOMEMLIMIT is set. It
// returns the limit it set (0 for none) so the caller can log it.
func SetMemoryLimit(root string) (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	limit, err := CgroupMemoryLimit(root)
	if err != nil || limit == 0 {
		return 0, err
	}
	soft := limit / 10 * 9
	debug.SetMemoryLimit(soft)
	return soft, nil
}
