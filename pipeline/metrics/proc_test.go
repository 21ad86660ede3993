package metrics

import (
	"bufio"
	"context"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// procStat reads the aggregate cpu line of /proc/stat: busy (neither idle
// nor iowait) and total ticks, and the number of cpuN lines.
func procStat(t *testing.T) (busy, total uint64, cores int) {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 9 || !strings.HasPrefix(fs[0], "cpu") {
			continue
		}
		if fs[0] != "cpu" {
			cores++
			continue
		}
		for i, f := range fs[1:9] { // user nice system idle iowait irq softirq steal
			v, _ := strconv.ParseUint(f, 10, 64)
			total += v
			if i != 3 && i != 4 {
				busy += v
			}
		}
	}
	return busy, total, cores
}

func meminfo(t *testing.T) map[string]uint64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fs := strings.Fields(v)
		if len(fs) > 0 {
			n, _ := strconv.ParseUint(fs[0], 10, 64)
			m[k] = n * 1024
		}
	}
	return m
}

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %v, /proc says %v (tolerance %v)", what, got, want, tol)
	}
}

// TestAgainstProc samples this machine and checks the values against
// /proc and statfs read directly, within what can change in between.
func TestAgainstProc(t *testing.T) {
	s, err := New(Config{Node: "n"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	b0, t0, cores := procStat(t)
	if s.cores != cores {
		t.Errorf("cores = %d, /proc/stat has %d", s.cores, cores)
	}
	s.Collect(context.Background(), time.Now())
	// Counters need time to move: a second of CPU time of every core.
	time.Sleep(time.Second)
	evs := s.Collect(context.Background(), time.Now())
	b1, t1, _ := procStat(t)
	ref := float64(b1-b0) / float64(t1-t0)

	cpu := series(evs, "system.cpu", "", "")
	norm, ok := num(cpu, "system.cpu.total.norm.pct")
	if !ok || norm < 0 || norm > 1 {
		t.Fatalf("system.cpu.total.norm.pct = %v (present %v), want within [0,1]", norm, ok)
	}
	within(t, "system.cpu.total.norm.pct", norm, ref, 0.25)
	pct, _ := num(cpu, "system.cpu.total.pct")
	within(t, "system.cpu.total.pct", pct, norm*float64(cores), 1e-9)

	mi := meminfo(t)
	mem := series(evs, "system.memory", "", "")
	total, _ := num(mem, "system.memory.total")
	within(t, "system.memory.total", total, float64(mi["MemTotal"]), 0)
	avail, _ := num(mem, "system.memory.actual.free")
	within(t, "system.memory.actual.free", avail, float64(mi["MemAvailable"]), 0.05*total)
	apct, _ := num(mem, "system.memory.actual.used.pct")
	within(t, "system.memory.actual.used.pct", apct, 1-float64(mi["MemAvailable"])/float64(mi["MemTotal"]), 0.05)
	swapTotal, _ := num(series(evs, "system.swap", "", ""), "system.memory.swap.total")
	within(t, "system.memory.swap.total", swapTotal, float64(mi["SwapTotal"]), 0)

	la, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	l15, _ := strconv.ParseFloat(strings.Fields(string(la))[2], 64)
	got15, _ := num(series(evs, "system.load", "", ""), "system.load.15")
	within(t, "system.load.15", got15, l15, 0.2)

	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	upSecs, _ := strconv.ParseFloat(strings.Fields(string(up))[0], 64)
	ms, _ := num(series(evs, "system.uptime", "", ""), "system.uptime.duration.ms")
	within(t, "system.uptime.duration.ms", ms, upSecs*1000, 2000)

	var st syscall.Statfs_t
	if err := syscall.Statfs("/", &st); err != nil {
		t.Fatal(err)
	}
	if fs := series(evs, "system.filesystem", "system.filesystem.mount_point", "/"); fs != nil {
		ftotal, _ := num(fs, "system.filesystem.total")
		within(t, "/ total", ftotal, float64(st.Blocks)*float64(st.Bsize), 0)
		used, _ := num(fs, "system.filesystem.used.pct")
		within(t, "/ used.pct", used, float64(st.Blocks-st.Bfree)/float64(st.Blocks), 0.01)
	} else if typ := rootFSType(t); typ != "" && typ != "overlay" && typ != "tmpfs" {
		t.Errorf("no filesystem event for / (%s)", typ)
	}

	// Every interface of /proc/net/dev but the excluded ones, and their
	// counters no smaller than /proc read before the sample.
	nd, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	excl := regexp.MustCompile(strings.Join(DefaultExcludeInterfaces, "|"))
	for _, line := range strings.Split(string(nd), "\n")[2:] {
		name, rest, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || excl.MatchString(name) {
			if ok && series(evs, "system.network", "system.network.name", name) != nil {
				t.Errorf("excluded interface %s has an event", name)
			}
			continue
		}
		f := series(evs, "system.network", "system.network.name", name)
		if f == nil {
			t.Errorf("interface %s has no event", name)
			continue
		}
		rx, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		got, _ := num(f, "system.network.in.bytes")
		if got > rx {
			t.Errorf("%s in.bytes %v, more than /proc/net/dev read after it (%v)", name, got, rx)
		}
		if _, ok := num(f, "system.network.in.bytes_per_sec"); !ok {
			t.Errorf("%s: no rate on the second sample", name)
		}
	}
	for _, e := range evs {
		if e.GetKind() != ferryv1.Kind_KIND_METRIC {
			t.Fatal("not a metric event")
		}
	}
}

func rootFSType(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		if len(fs) > 2 && fs[1] == "/" {
			return fs[2]
		}
	}
	return ""
}
