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
		ferryv1.Flag_FLAG_TIMESTAMP_OUT_OF_RANGE: "timestamp_out_of_range", ferryv1.Flag_FLAG_MULTILINE: "multiline",
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

// A multiline event writes log.lines and log.end_offset beside log.offset
// (its first line's); a single line writes neither.
func TestMultilineLogFields(t *testing.T) {
	type logDoc struct {
		Log struct {
			Offset    int64  `json:"offset"`
			EndOffset *int64 `json:"end_offset"`
			Lines     *int   `json:"lines"`
		} `json:"log"`
	}
	src := &ferryv1.Source{Path: "/x.log", Offset: 100, EndOffset: 612, Lines: 7}
	e := &ferryv1.Event{Id: ID(nil, "n", "f", 100), Source: src, Flags: uint32(ferryv1.Flag_FLAG_MULTILINE)}
	var m logDoc
	if err := json.Unmarshal(AppendDocument(nil, "n", e, time.Unix(0, 0)), &m); err != nil {
		t.Fatal(err)
	}
	if m.Log.Offset != 100 || m.Log.EndOffset == nil || *m.Log.EndOffset != 612 || m.Log.Lines == nil || *m.Log.Lines != 7 {
		t.Errorf("log %+v, want offset 100, end_offset 612, lines 7", m.Log)
	}
	e.Source = &ferryv1.Source{Path: "/x.log", Offset: 100}
	m = logDoc{}
	if err := json.Unmarshal(AppendDocument(nil, "n", e, time.Unix(0, 0)), &m); err != nil {
		t.Fatal(err)
	}
	if m.Log.EndOffset != nil || m.Log.Lines != nil {
		t.Errorf("single line: log %+v", m.Log)
	}
}
