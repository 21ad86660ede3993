package metrics

import (
	"context"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// base is the time of the first fixture sample; they are 10 s apart.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(i int) time.Time { return base.Add(time.Duration(i) * 10 * time.Second) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// nodeSampler samples the /proc fixture of sample t0.
func nodeSampler(t *testing.T, sets ...string) *Sampler {
	t.Helper()
	s, err := New(Config{Node: "node-1", HostRoot: nodeRoot(0), Sets: sets, Environment: "prod"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func nodeRoot(i int) string { return filepath.Join("testdata", "node", "t"+string(rune('0'+i))) }

// sampleNode collects the node fixture of sample i.
func sampleNode(s *Sampler, i int) []*ferryv1.Event {
	s.cfg.HostRoot = nodeRoot(i)
	s.env = hostEnv(nodeRoot(i))
	return s.Collect(context.Background(), at(i))
}

// series returns the fields of the event of dataset whose field key is
// value (key "": the only event of dataset), or nil.
func series(evs []*ferryv1.Event, dataset, key, value string) map[string]*ferryv1.Value {
	for _, e := range evs {
		if event.FieldString(e, "data_stream.dataset") != dataset {
			continue
		}
		if key == "" || event.FieldString(e, key) == value {
			return e.GetFields()
		}
	}
	return nil
}

func count(evs []*ferryv1.Event, dataset string) int {
	n := 0
	for _, e := range evs {
		if event.FieldString(e, "data_stream.dataset") == dataset {
			n++
		}
	}
	return n
}

// num returns a numeric field as float64; ok is false if absent.
func num(f map[string]*ferryv1.Value, name string) (float64, bool) {
	v, ok := f[name]
	if !ok {
		return 0, false
	}
	switch k := v.GetKind().(type) {
	case *ferryv1.Value_Int:
		return float64(k.Int), true
	case *ferryv1.Value_Double:
		return k.Double, true
	}
	return 0, false
}

type want map[string]float64 // field -> value; NaN: must be absent

func check(t *testing.T, what string, f map[string]*ferryv1.Value, w want) {
	t.Helper()
	if f == nil {
		t.Errorf("%s: no event", what)
		return
	}
	for name, exp := range w {
		got, ok := num(f, name)
		switch {
		case math.IsNaN(exp) && ok:
			t.Errorf("%s: %s = %v, want absent", what, name, got)
		case math.IsNaN(exp):
		case !ok:
			t.Errorf("%s: %s absent, want %v", what, name, exp)
		case math.Abs(got-exp) > 1e-9*math.Max(1, math.Abs(exp)):
			t.Errorf("%s: %s = %v, want %v", what, name, got, exp)
		}
	}
}

var absent = math.NaN()

func TestNodeFixtures(t *testing.T) {
	s := nodeSampler(t, "cpu", "core", "load", "memory", "diskio", "network", "uptime", "filesystem")
	if s.cores != 2 {
		t.Fatalf("cores = %d, want 2 (from the fixture's /proc)", s.cores)
	}
	e0 := sampleNode(s, 0)
	if n := count(e0, "system.cpu") + count(e0, "system.core"); n != 0 {
		t.Errorf("first sample has %d CPU events, want none (no interval yet)", n)
	}
	check(t, "t0 load", series(e0, "system.load", "", ""), want{"system.load.1": 0.5, "system.load.norm.1": 0.25, "system.load.15": 0.3, "system.load.cores": 2})
	check(t, "t0 memory", series(e0, "system.memory", "", ""), want{
		"system.memory.total": 8192000000, "system.memory.free": 2048000000,
		"system.memory.used.bytes": 6144000000, "system.memory.used.pct": 0.75,
		"system.memory.actual.free": 5120000000, "system.memory.actual.used.bytes": 3072000000, "system.memory.actual.used.pct": 0.375,
	})
	check(t, "t0 uptime", series(e0, "system.uptime", "", ""), want{"system.uptime.duration.ms": 3600500})
	check(t, "t0 sda", series(e0, "system.diskio", "system.diskio.name", "sda"), want{
		"system.diskio.read.bytes": 20000 * 512, "system.diskio.read.count": 1000, "system.diskio.io.time": 1000,
		"system.diskio.iostat.read.per_sec.bytes": absent, "system.diskio.iostat.busy": absent,
	})
	if series(e0, "system.diskio", "system.diskio.name", "loop0") != nil {
		t.Error("loop0, never used, has an event")
	}
	check(t, "t0 eth0", series(e0, "system.network", "system.network.name", "eth0"), want{
		"system.network.in.bytes": 1e6, "system.network.out.bytes": 5e5, "system.network.in.bytes_per_sec": absent,
	})
	for _, ex := range []string{"lo", "veth1234"} {
		if series(e0, "system.network", "system.network.name", ex) != nil {
			t.Errorf("excluded interface %s has an event", ex)
		}
	}
	if series(e0, "system.network", "system.network.name", "wlan0") == nil {
		t.Error("wlan0 has no event")
	}
	// Mount types: / (ext4) is sampled (statfs of the fixture directory),
	// /dev/shm (tmpfs) and /proc are excluded by default.
	if series(e0, "system.filesystem", "system.filesystem.mount_point", "/") == nil || count(e0, "system.filesystem") != 1 {
		t.Errorf("filesystem events: %d, want / only", count(e0, "system.filesystem"))
	}

	e1 := sampleNode(s, 1)
	check(t, "t1 cpu", series(e1, "system.cpu", "", ""), want{
		"system.cpu.cores":    2,
		"system.cpu.user.pct": 0.5, "system.cpu.user.norm.pct": 0.25,
		"system.cpu.system.pct": 0.3, "system.cpu.idle.norm.pct": 0.5,
		"system.cpu.iowait.norm.pct": 0.05, "system.cpu.steal.norm.pct": 0.05,
		"system.cpu.total.pct": 0.9, "system.cpu.total.norm.pct": 0.45,
	})
	check(t, "t1 core 0", series(e1, "system.core", "", ""), want{"system.core.id": 0, "system.core.user.pct": 0.25, "system.core.total.pct": 0.45})
	if n := count(e1, "system.core"); n != 2 {
		t.Errorf("core events: %d, want 2", n)
	}
	check(t, "t1 sda", series(e1, "system.diskio", "system.diskio.name", "sda"), want{
		"system.diskio.iostat.read.per_sec.bytes":   2048 * 512 / 10.0,
		"system.diskio.iostat.write.per_sec.bytes":  4096 * 512 / 10.0,
		"system.diskio.iostat.read.request.per_sec": 10, "system.diskio.iostat.write.request.per_sec": 50,
		"system.diskio.iostat.busy": 0.25,
	})
	check(t, "t1 eth0", series(e1, "system.network", "system.network.name", "eth0"), want{
		"system.network.in.bytes_per_sec": 1e6, "system.network.out.bytes_per_sec": 1e5,
		"system.network.in.packets_per_sec": 1000, "system.network.in.dropped_per_sec": 0.2, "system.network.in.errors_per_sec": 0,
	})
	if series(e1, "system.network", "system.network.name", "wlan0") != nil {
		t.Error("wlan0, gone at t1, has an event")
	}

	e2 := sampleNode(s, 2)
	check(t, "t2 cpu", series(e2, "system.cpu", "", ""), want{"system.cpu.total.norm.pct": 200.0 / 2100, "system.cpu.idle.norm.pct": 1800.0 / 2100})
	// sda's counters went down: its counters are sent, no rate for the
	// interval; sdb disappeared.
	check(t, "t2 sda (reset)", series(e2, "system.diskio", "system.diskio.name", "sda"), want{
		"system.diskio.read.count": 10, "system.diskio.iostat.read.per_sec.bytes": absent,
		"system.diskio.iostat.write.request.per_sec": absent, "system.diskio.iostat.busy": absent,
	})
	if series(e2, "system.diskio", "system.diskio.name", "sdb") != nil {
		t.Error("sdb, gone at t2, has an event")
	}
	// wlan0 came back: a first sample again, no rate against t0.
	check(t, "t2 wlan0 (back)", series(e2, "system.network", "system.network.name", "wlan0"), want{
		"system.network.in.bytes": 5000, "system.network.in.bytes_per_sec": absent,
	})
	check(t, "t2 load", series(e2, "system.load", "", ""), want{"system.load.1": 3, "system.load.norm.1": 1.5})

	for _, e := range e2 {
		if e.GetKind() != ferryv1.Kind_KIND_METRIC || e.GetTimeUnixNano() != at(2).UnixNano() {
			t.Fatalf("event kind %v time %d, want metric at %d", e.GetKind(), e.GetTimeUnixNano(), at(2).UnixNano())
		}
		if ns := event.FieldString(e, "data_stream.namespace"); ns != "prod" {
			t.Fatalf("node metric namespace %q, want the configured environment prod", ns)
		}
	}
}

// TestIDs: a sample's ids are unique per series and the same when the
// same sample is built again (a re-send after a crash).
func TestIDs(t *testing.T) {
	ids := func() map[string]string {
		s := nodeSampler(t, "cpu", "diskio", "network", "load")
		sampleNode(s, 0)
		m := map[string]string{}
		for _, e := range sampleNode(s, 1) {
			id := event.IDString(e.GetId())
			key := event.FieldString(e, "data_stream.dataset") + "/" + event.FieldString(e, "system.diskio.name") + event.FieldString(e, "system.network.name")
			if _, dup := m[id]; dup {
				t.Fatalf("id %s twice in one sample", id)
			}
			m[id] = key
		}
		return m
	}
	a, b := ids(), ids()
	if len(a) < 5 || len(a) != len(b) {
		t.Fatalf("%d and %d ids", len(a), len(b))
	}
	for id, k := range a {
		if b[id] != k {
			t.Errorf("id %s is %q once and %q again", id, k, b[id])
		}
	}
	x := event.MetricID(nil, "n", "system.cpu", "", 1)
	for _, y := range [][]byte{
		event.MetricID(nil, "n", "system.cpu", "", 2), event.MetricID(nil, "m", "system.cpu", "", 1),
		event.MetricID(nil, "n", "system.load", "", 1), event.MetricID(nil, "n", "system.cpu", "x", 1),
	} {
		if string(x) == string(y) {
			t.Error("ids of different samples are equal")
		}
	}
}
