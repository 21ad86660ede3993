package event

import (
	"encoding/json"
	"testing"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// @timestamp is the event's time whatever it is, the epoch included; a time
// out of range travels as written in ferry.original_timestamp, flagged,
// with @timestamp the time of reading (issue 19, case 10c).
func TestDocumentTimes(t *testing.T) {
	read := time.Date(2026, 11, 30, 10, 0, 0, 5, time.UTC)
	cases := []struct {
		name     string
		ev       *ferryv1.Event
		ts, orig string
		flags    []string
	}{
		{"epoch", &ferryv1.Event{TimeUnixNano: 0}, "1970-01-01T00:00:00.000000000Z", "", nil},
		{"before the epoch", &ferryv1.Event{TimeUnixNano: -1}, "1969-12-31T23:59:59.999999999Z", "", nil},
		{"last in range", &ferryv1.Event{TimeUnixNano: 1<<63 - 1}, "2262-04-11T23:47:16.854775807Z", "", nil},
		{"out of range", &ferryv1.Event{
			TimeUnixNano: read.UnixNano(), OriginalTime: "2262-04-12T00:00:00+01:00",
			Flags: uint32(ferryv1.Flag_FLAG_TIMESTAMP_OUT_OF_RANGE), Stream: ferryv1.StreamName_STREAM_STDERR,
		}, "2026-11-30T10:00:00.000000005Z", "2262-04-12T00:00:00+01:00", []string{"timestamp_out_of_range"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Id = ID(nil, "n", "f", 1)
			doc := AppendDocument(nil, "n", tc.ev, read)
			var m struct {
				TS     string `json:"@timestamp"`
				Stream string `json:"stream"`
				Ferry  struct {
					Flags []string `json:"flags"`
					Orig  *string  `json:"original_timestamp"`
				} `json:"ferry"`
			}
			if err := json.Unmarshal(doc, &m); err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			if m.TS != tc.ts {
				t.Errorf("@timestamp = %s, want %s", m.TS, tc.ts)
			}
			if tc.orig == "" && m.Ferry.Orig != nil || tc.orig != "" && (m.Ferry.Orig == nil || *m.Ferry.Orig != tc.orig) {
				t.Errorf("ferry.original_timestamp = %v, want %q\n%s", m.Ferry.Orig, tc.orig, doc)
			}
			if len(m.Ferry.Flags) != len(tc.flags) || len(tc.flags) > 0 && m.Ferry.Flags[0] != tc.flags[0] {
				t.Errorf("ferry.flags = %v, want %v", m.Ferry.Flags, tc.flags)
			}
			if tc.ev.Stream == ferryv1.StreamName_STREAM_STDERR && m.Stream != "stderr" {
				t.Errorf("stream = %q, want stderr", m.Stream)
			}
		})
	}
}
