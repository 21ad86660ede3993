package event

import (
	"encoding/json"
	"testing"
	"time"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Every flag the agent sets has a name in ferry.flags.
func TestFlagNames(t *testing.T) {
	for bit, name := range map[ferryv1.Flag]string{
		ferryv1.Flag_FLAG_TRUNCATED: "truncated", ferryv1.Flag_FLAG_INVALID_UTF8: "invalid_utf8",
		ferryv1.Flag_FLAG_JOINED: "joined", ferryv1.Flag_FLAG_UNPARSED: "unparsed", ferryv1.Flag_FLAG_PARTIAL: "partial",
		ferryv1.Flag_FLAG_TIMESTAMP_OUT_OF_RANGE: "timestamp_out_of_range",
	} {
		doc := AppendDocument(nil, "n", &ferryv1.Event{Id: ID(nil, "n", "f", 1), Flags: uint32(bit)}, time.Unix(0, 0))
		var m struct {
			Ferry struct {
				Flags []string `json:"flags"`
			} `json:"ferry"`
		}
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, doc)
		}
		if len(m.Ferry.Flags) != 1 || m.Ferry.Flags[0] != name {
			t.Errorf("flag %v written as %v, want [%s]", bit, m.Ferry.Flags, name)
		}
	}
}
