//go:build linux

package harness

import (
	"syscall"
	"testing"
	"unsafe"
)

// NoFileSizeLimit lifts RLIMIT_FSIZE (RLIM_INFINITY).
const NoFileSizeLimit = ^uint64(0)

// SetFileSizeLimit sets the soft RLIMIT_FSIZE of the running process pid
// (prlimit(2); the hard limit stays, so the soft one can be raised again
// without CAP_SYS_RESOURCE): a write that would take a regular file past
// limit bytes writes what fits and then fails with EFBIG, as a full disk
// would with ENOSPC. The Go runtime ignores the SIGXFSZ that comes with it.
// It needs no mount rights, so it is the tests' full disk. The process's
// log file, when it is a regular file, is bounded too.
func SetFileSizeLimit(tb testing.TB, pid int, limit uint64) {
	tb.Helper()
	var old [2]uint64 // struct rlimit64 {cur, max}
	if err := prlimit(pid, nil, &old); err != nil {
		tb.Fatalf("prlimit(%d, RLIMIT_FSIZE): %v", pid, err)
	}
	lim := [2]uint64{min(limit, old[1]), old[1]}
	if err := prlimit(pid, &lim, nil); err != nil {
		tb.Fatalf("prlimit(%d, RLIMIT_FSIZE, %d): %v", pid, limit, err)
	}
}

func prlimit(pid int, set, get *[2]uint64) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE,
		uintptr(unsafe.Pointer(set)), uintptr(unsafe.Pointer(get)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
