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

// TestReceivedPool: buffers come in classes of powers of two from 64 KiB
// to 16 MiB, and one given back is handed out again; other sizes are
// allocated each time and not kept.
func TestReceivedPool(t *testing.T) {
	var p rawPool
	for _, tc := range []struct{ n, cap int }{
		{100, 100}, {32 << 10, 32 << 10}, {32<<10 + 1, 64 << 10}, {64 << 10, 64 << 10}, {300 << 10, 512 << 10}, {16 << 20, 16 << 20}, {16<<20 + 1, 16<<20 + 1},
	} {
		b := p.get(tc.n)
		if len(b) != tc.n || cap(b) != tc.cap {
			t.Errorf("get(%d): len %d cap %d, want cap %d", tc.n, len(b), cap(b), tc.cap)
		}
	}
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	b := p.get(300 << 10)
	b[0] = 42
	p.put(b)
	if c := p.get(400 << 10); &c[0] != &b[0] {
		t.Error("a buffer given back is not handed out again for the same class")
	}
}
