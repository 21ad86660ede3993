package wire

import ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"

// Go heap a batch decoded by Decode holds beyond its encoded bytes (which
// its strings share), per part: the structs, which Decode allocates in one
// array per kind (so without size-class rounding), plus the pointers to
// the events; typed fields allocate per entry. Measured on amd64 with
// google.golang.org/protobuf v1.36 (transport's TestBatchBytes checks the
// estimate against the heap).
const (
	batchHeap  = 128 // the Batch
	eventHeap  = 160 // Event (152 B) and its pointer in Events
	sourceHeap = 112 // Source
	kubeHeap   = 120 // Kubernetes
	fieldHeap  = 224 // map entry, Value and its oneof wrapper
	podHeap    = 512 // Pod, its maps (small ones)
)

// HeapBytes estimates the memory a batch decoded by Decode holds beyond
// its encoded bytes. For events of about 100 bytes it is about the encoded
// size; for large messages it is negligible.
func HeapBytes(b *ferryv1.Batch) int64 {
	n := int64(batchHeap) + int64(len(b.Pods))*podHeap
	for _, e := range b.Events {
		n += eventHeap
		if e == nil {
			continue
		}
		if e.Source != nil {
			n += sourceHeap
		}
		if e.Kubernetes != nil {
			n += kubeHeap
		}
		n += int64(len(e.Fields)) * fieldHeap
	}
	return n
}
