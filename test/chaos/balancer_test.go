//go:build chaos

package chaos

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// balancer is a TCP round-robin balancer on loopback, standing in for a
// Kubernetes headless Service in front of aggregator replicas: each new
// connection goes to the next backend that accepts it, and lives exactly as
// long as its backend connection (a killed replica drops the agent's
// connection at once, as it would without the balancer).
type balancer struct {
	ln       net.Listener
	backends []string

	mu     sync.Mutex
	next   int
	conns  []int // connections made per backend
	active map[net.Conn]bool
	wg     sync.WaitGroup
}

func newBalancer(t *testing.T, backends ...string) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln, backends: backends, conns: make([]int, len(backends)), active: map[net.Conn]bool{}}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(b.close)
	return b
}

func (b *balancer) addr() string { return b.ln.Addr().String() }

// counts returns the connections made to each backend so far.
func (b *balancer) counts() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.conns...)
}

func (b *balancer) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.handle(c)
		}()
	}
}

// handle connects c to the next backend that answers and copies both ways
// until either side closes; then it closes both.
func (b *balancer) handle(c net.Conn) {
	var up net.Conn
	for range b.backends {
		b.mu.Lock()
		i := b.next
		b.next = (b.next + 1) % len(b.backends)
		b.mu.Unlock()
		conn, err := net.DialTimeout("tcp", b.backends[i], time.Second)
		if err != nil {
			continue // down: try the next one
		}
		up = conn
		b.mu.Lock()
		b.conns[i]++
		b.mu.Unlock()
		break
	}
	if up == nil || !b.track(c, up) {
		c.Close()
		if up != nil {
			up.Close()
		}
		return
	}
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			c.Close()
			up.Close()
			b.untrack(c, up)
		})
	}
	go func() {
		_, _ = io.Copy(up, c)
		closeBoth()
	}()
	_, _ = io.Copy(c, up)
	closeBoth()
}

// track registers the pair for close; false once the balancer is closed.
func (b *balancer) track(conns ...net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.active == nil {
		return false
	}
	for _, c := range conns {
		b.active[c] = true
	}
	return true
}

func (b *balancer) untrack(conns ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range conns {
		delete(b.active, c)
	}
}

func (b *balancer) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.active {
		c.Close()
	}
	b.active = nil
	b.mu.Unlock()
	b.wg.Wait()
}
