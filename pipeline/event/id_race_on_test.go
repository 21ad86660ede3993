//go:build race

package event

// idRaceEnabled: the race detector is on (allocation counts differ).
const idRaceEnabled = true
