//go:build race

package transport

// raceEnabled: the race detector is on (goroutine stacks are larger).
const raceEnabled = true
