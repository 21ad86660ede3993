package transport

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// ReceiveBufferPool is the server option that gives gRPC a buffer pool
// whose Get does not clear the buffer it reuses. gRPC's default pool
// clears the whole of every reused buffer; on the server, the buffers
// hold what is read from the connections (each filled with the bytes of a
// frame before it is read) and the messages gRPC marshals (written before
// they are sent), so the clearing is a pass over every byte received for
// nothing (2-4% of the aggregator's CPU). gRPC itself reads frames with
// such a pool when it has none (internal NewDirtySimplePool).
func ReceiveBufferPool() grpc.ServerOption {
	return experimental.BufferPool(newDirtyPool(8, 12, 14, 15, 20))
}

// dirtyPool is gRPC's default tiered pool (buffers of 2^exp bytes, larger
// requests allocated) without clearing.
type dirtyPool struct {
	sizes []int
	pools []sync.Pool
}

var _ mem.BufferPool = (*dirtyPool)(nil)

func newDirtyPool(exps ...uint) *dirtyPool {
	p := &dirtyPool{pools: make([]sync.Pool, len(exps))}
	for _, e := range exps {
		p.sizes = append(p.sizes, 1<<e)
	}
	return p
}

// Get returns a buffer of length n, its content undefined.
func (p *dirtyPool) Get(n int) *[]byte {
	for i, size := range p.sizes {
		if n > size {
			continue
		}
		if b, ok := p.pools[i].Get().(*[]byte); ok {
			*b = (*b)[:n]
			return b
		}
		b := make([]byte, n, size)
		return &b
	}
	b := make([]byte, n)
	return &b
}

// Put keeps a buffer that Get made (of a pool's size); others are left
// to the garbage collector.
func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	for i, size := range p.sizes {
		if c == size {
			p.pools[i].Put(b)
			return
		}
	}
}

// receivedPool holds the buffers the codec copies received batches into
// (see rawBatch). The server gives one back only when nothing can refer
// to its bytes any more: a batch it scanned without decoding, once the
// sink's Write returned (a sink that keeps Raw past Write copies it, see
// event.Batch). A decoded batch's strings are views of its bytes, which
// may live on anywhere: its buffer is left to the garbage collector. So
// when delivery is behind and batches are only scanned, a batch costs no
// allocation and no clearing of its bytes.
var receivedPool rawPool

// Classes of rawPool: buffers of 2^(k-1)+1 to 2^k bytes are class k, from
// rawMinExp (up to 64 KiB) to rawMaxExp (16 MiB). Smaller and larger ones
// are not kept.
const rawMinExp, rawMaxExp = 16, 24

// rawPool is a pool of byte buffers by class of size. A buffer is
// allocated at the size asked (a batch decoded keeps its buffer: no room
// is wasted on it), and one given back serves the next request of its
// class that it is large enough for (an agent's batches are of similar
// sizes).
type rawPool struct {
	pools [rawMaxExp - rawMinExp + 1]sync.Pool
}

// rawClass returns the class of a buffer of n bytes, or -1.
func rawClass(n int) int {
	e := bits.Len(uint(max(n, 1) - 1)) // 2^(e-1) < n <= 2^e
	if e < rawMinExp || e > rawMaxExp {
		return -1
	}
	return e - rawMinExp
}

// get returns a buffer of length n, its content undefined.
func (p *rawPool) get(n int) []byte {
	if c := rawClass(n); c >= 0 {
		if b, ok := p.pools[c].Get().(*[]byte); ok && cap(*b) >= n {
			return (*b)[:n]
		}
	}
	return make([]byte, n)
}

// put gives back a buffer; nothing may use it afterwards.
func (p *rawPool) put(b []byte) {
	if c := rawClass(cap(b)); c >= 0 {
		b = b[:0]
		p.pools[c].Put(&b)
	}
}
