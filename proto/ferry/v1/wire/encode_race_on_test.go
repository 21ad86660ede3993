//go:build race

package wire

// raceEnabled: the race detector is on (sync.Pool drops items at random:
// allocation counts mean nothing).
const raceEnabled = true
