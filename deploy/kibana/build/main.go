// Command build writes Ferry's Kibana saved objects (package
// deploy/kibana) as one NDJSON file for Kibana's import API or the
// Saved Objects page: go run ./deploy/kibana/build [-o FILE].
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferrylogs/ferry/deploy/kibana"
)

func main() {
	out := flag.String("o", "bin/kibana/ferry.ndjson", "output file")
	flag.Parse()
	b, err := kibana.NDJSON()
	if err == nil {
		err = os.MkdirAll(filepath.Dir(*out), 0o755)
	}
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kibana build:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d bytes\n", *out, len(b))
}
