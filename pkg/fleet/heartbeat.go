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

// ErrReplaced ends Heartbeat when the log no longer has this agent at all
// (Format4): another process registered at its peer address, or it was
// silent long enough to be forgotten. It must not join again, which would
// push the newer process out in turn; the agent stops instead.
var ErrReplaced = errors.New("fleet: another agent process registered at this agent's peer address, or this one was forgotten after a long silence")

// Heartbeat keeps this agent in the fleet until ctx ends: it announces
// what hb says (its address and zone) once it has been silent for
// HeartbeatInterval, and at once when the log says it was expired (while
// paused or cut off: it is fenced until it joins again). It also records
// the members silent for TTL as gone (Format4), so that every agent moves
// their partitions and groups at the same slot. Silence is timed on this
// agent's clock, from when it saw a member's newest entry, so a member
// whose clock is behind is never taken for silent. It returns ErrReplaced
// if the log has dropped this agent, nil when ctx ends.
func Heartbeat(ctx context.Context, log *meta.Log, hb meta.AgentHeartbeat, logger *slog.Logger) error {
	t := time.NewTicker(checkEvery)
	defer t.Stop()
	self := log.WriterID()
	var heard hearing
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var member, gone bool
		var expire []meta.Op
		var suspects []meta.Agent
		now := time.Now()
		log.View(func(st *meta.State) {
			member = st.IsMember(self)
			if !st.Membership() {
				return
			}
			a, ok := st.AgentByID(self)
			gone = !ok || a.Left
			members := st.Members()
			heard.saw(members, now)
			if member {
				expire, suspects = expiries(members, self, heard.silence(now))
			}
		})
		if gone {
			return ErrReplaced
		}
		if !member || time.Since(log.LastOwnAppend()) >= HeartbeatInterval {
			if !member {
				logger.Warn("this agent was recorded gone after a silence longer than the TTL: joining again", "ttl", TTL)
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

// hearing remembers when this agent last saw each member's newest entry
// change, on its own clock.
type hearing map[string]heardAt

type heardAt struct {
	lastMs int64 // the member's newest entry time, as the log has it
	at     time.Time
}

// saw notes the members as the log has them at now.
func (h *hearing) saw(members []meta.Agent, now time.Time) {
	if *h == nil {
		*h = hearing{}
	}
	seen := make(map[string]bool, len(members))
	for _, a := range members {
		seen[a.ID] = true
		if prev, ok := (*h)[a.ID]; !ok || prev.lastMs != a.LastMs {
			(*h)[a.ID] = heardAt{lastMs: a.LastMs, at: now}
		}
	}
	for id := range *h {
		if !seen[id] {
			delete(*h, id)
		}
	}
}

// silence returns how long each member has been silent at now.
func (h hearing) silence(now time.Time) func(meta.Agent) time.Duration {
	return func(a meta.Agent) time.Duration { return now.Sub(h[a.ID].at) }
}

// expiries returns the ExpireAgent ops agent self should write, and the
// members it should probe, given how long each member has been silent.
// Self expires each member silent for TTL if it is the member with the
// lowest node id among those heard from within suspectAfter, or anyway once
// the silence has lasted a heartbeat interval more (the first choice may
// be slow too), and probes the members silent for suspectAfter if it is
// that first member. One writer, not every agent, so that a death costs
// one entry and one probe at a time. members are by node id.
func expiries(members []meta.Agent, self string, silence func(meta.Agent) time.Duration) (ops []meta.Op, suspects []meta.Agent) {
	var first string // the heard-from member with the lowest node id
	var silent []meta.Agent
	for _, a := range members {
		switch {
		case silence(a) <= suspectAfter:
			if first == "" {
				first = a.ID
			}
		case a.ID != self:
			silent = append(silent, a)
		}
	}
	for _, a := range silent {
		switch d := silence(a); {
		case d > TTL+HeartbeatInterval, d > TTL && first == self:
			ops = append(ops, meta.ExpireAgent{ID: a.ID, LastMs: a.LastMs})
		case d <= TTL && first == self:
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
