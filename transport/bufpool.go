package transport

import (
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
