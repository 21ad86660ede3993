package tail

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrylogs/ferry/pipeline/parse"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// A line's own time is kept even when it is the Unix epoch (zero is a
// time, not "no time"); a time out of range gives the time of reading,
// keeps stream and message, and travels as written, flagged (issue 19,
// case 10c). Plain lines get the time of reading.
func TestLineTimes(t *testing.T) {
	dir := t.TempDir()
	cri, plain := filepath.Join(dir, "c.log"), filepath.Join(dir, "p.log")
	appendFile(t, cri, "1970-01-01T00:00:00Z stdout F epoch\n"+
		"2262-04-12T00:00:00.5Z stderr F late\n"+
		"1600-01-01T00:00:00+01:00 stdout P early \n"+
		"2016-10-06T00:17:09Z stdout F joined\n"+ // ends the join of "early "
		"2016-10-06T00:17:09Z stdout P in range \n"+
		"9999-01-01T00:00:00Z stdout F continued\n")
	appendFile(t, plain, "no time here\n")
	before := time.Now().UnixNano()
	h := newHarness(t, harnessOpts{}, input("c", parse.FormatCRI, cri), input("p", parse.FormatPlain, plain))
	evs := byMsg(h.waitEvents(5))
	after := time.Now().UnixNano()
	const oor = uint32(ferryv1.Flag_FLAG_TIMESTAMP_OUT_OF_RANGE)
	read := func(e ev) bool { return e.Time >= before && e.Time <= after }

	if e := evs["epoch"]; e.Time != 0 || e.Flags != 0 || e.Orig != "" {
		t.Errorf("epoch line: %+v (time %d), want time 0, no flags", e, e.Time)
	}
	if e := evs["late"]; !read(e) || e.Flags != oor || e.Orig != "2262-04-12T00:00:00.5Z" || e.Stream != ferryv1.StreamName_STREAM_STDERR {
		t.Errorf("line after the range: %+v (time %d), want the time of reading, stderr, flagged, time as written", e, e.Time)
	}
	if e := evs["early joined"]; !read(e) || e.Flags != oor|flagJoined || e.Orig != "1600-01-01T00:00:00+01:00" {
		t.Errorf("joined line starting before the range: %+v (time %d)", e, e.Time)
	}
	// Out of range in a later fragment: the event has the first
	// fragment's time, which is fine, and no flag.
	if e := evs["in range continued"]; e.Time != time.Date(2016, 10, 6, 0, 17, 9, 0, time.UTC).UnixNano() || e.Flags != flagJoined || e.Orig != "" {
		t.Errorf("joined line with a later fragment out of range: %+v (time %d)", e, e.Time)
	}
	if e := evs["no time here"]; !read(e) || e.Flags != 0 {
		t.Errorf("plain line: %+v (time %d), want the time of reading", e, e.Time)
	}
}
