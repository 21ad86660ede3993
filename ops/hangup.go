package ops

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Hangups returns a channel that receives SIGHUP from now on. Call it before
// anything slow at start, so that a SIGHUP while the process starts waits
// for the reload loop instead of killing the process (SIGHUP's default
// action).
func Hangups() chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c
}

// OnHangup calls reload for every signal from hup until ctx ends.
func OnHangup(ctx context.Context, hup <-chan os.Signal, reload func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload()
		}
	}
}

// Reloadable is material read from files that can be read again on demand
// (TLS certificates and CAs, token files), as SIGHUP asks.
type Reloadable interface{ Reload() }
