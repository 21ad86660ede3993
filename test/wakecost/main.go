// Command wakecost measures what one wake-up of an otherwise idle Go
// process costs on this machine: the process sleeps for -period, makes one
// small write to /dev/null (a system call, as every burst of the agent and
// the aggregator makes), and sleeps again, for -duration; it prints the
// process's CPU time (user+system, the Go runtime's own threads included)
// per wake-up. The figure is the floor under each burst of work: the timer,
// the thread switches and the runtime's sysmon thread, which a system call
// made after the process was idle sets back to waking every 20 µs for 1 ms.
// With -nanosleep the thread sleeps in the kernel instead (one thread, no
// timer of the runtime's), which is close to what the machine itself charges
// for a wake-up of any program.
//
//	go run ./test/wakecost
//	GOMAXPROCS=1 go run ./test/wakecost -period 100ms
//	go run ./test/wakecost -nanosleep
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
)

func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

func main() {
	period := flag.Duration("period", 10*time.Millisecond, "time between wake-ups")
	duration := flag.Duration("duration", 10*time.Second, "how long to measure")
	noWrite := flag.Bool("no-write", false, "wake without the write system call")
	nanosleep := flag.Bool("nanosleep", false, "sleep in the nanosleep system call, not time.Sleep")
	flag.Parse()
	if *period <= 0 || *duration < *period {
		fmt.Fprintln(os.Stderr, "wakecost: -period must be > 0 and at most -duration")
		os.Exit(2)
	}
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wakecost: open %s: %v\n", os.DevNull, err)
		os.Exit(1)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n := int(*duration / *period)
	start, err := cpuTime()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wakecost:", err)
		os.Exit(1)
	}
	ts := syscall.NsecToTimespec(period.Nanoseconds())
	for range n {
		if *nanosleep {
			// EINTR only shortens one sleep: the figure is per wake-up.
			_ = syscall.Nanosleep(&ts, nil)
		} else {
			time.Sleep(*period)
		}
		if !*noWrite {
			if _, err := f.Write(buf); err != nil {
				fmt.Fprintf(os.Stderr, "wakecost: write %s: %v\n", os.DevNull, err)
				os.Exit(1)
			}
		}
	}
	end, err := cpuTime()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wakecost:", err)
		os.Exit(1)
	}
	used := end - start
	fmt.Printf("GOMAXPROCS=%d period=%v nanosleep=%v write=%v: %d wake-ups, CPU %v, %.1f µs per wake-up, %.2f%% of a core\n",
		runtime.GOMAXPROCS(0), *period, *nanosleep, !*noWrite, n, used.Round(time.Millisecond),
		float64(used)/float64(n)/1e3, 100*used.Seconds()/duration.Seconds())
}
