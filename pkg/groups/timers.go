package groups

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Every timer's callback takes the mutex and checks, by a sequence number
// bumped whenever the timer is replaced or stopped, that it still belongs
// to the current state: a timer that fired while its replacement was
// being set does nothing.

// setTimer replaces the group's rebalance/initial-delay/sync timer.
func (g *group) setTimer(d time.Duration, fn func()) {
	if g.timer != nil {
		g.timer.Stop()
	}
	g.timerSeq++
	seq := g.timerSeq
	g.timer = time.AfterFunc(d, func() {
		g.c.mu.Lock()
		defer g.c.mu.Unlock()
		if g.alive() && g.timerSeq == seq {
			fn()
		}
	})
}

func (g *group) stopTimer() {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.timerSeq++
}

// heartbeat restarts a member's session timer.
func (g *group) heartbeat(m *member) {
	if m.session != nil {
		m.session.Stop()
	}
	m.sessionSeq++
	seq := m.sessionSeq
	m.session = time.AfterFunc(m.sessionTimeout, func() {
		g.c.mu.Lock()
		defer g.c.mu.Unlock()
		if !g.alive() || g.members[m.id] != m || m.sessionSeq != seq {
			return
		}
		if m.join != nil || m.sync != nil { // waiting on us is alive
			g.heartbeat(m)
			return
		}
		g.c.logger.Info("group member session expired", "group", g.name, "member", m.id)
		g.removeMember(m, kerr.UnknownMemberID.Code)
		g.afterRemoval()
	})
}

// expectMember holds a member id handed out with MEMBER_ID_REQUIRED for
// timeout (the session timeout its join asked for): while it is held, a
// join phase waits for it.
func (g *group) expectMember(id string, timeout time.Duration) {
	g.pending[id] = time.AfterFunc(timeout, func() {
		g.c.mu.Lock()
		defer g.c.mu.Unlock()
		if g.alive() && g.pending[id] != nil {
			delete(g.pending, id)
			g.tryCompleteJoin()
			g.c.release(g)
		}
	})
}

// stopExpecting drops a held member id, reporting whether it was held.
func (g *group) stopExpecting(id string) bool {
	t := g.pending[id]
	if t == nil {
		return false
	}
	t.Stop()
	delete(g.pending, id)
	return true
}
