package alert

import "testing"

func TestFingerprint(t *testing.T) {
	a := map[string]string{"alertname": "HighCPU", "host.name": "node-1"}
	b := map[string]string{"host.name": "node-1", "alertname": "HighCPU"}
	c := map[string]string{"alertname": "HighCPU", "host.name": "node-2"}
	if Fingerprint(a) != Fingerprint(b) {
		t.Error("fingerprint depends on map order")
	}
	if Fingerprint(a) == Fingerprint(c) {
		t.Error("different groups share a fingerprint")
	}
	if len(Fingerprint(a)) != 16 {
		t.Errorf("fingerprint %q: want 16 hex digits", Fingerprint(a))
	}
}
