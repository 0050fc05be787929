package fleet

import (
	"context"
	"log/slog"
	"time"

	"github.com/bargehq/barge/pkg/meta"
)

// checkEvery is how often Heartbeat looks at the fleet: well inside
// HeartbeatInterval, so an idle agent heartbeats on time, and a small part
// of TTL, so a silent agent is expired soon after its TTL runs out.
const checkEvery = HeartbeatInterval / 12

// Heartbeat keeps this agent in the fleet until ctx ends: it announces
// what hb says (its address and zone) once it has been silent for
// HeartbeatInterval, and at once when the log says it is not a member (it
// was expired while paused or cut off, and is fenced until it joins
// again). It also records the members silent for TTL as gone (Format4),
// so that every agent moves their partitions and groups at the same slot.
func Heartbeat(ctx context.Context, log *meta.Log, hb meta.AgentHeartbeat, logger *slog.Logger) {
	t := time.NewTicker(checkEvery)
	defer t.Stop()
	self := log.WriterID()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var member bool
		var expire []meta.Op
		log.View(func(st *meta.State) {
			member = st.IsMember(self)
			if member && st.Membership() {
				expire = expiries(st, self, time.Now().UnixMilli())
			}
		})
		if !member || time.Since(log.LastOwnAppend()) >= HeartbeatInterval {
			if !member {
				logger.Warn("this agent is not a member of the fleet (it was silent for longer than the TTL): joining again", "ttl", TTL)
			}
			if _, err := log.Append(ctx, hb); err != nil && ctx.Err() == nil {
				logger.Warn("agent heartbeat", "err", err)
			}
		}
		if len(expire) > 0 {
			if _, err := log.Append(ctx, expire...); err != nil && ctx.Err() == nil {
				logger.Warn("expiring silent agents", "err", err)
			}
		}
	}
}

// expiries returns the ExpireAgent ops agent self should write at nowMs:
// for each member silent for TTL, if self is the member with the lowest
// node id among those still heard from, or anyone once the silence has
// lasted a heartbeat interval more (the first choice may be slow too).
// One writer, not every agent, so that a death costs one entry.
func expiries(st *meta.State, self string, nowMs int64) []meta.Op {
	ttl := TTL.Milliseconds()
	var first string // the live member with the lowest node id
	var silent []meta.Agent
	for _, a := range st.Members() { // by node id
		switch {
		case nowMs-a.LastMs <= ttl:
			if first == "" {
				first = a.ID
			}
		case a.ID != self:
			silent = append(silent, a)
		}
	}
	var ops []meta.Op
	for _, a := range silent {
		if first == self || nowMs-a.LastMs > ttl+HeartbeatInterval.Milliseconds() {
			ops = append(ops, meta.ExpireAgent{ID: a.ID, LastMs: a.LastMs})
		}
	}
	return ops
}
