// Command wakecost measures what one wake-up of an otherwise idle Go
// process costs on this machine: the process waits for -period, makes one
// small write to /dev/null (a system call, as every burst of the agent and
// the aggregator makes), and waits again, for -duration; it prints the
// process's CPU time (user+system, the Go runtime's own threads included)
// per wake-up: the floor under each burst of work.
//
//	go run ./test/wakecost
//	GODEBUG=schedtrace=2147483647 go run ./test/wakecost
//	go run ./test/wakecost -wake timer -period 100ms
//
// What wakes it (-wake):
//
//   - pipe (the default): a byte from another process (a copy of this
//     command, whose CPU is not counted), read through Go's network poller,
//     as the agent and the aggregator are woken by their connections. While
//     every P is idle the runtime's sysmon thread sleeps deeply; the first
//     system call after the wake-up (the read of the byte) wakes it and sets
//     it back to ticking every 20 µs for 1 ms. GODEBUG=schedtrace=2147483647 keeps sysmon from
//     sleeping deeply, and so shows what those ticks cost.
//   - timer: time.Sleep (sysmon, asleep until the same timer, wakes with it
//     and is not set back to 20 µs ticks).
//   - nanosleep: the thread sleeps in the kernel, close to what the machine
//     itself charges any program for a wake-up.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail(fmt.Errorf("getrusage: %w", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "wakecost:", err)
	os.Exit(1)
}

// feed writes n bytes to stdout, one every period (the -feed mode).
func feed(period time.Duration, n int) {
	dot := []byte{'.'}
	next := time.Now()
	for range n {
		next = next.Add(period)
		time.Sleep(time.Until(next))
		if _, err := os.Stdout.Write(dot); err != nil {
			fail(fmt.Errorf("feed: %w", err))
		}
	}
}

func main() {
	period := flag.Duration("period", 10*time.Millisecond, "time between wake-ups")
	duration := flag.Duration("duration", 10*time.Second, "how long to measure")
	wake := flag.String("wake", "pipe", "what wakes the process: pipe, timer or nanosleep")
	noWrite := flag.Bool("no-write", false, "wake without the write system call")
	feedN := flag.Int("feed", 0, "internal: write this many bytes to stdout, one every -period")
	flag.Parse()
	if *feedN > 0 {
		feed(*period, *feedN)
		return
	}
	if *period <= 0 || *duration < *period {
		fail(fmt.Errorf("-period must be > 0 and at most -duration"))
	}
	n := int(*duration / *period)
	var wait func()
	switch *wake {
	case "pipe":
		self, err := os.Executable()
		if err != nil {
			fail(fmt.Errorf("find this command: %w", err))
		}
		cmd := exec.Command(self, "-feed", strconv.Itoa(n), "-period", period.String())
		cmd.Env = append(os.Environ(), "GODEBUG=") // the feeder runs as shipped
		cmd.Stderr = os.Stderr
		r, err := cmd.StdoutPipe()
		if err != nil {
			fail(fmt.Errorf("pipe: %w", err))
		}
		if err := cmd.Start(); err != nil {
			fail(fmt.Errorf("start the feeder: %w", err))
		}
		defer cmd.Wait()
		one := make([]byte, 1)
		wait = func() {
			if _, err := io.ReadFull(r, one); err != nil {
				fail(fmt.Errorf("read from the feeder: %w", err))
			}
		}
	case "timer":
		wait = func() { time.Sleep(*period) }
	case "nanosleep":
		ts := syscall.NsecToTimespec(period.Nanoseconds())
		// EINTR only shortens one sleep: the figure is per wake-up.
		wait = func() { _ = syscall.Nanosleep(&ts, nil) }
	default:
		fail(fmt.Errorf("-wake %q: want pipe, timer or nanosleep", *wake))
	}
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		fail(fmt.Errorf("open %s: %w", os.DevNull, err))
	}
	defer f.Close()
	buf := make([]byte, 4096)
	start := cpuTime()
	for range n {
		wait()
		if !*noWrite {
			if _, err := f.Write(buf); err != nil {
				fail(fmt.Errorf("write %s: %w", os.DevNull, err))
			}
		}
	}
	used := cpuTime() - start
	fmt.Printf("GOMAXPROCS=%d GODEBUG=%q wake=%s period=%v write=%v: %d wake-ups, CPU %v, %.1f µs per wake-up, %.2f%% of a core\n",
		runtime.GOMAXPROCS(0), os.Getenv("GODEBUG"), *wake, *period, !*noWrite, n, used.Round(time.Millisecond),
		float64(used)/float64(n)/1e3, 100*used.Seconds()/duration.Seconds())
}
