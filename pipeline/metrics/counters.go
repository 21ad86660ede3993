package metrics

import "time"

// counters remembers the last value of every counter, by key, to turn
// counters into rates. A key not seen during a cycle is forgotten at its
// end (the device or container is gone): when it comes back, its first
// sample has no rate again.
type counters struct {
	gen uint64
	m   map[string]*last
}

type last struct {
	v    uint64
	t    time.Time
	seen uint64
}

// begin starts a cycle.
func (c *counters) begin() {
	c.gen++
	if c.m == nil {
		c.m = map[string]*last{}
	}
}

// delta records v at t under key and returns the increase since the
// previous value and the seconds between them. ok is false for the first
// value, for a counter that went down (reset, wrap, re-created) and when no
// time passed: no rate for that interval.
func (c *counters) delta(key string, v uint64, t time.Time) (d uint64, secs float64, ok bool) {
	l := c.m[key]
	if l == nil {
		c.m[key] = &last{v: v, t: t, seen: c.gen}
		return 0, 0, false
	}
	prev, pt := l.v, l.t
	l.v, l.t, l.seen = v, t, c.gen
	secs = t.Sub(pt).Seconds()
	if v < prev || secs <= 0 {
		return 0, 0, false
	}
	return v - prev, secs, true
}

// rate is delta as a rate per second.
func (c *counters) rate(key string, v uint64, t time.Time) (float64, bool) {
	d, secs, ok := c.delta(key, v, t)
	if !ok {
		return 0, false
	}
	return float64(d) / secs, true
}

// end forgets the keys not seen during the cycle.
func (c *counters) end() {
	for k, l := range c.m {
		if l.seen != c.gen {
			delete(c.m, k)
		}
	}
}
