package transport

import (
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
	"github.com/ferrylogs/ferry/proto/ferry/v1/wire"
)

// batchOverhead is the Go heap a received batch holds beyond its encoded
// bytes (the copy the codec makes, kept as event.Batch.Raw) and, once
// decoded by proto/ferry/v1/wire, beyond wire.HeapBytes: the
// event.Batch and the received (TestBatchBytes checks the estimate
// against the heap).
const batchOverhead = 128

// decodedBytes estimates the memory a received batch holds once decoded:
// its encoded size (the bytes, which the strings share) plus the
// structs (wire.HeapBytes). For events of about 100 bytes the overhead is
// about the encoded size; for large messages it is negligible.
func decodedBytes(encoded int, b *ferryv1.Batch) int64 {
	return int64(encoded) + batchOverhead + wire.HeapBytes(b)
}

// rawBytes is the memory a batch received for a sink that takes raw
// batches holds: its bytes, and times event times (EventLatency).
func rawBytes(encoded, times int) int64 {
	return int64(encoded) + 8*int64(times) + rawOverhead
}

// rawOverhead is batchOverhead of a batch not decoded.
const rawOverhead = 256

// batchBytes is decodedBytes of a batch about to be sent: what a server
// whose sink does not take raw batches counts for it.
func batchBytes(b *ferryv1.Batch) int64 {
	return decodedBytes(proto.Size(b), b)
}
