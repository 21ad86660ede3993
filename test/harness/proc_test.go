package harness

import "testing"

// TestFreePortNeverRepeats: the ports FreePort hands out in one process
// are all different, although each is picked at random from about 20,000
// (2,000 picks would repeat one almost surely otherwise).
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		addr := FreePort(t)
		if seen[addr] {
			t.Fatalf("FreePort handed out %s twice", addr)
		}
		seen[addr] = true
	}
}
