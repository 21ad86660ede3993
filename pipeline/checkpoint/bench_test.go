package checkpoint

import (
	"fmt"
	"testing"
)

// BenchmarkSave: one save of the positions of 20 files, each advanced since
// the last (as every second while 20 files are written): encoding, the
// atomic write with its fsyncs.
func BenchmarkSave(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for i := range 20 {
		s.Put(Entry{ID: fmt.Sprintf("fe00-%d-0123456789abcdef", i), Input: "container-0", Path: fmt.Sprintf("/var/log/pods/ns_pod-%d_0123/c/0.log", i), Dev: 0xfe00, Ino: uint64(1000 + i), Fingerprint: "0123456789abcdef", FingerprintLen: 120, Offset: 1})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range 20 {
			s.AdvanceCheck(fmt.Sprintf("fe00-%d-0123456789abcdef", j), int64(120*(i+2)), "0123456789abcdef", 64)
		}
		if err := s.Save(); err != nil {
			b.Fatal(err)
		}
	}
}
