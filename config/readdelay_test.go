package config

import (
	"strings"
	"testing"
	"time"
)

// inputs[].read_delay: 0 (read at once) up to MaxReadDelay, the default
// when absent; anything else is refused naming the field.
func TestReadDelay(t *testing.T) {
	cases := []struct {
		name, value string // value "" leaves the key out
		want        time.Duration
		err         string
	}{
		{"default", "", time.Duration(DefaultReadDelay), ""},
		{"off", "0s", 0, ""},
		{"set", "50ms", 50 * time.Millisecond, ""},
		{"at the bound", "1s", time.Second, ""},
		{"too long", "2s", 0, "1:28: inputs[0].read_delay: must be between 0s and 1s, got 2s"},
		{"negative", "-1ms", 0, "1:28: inputs[0].read_delay: must be between 0s and 1s, got -1ms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := "inputs: [{type: container"
			if c.value != "" {
				in += ", read_delay: " + c.value
			}
			a, err := ParseAgent("a.yaml", []byte(in+"}]\n"))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := time.Duration(a.Inputs[0].ReadDelay); got != c.want {
				t.Errorf("read_delay %s, want %s", got, c.want)
			}
		})
	}
	if _, err := ParseAgent("a.yaml", []byte("inputs: [{type: syslog, listen: 'udp://127.0.0.1:5514', read_delay: 1s}]\n")); err == nil ||
		!strings.Contains(err.Error(), "inputs[0].read_delay: not for type syslog") {
		t.Errorf("syslog input with read_delay: %v", err)
	}
}
