package elasticsearch

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff returns how long to wait before retry number attempt (0 for the
// first retry): a uniformly random duration in [initial, ceiling] where the
// ceiling doubles per attempt, min(max, initial·2^(attempt+1)). This is
// "full jitter" above a floor: senders rejected together spread out, and no
// wait is shorter than initial or longer than max.
func backoff(attempt int, initial, max time.Duration) time.Duration {
	if initial <= 0 {
		return 0
	}
	if max < initial {
		max = initial
	}
	ceiling := initial
	for i := 0; i <= attempt && ceiling < max; i++ {
		ceiling *= 2
	}
	if ceiling > max || ceiling <= 0 { // <= 0: overflow
		ceiling = max
	}
	return initial + rand.N(ceiling-initial+1)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
