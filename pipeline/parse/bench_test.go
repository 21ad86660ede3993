package parse

import (
	"strings"
	"testing"
)

// A realistic ~120-byte application line and a ~2 KiB one (a stack trace or
// a fat JSON app log), wrapped in each format.
var (
	benchMsg     = `level=info ts=2024-05-01T12:00:00.123Z caller=handler.go:87 msg="GET /api/v1/orders 200" dur=1.23ms`
	benchLongMsg = strings.Repeat(`at com.example.orders.Handler.process(Handler.java:123) {"k":"v"} `, 31)
)

func criLine(msg string) []byte { return []byte(criTime + " stdout F " + msg) }

// dockerLine escapes msg the way Docker's json-file driver (encoding/json) does.
func dockerLine(msg string) []byte {
	msg = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(msg)
	return []byte(`{"log":"` + msg + `\n","stream":"stdout","time":"` + dockerTime + `"}`)
}

func benchAppend(b *testing.B, f Format, line []byte) {
	dst := make([]byte, 0, len(line))
	if _, _, _, err := Append(dst, f, line); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		Append(dst, f, line)
	}
}

func BenchmarkCRI(b *testing.B) {
	b.Run("120B", func(b *testing.B) { benchAppend(b, FormatCRI, criLine(benchMsg)) })
	b.Run("2KiB", func(b *testing.B) { benchAppend(b, FormatCRI, criLine(benchLongMsg)) })
}

func BenchmarkDocker(b *testing.B) {
	b.Run("120B", func(b *testing.B) { benchAppend(b, FormatDocker, dockerLine(benchMsg)) })
	b.Run("2KiB", func(b *testing.B) { benchAppend(b, FormatDocker, dockerLine(benchLongMsg)) })
}

func BenchmarkPlain(b *testing.B) {
	b.Run("120B", func(b *testing.B) { benchAppend(b, FormatPlain, []byte(benchMsg)) })
	b.Run("2KiB", func(b *testing.B) { benchAppend(b, FormatPlain, []byte(benchLongMsg)) })
}

func BenchmarkDetect(b *testing.B) {
	line := dockerLine(benchMsg)
	b.ReportAllocs()
	for b.Loop() {
		Detect(line)
	}
}
