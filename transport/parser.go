package transport

import ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"

// Parser refines the event ev of one message msg as it is copied into a
// batch (an input's parser: haproxy): it may replace ev.Fields with a map
// of the event's own (keeping the file's fields it holds: they are shared
// and must not be modified), and set ev.TimeUnixNano and ev.Flags. msg is
// valid only during the call. It runs on the shipper's goroutine, so it
// must be fast; it must keep the message.
type Parser func(ev *ferryv1.Event, msg []byte)

// parsedSize is what a parsed event of an n-byte message may add to its
// encoded size: the keys and framing of its fields, and values that are
// parts of the message (some twice, as url.original and url.path). Batches
// are sized on it, so that a batch of parsed events stays below
// BatchMaxBytes.
func parsedSize(n int) int { return 2048 + 2*n }

// FieldAppender is the fast form of an input's Parser
// (parse.HAProxyParser): rather than give the event a fields map of its
// own, it appends the fields it adds to dst in their wire encoding
// (entries of ferry.v1.Event.fields, as wire.MarshalBatchExtra takes
// them), leaving ev.Fields (the input's shared fields) as it is, and may
// set ev.TimeUnixNano and ev.Flags. It reports false, dst and ev
// unchanged, for a message it leaves to the Parser. Sets reports whether
// it may add the field key: events of a file whose fields hold such a key
// take the Parser (whose map replaces the file's value).
type FieldAppender interface {
	AppendFields(dst []byte, ev *ferryv1.Event, msg []byte) ([]byte, bool)
	Sets(key string) bool
}
