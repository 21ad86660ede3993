package transport

import "testing"

// TestDirtyPool: buffers come back with the length asked for, from the
// smallest size that fits; a returned buffer is reused without clearing
// (the point of the pool); sizes past the largest are plain allocations.
func TestDirtyPool(t *testing.T) {
	p := newDirtyPool(8, 12, 14)
	cases := []struct{ n, wantCap int }{
		{1, 256}, {256, 256}, {257, 4096}, {5000, 16384}, {16385, 16385},
	}
	for _, c := range cases {
		b := p.Get(c.n)
		if len(*b) != c.n || cap(*b) != c.wantCap {
			t.Errorf("Get(%d): len %d cap %d, want cap %d", c.n, len(*b), cap(*b), c.wantCap)
		}
		p.Put(b)
	}
	// A buffer handed back is reused as is, for any length of its size.
	// (sync.Pool may drop it: try a few times.)
	for range 100 {
		b := p.Get(4000)
		(*b)[0] = 42
		p.Put(b)
		c := p.Get(300)
		if c == b {
			if (*c)[0] != 42 || len(*c) != 300 {
				t.Fatalf("reused buffer: len %d, first byte %d; want 300 and 42 (not cleared)", len(*c), (*c)[0])
			}
			return
		}
		p.Put(c)
	}
	t.Log("sync.Pool never handed a buffer back (race detector): reuse not checked")
}

// TestReceivedPool: a buffer is allocated at the size asked; one given
// back serves the next request of its class (sizes in (2^(k-1), 2^k], 64
// KiB to 16 MiB) that it is large enough for.
func TestReceivedPool(t *testing.T) {
	var p rawPool
	if b := p.get(300 << 10); len(b) != 300<<10 || cap(b) != 300<<10 {
		t.Errorf("get(300 KiB): len %d cap %d", len(b), cap(b))
	}
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	b := p.get(300 << 10)
	p.put(b)
	if c := p.get(290 << 10); &c[0] != &b[0] || len(c) != 290<<10 {
		t.Error("a buffer given back is not handed out again for a request of its class")
	}
	p.put(b)
	if c := p.get(310 << 10); &c[0] == &b[0] || len(c) != 310<<10 {
		t.Error("a buffer given back is handed out for a request larger than it")
	}
	small := p.get(1 << 10)
	p.put(small)
	if c := p.get(1 << 10); &c[0] == &small[0] {
		t.Error("a buffer below the classes is kept")
	}
}
