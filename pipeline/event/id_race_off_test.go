//go:build !race

package event

const idRaceEnabled = false
