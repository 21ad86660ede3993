package parse

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestLocalUnixNanoMatchesTimeDate: localUnixNano is time.Date's UnixNano
// in zones with daylight saving time (a 30-minute one, a negative one,
// one south of the equator), around their transitions (the wall times
// skipped and repeated), in runs that reuse the cached span and in random
// order, for every field in range.
func TestLocalUnixNanoMatchesTimeDate(t *testing.T) {
	locs := []*time.Location{time.UTC, time.Local, time.FixedZone("x", -5*3600-1800)}
	for _, name := range []string{"America/New_York", "Europe/Dublin", "Australia/Lord_Howe", "Asia/Kolkata", "Europe/Moscow", "Pacific/Apia"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Logf("no zone %s: %v", name, err)
			continue
		}
		locs = append(locs, loc)
	}
	r := rand.New(rand.NewPCG(3, 4))
	check := func(loc *time.Location, y, mo, d, hh, mm, ss, ns int) {
		t.Helper()
		want := time.Date(y, time.Month(mo), d, hh, mm, ss, ns, loc).UnixNano()
		if got := localUnixNano(y, mo, d, hh, mm, ss, ns, loc); got != want {
			t.Fatalf("%s %04d-%02d-%02d %02d:%02d:%02d.%09d: %d, time.Date %d", loc, y, mo, d, hh, mm, ss, ns, got, want)
		}
	}
	for _, loc := range locs {
		// Two years in order, every minute of the three hours around each
		// transition (wall times as UTC fields), seconds 0, 30, 59 and 60.
		walk := func(from time.Time, minutes, step int) {
			for m := 0; m < minutes; m += step {
				w := from.Add(time.Duration(m) * time.Minute)
				for _, s := range []int{0, 30, 59, 60} {
					check(loc, w.Year(), int(w.Month()), w.Day(), w.Hour(), w.Minute(), s, r.IntN(1e9))
				}
			}
		}
		start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		walk(start, 2*366*24*60, 97)
		for at := start.In(loc); at.Year() < 2027; {
			_, end := at.ZoneBounds()
			if end.IsZero() {
				break
			}
			_, off := end.Zone()
			walk(end.Add(time.Duration(off)*time.Second-90*time.Minute).UTC(), 180, 1)
			at = end
		}
		// Random times of years 0 to 9999, days past the month's end.
		for range 20000 {
			check(loc, r.IntN(10000), 1+r.IntN(12), 1+r.IntN(31), r.IntN(24), r.IntN(60), r.IntN(61), r.IntN(1e9))
		}
	}
	// Zones interleaved: the cache is one span.
	for range 5000 {
		check(locs[r.IntN(len(locs))], 2000+r.IntN(50), 1+r.IntN(12), 1+r.IntN(31), r.IntN(24), r.IntN(60), r.IntN(61), 0)
	}
}

func BenchmarkAcceptDate(b *testing.B) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		loc = time.UTC
	}
	w := []byte("[30/Nov/2026:11:25:44.260]")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := acceptDate(w, loc); !ok {
			b.Fatal("bad date")
		}
	}
}
