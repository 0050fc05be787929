package jobs

import (
	"context"
	"time"
)

// Every calls fn every interval until ctx ends: the shape of every
// background loop in the agent.
func Every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fn(ctx)
	}
}
