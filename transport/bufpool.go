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

// Sizes of the classes of rawPool: 2^rawMinExp (64 KiB) to 2^rawMaxExp
// (16 MiB). Smaller buffers and larger ones are allocated each time.
const rawMinExp, rawMaxExp = 16, 24

// rawPool is a pool of byte buffers in classes of 2^k bytes.
type rawPool struct {
	pools [rawMaxExp - rawMinExp + 1]sync.Pool
}

// get returns a buffer of length n, its content undefined.
func (p *rawPool) get(n int) []byte {
	e := bits.Len(uint(max(n, 1) - 1))
	if e < rawMinExp || e > rawMaxExp {
		return make([]byte, n)
	}
	if b, ok := p.pools[e-rawMinExp].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<e)
}

// put gives back a buffer that get returned; nothing may use it
// afterwards. A buffer not of a class (not from get) is left alone.
func (p *rawPool) put(b []byte) {
	c := cap(b)
	if c&(c-1) != 0 || c < 1<<rawMinExp || c > 1<<rawMaxExp {
		return
	}
	b = b[:0]
	p.pools[bits.Len(uint(c))-1-rawMinExp].Put(&b)
}
