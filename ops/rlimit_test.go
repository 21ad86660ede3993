package ops

import (
	"syscall"
	"testing"
)

// TestRaiseFileLimit lowers the soft limit of open files of the test
// process and checks that RaiseFileLimit brings it back to the hard limit.
func TestRaiseFileLimit(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
			t.Errorf("restore the limit of open files: %v", err)
		}
	})
	if orig.Max < 256 {
		t.Fatalf("hard limit of open files %d: too low to test", orig.Max)
	}
	low := syscall.Rlimit{Cur: 128, Max: orig.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	lim, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if lim.Soft != orig.Max || lim.Hard != orig.Max || !lim.Raised {
		t.Fatalf("RaiseFileLimit() = %+v, want soft = hard = %d, raised", lim, orig.Max)
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if now.Cur != orig.Max {
		t.Fatalf("soft limit after RaiseFileLimit = %d, want %d", now.Cur, orig.Max)
	}
	// Already at the hard limit: nothing to do.
	if lim, err := RaiseFileLimit(); err != nil || lim.Raised || lim.Soft != orig.Max {
		t.Fatalf("second RaiseFileLimit() = %+v, %v; want soft %d, not raised", lim, err, orig.Max)
	}
}
