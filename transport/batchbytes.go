package transport

import (
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Go heap a decoded batch holds beyond its encoded size, per part: the
// structs (rounded up to their allocation size class), the pointers to
// them and the rounding of every bytes and string field, which are
// separate allocations. Measured with google.golang.org/protobuf v1.36 on
// amd64 (TestBatchBytes checks the estimate against the heap).
const (
	batchOverhead  = 128 // the Batch and its node name
	eventOverhead  = 168 // Event (136 B), its pointer in Events, id and message
	sourceOverhead = 112 // Source (96 B) and 3 strings
	kubeOverhead   = 160 // Kubernetes (120 B) and 5 strings
	fieldOverhead  = 224 // map entry, key, Value and its oneof wrapper
)

// batchBytes estimates the memory a received batch holds once decoded:
// its encoded size (proto.Size, which counts every field, new ones
// included) plus the per-part overheads above. For events of about 100
// bytes the overhead doubles the encoded size; for large messages it is
// negligible.
func batchBytes(b *ferryv1.Batch) int64 {
	n := int64(proto.Size(b)) + batchOverhead
	for _, e := range b.Events {
		n += eventOverhead
		if e == nil {
			continue
		}
		if e.Source != nil {
			n += sourceOverhead
		}
		if e.Kubernetes != nil {
			n += kubeOverhead
		}
		n += int64(len(e.Fields)) * fieldOverhead
	}
	return n
}
