package fleet

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/bargehq/barge/pkg/meta"
)

// checkEvery is how often Heartbeat looks at the fleet: well inside
// HeartbeatInterval, so an idle agent heartbeats on time, and a small part
// of TTL, so a silent agent is expired soon after its TTL runs out.
const checkEvery = HeartbeatInterval / 12

// A member silent for suspectAfter has missed a heartbeat (an idle one
// writes every HeartbeatInterval, a busy one far more often), so it is
// probed: a TCP connection to its peer address that is refused means its
// process is gone while its host is up (kill -9, a crash), and it is
// expired then instead of after the TTL. Anything else (a timeout, an
// answer) waits for the TTL: a refusal is the only sure sign. Check keeps
// suspectAfter inside the TTL.
const (
	suspectSlack = time.Second
	suspectAfter = HeartbeatInterval + suspectSlack
	probeTimeout = 500 * time.Millisecond
)

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
		var suspects []meta.Agent
		log.View(func(st *meta.State) {
			member = st.IsMember(self)
			if member && st.Membership() {
				expire, suspects = expiries(st, self, time.Now().UnixMilli())
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
		for _, a := range refusing(suspects) {
			logger.Info("expiring an agent that missed a heartbeat and refuses connections", "agent", a.ID, "peer", a.Key())
			expire = append(expire, meta.ExpireAgent{ID: a.ID, LastMs: a.LastMs})
		}
		if len(expire) > 0 {
			if _, err := log.Append(ctx, expire...); err != nil && ctx.Err() == nil {
				logger.Warn("expiring silent agents", "err", err)
			}
		}
	}
}

// expiries returns the ExpireAgent ops agent self should write at nowMs,
// and the members it should probe (suspectAfter). Self expires each member
// silent for TTL if it is the member with the lowest node id among those
// still heard from, or anyway once the silence has lasted a heartbeat
// interval more (the first choice may be slow too), and probes the members
// silent for suspectAfter if it is that first member. One writer, not
// every agent, so that a death costs one entry and one probe at a time.
func expiries(st *meta.State, self string, nowMs int64) (ops []meta.Op, suspects []meta.Agent) {
	ttl, suspect := TTL.Milliseconds(), suspectAfter.Milliseconds()
	var first string // the heard-from member with the lowest node id
	var silent []meta.Agent
	for _, a := range st.Members() { // by node id
		switch {
		case nowMs-a.LastMs <= suspect:
			if first == "" {
				first = a.ID
			}
		case a.ID != self:
			silent = append(silent, a)
		}
	}
	for _, a := range silent {
		switch {
		case nowMs-a.LastMs > ttl+HeartbeatInterval.Milliseconds(), nowMs-a.LastMs > ttl && first == self:
			ops = append(ops, meta.ExpireAgent{ID: a.ID, LastMs: a.LastMs})
		case nowMs-a.LastMs <= ttl && first == self:
			suspects = append(suspects, a)
		}
	}
	return ops, suspects
}

// refusing probes the agents at once and returns those whose peer address
// refused the connection.
func refusing(agents []meta.Agent) []meta.Agent {
	refused := make([]bool, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() { refused[i] = refuses(a.Key()) })
	}
	wg.Wait()
	var out []meta.Agent
	for i, a := range agents {
		if refused[i] {
			out = append(out, a)
		}
	}
	return out
}

// refuses reports whether a TCP connection to addr is refused: nothing
// listens there, though the host answers.
func refuses(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
