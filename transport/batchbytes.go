package transport

import (
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Go heap a received batch holds beyond its encoded bytes (the copy the
// codec makes, kept as event.Batch.Raw), per part, once decoded by
// proto/ferry/v1/wire (whose string fields are views of the bytes, not a
// copy): the structs, which it allocates in one
// array per kind (so without size-class rounding), plus the pointers to
// the events; typed fields allocate per entry. Measured on amd64 with
// google.golang.org/protobuf v1.36 (TestBatchBytes checks the estimate
// against the heap).
const (
	batchOverhead  = 256 // the Batch, the event.Batch, the received
	eventOverhead  = 160 // Event (152 B) and its pointer in Events
	sourceOverhead = 112 // Source
	kubeOverhead   = 120 // Kubernetes
	fieldOverhead  = 224 // map entry, Value and its oneof wrapper
	podOverhead    = 512 // Pod, its maps (small ones)
)

// decodedBytes estimates the memory a received batch holds once decoded:
// its encoded size (the bytes, which the strings share) plus the per-part
// overheads above. For events of about 100 bytes the overhead is about
// the encoded size; for large messages it is negligible.
func decodedBytes(encoded int, b *ferryv1.Batch) int64 {
	n := int64(encoded) + batchOverhead + int64(len(b.Pods))*podOverhead
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

// rawBytes is the memory a batch received for a sink that takes raw
// batches holds: its bytes, and times event times (EventLatency).
func rawBytes(encoded, times int) int64 {
	return int64(encoded) + 8*int64(times) + batchOverhead
}

// batchBytes is decodedBytes of a batch about to be sent: what a server
// whose sink does not take raw batches counts for it.
func batchBytes(b *ferryv1.Batch) int64 {
	return decodedBytes(proto.Size(b), b)
}
