package ops

import (
	"fmt"
	"syscall"
)

// FileLimit is the limit of open files of the process.
type FileLimit struct {
	Soft, Hard uint64
	Raised     bool // RaiseFileLimit raised the soft limit
}

// RaiseFileLimit raises the soft limit of open files (RLIMIT_NOFILE) to the
// hard limit and returns the limits in force. Every connection, file and
// socket takes one descriptor: a soft limit below the hard one only makes
// the process fail sooner (accept: too many open files). The Go runtime
// raises it as well at start on Linux; doing it here makes the binaries say
// what they run with, and holds whatever the runtime does. On failure the
// limits as they are come back with the error.
func RaiseFileLimit() (FileLimit, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return FileLimit{}, fmt.Errorf("read the limit of open files: %w", err)
	}
	lim := FileLimit{Soft: r.Cur, Hard: r.Max}
	if r.Cur >= r.Max {
		return lim, nil
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return lim, fmt.Errorf("raise the limit of open files from %d to %d: %w", lim.Soft, r.Max, err)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return lim, fmt.Errorf("read the limit of open files: %w", err)
	}
	return FileLimit{Soft: r.Cur, Hard: r.Max, Raised: r.Cur > lim.Soft}, nil
}
