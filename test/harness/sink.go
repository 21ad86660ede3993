package harness

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"
)

// Doc is the part of a sink document the tests look at.
type Doc struct {
	Message string `json:"message"`
	Event   struct {
		ID string `json:"id"`
	} `json:"event"`
	Log struct {
		File struct {
			Path string `json:"path"`
		} `json:"file"`
		Offset int64 `json:"offset"`
	} `json:"log"`
	Kubernetes struct {
		Namespace string `json:"namespace"`
		Pod       struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"pod"`
		Container struct {
			Name string `json:"name"`
		} `json:"container"`
	} `json:"kubernetes"`
}

// ReadSink reads every complete document of an NDJSON sink file (none while
// it does not exist). A torn last line (the aggregator killed mid-write) is
// skipped: that batch was not acknowledged and comes again.
func ReadSink(tb testing.TB, path string) []Doc {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		tb.Fatal(err)
	}
	defer f.Close()
	var docs []Doc
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var d Doc
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			continue
		}
		docs = append(docs, d)
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("reading %s: %v", path, err)
	}
	return docs
}
