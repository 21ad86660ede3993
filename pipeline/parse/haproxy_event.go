package parse

import (
	"sync"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// HAProxyEvent returns the function that refines the event of one HAProxy
// log message (an input's parser: haproxy): NewHAProxyParser(loc).Refine.
func HAProxyEvent(loc *time.Location) func(ev *ferryv1.Event, msg []byte) {
	return NewHAProxyParser(loc).Refine
}

// HAProxyParser refines the events of HAProxy log messages (see Refine).
// Its methods may be called from several goroutines.
type HAProxyParser struct {
	loc *time.Location
	mu  sync.Mutex
	// The values of all events come from slabs (see values).
	a values
	// Maps given back by Release, cleared, for the next events.
	free []map[string]*ferryv1.Value
}

// maxFreeMaps bounds the maps a parser keeps for reuse (about 2 KiB each):
// a few batches' worth.
const maxFreeMaps = 2048

// NewHAProxyParser returns a parser that reads dates in loc (nil:
// time.Local).
func NewHAProxyParser(loc *time.Location) *HAProxyParser {
	if loc == nil {
		loc = time.Local
	}
	return &HAProxyParser{loc: loc, a: values{nvals: slabVals, nstrs: slabStrs, nints: slabInts, ntext: slabText}}
}

// Refine refines the event ev of the message msg: its fields become those
// of the input (ev.Fields, shared: copied, never modified) and the parsed
// ones (see HAProxyFields), in a map of its own, and its time the accept
// date. A message that does not parse is kept whole, flagged unparsed,
// with the reason in error.message. msg need not outlive the call.
func (p *HAProxyParser) Refine(ev *ferryv1.Event, msg []byte) {
	var h HAProxy
	err := ParseHAProxy(msg, p.loc, &h)
	p.mu.Lock()
	defer p.mu.Unlock()
	var fs map[string]*ferryv1.Value
	if n := len(p.free); n > 0 {
		fs = p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
	} else {
		fs = make(map[string]*ferryv1.Value, len(ev.Fields)+HAProxyFieldCount)
	}
	for k, v := range ev.Fields {
		fs[k] = v
	}
	if err != nil {
		fs["error.message"] = p.a.strValue(err.Error())
		ev.Flags |= uint32(ferryv1.Flag_FLAG_UNPARSED)
		ev.Fields = fs
		return
	}
	ev.Fields = haproxyFields(fs, &h, msg, &p.a)
	if h.Time != 0 {
		ev.TimeUnixNano = h.Time
	}
}

// Release gives back the fields of an event Refine refined, once nothing
// refers to the event or its fields any more (its batch acknowledged): the
// map serves a later event. The values in it are not reused.
func (p *HAProxyParser) Release(fields map[string]*ferryv1.Value) {
	if fields == nil {
		return
	}
	clear(fields)
	p.mu.Lock()
	if len(p.free) < maxFreeMaps {
		p.free = append(p.free, fields)
	}
	p.mu.Unlock()
}
