package parse

import (
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// HAProxyEvent returns the function that refines the event of one HAProxy
// log message (an input's parser: haproxy): its fields become those of
// the input (ev.Fields, shared: copied, never modified) and the parsed
// ones (see HAProxyFields), and its time the accept date read in loc (nil:
// time.Local). A message that does not parse is kept whole, flagged
// unparsed, with the reason in error.message.
func HAProxyEvent(loc *time.Location) func(ev *ferryv1.Event, msg []byte) {
	if loc == nil {
		loc = time.Local
	}
	return func(ev *ferryv1.Event, msg []byte) {
		var h HAProxy
		err := ParseHAProxy(msg, loc, &h)
		fs := make(map[string]*ferryv1.Value, len(ev.Fields)+HAProxyFieldCount)
		for k, v := range ev.Fields {
			fs[k] = v
		}
		if err != nil {
			fs["error.message"] = &ferryv1.Value{Kind: &ferryv1.Value_Str{Str: err.Error()}}
			ev.Flags |= uint32(ferryv1.Flag_FLAG_UNPARSED)
			ev.Fields = fs
			return
		}
		ev.Fields = haproxyFields(fs, &h, msg)
		if h.Time != 0 {
			ev.TimeUnixNano = h.Time
		}
	}
}
