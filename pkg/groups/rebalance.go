package groups

import (
	"context"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// maxRebalanceTimeout is the longest rebalance timeout of the members.
func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

func (g *group) memberIDs() []string {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// prepareRebalance moves the group to PreparingRebalance. Members waiting
// in sync are told REBALANCE_IN_PROGRESS and rejoin.
func (g *group) prepareRebalance() {
	if g.state == groupCompletingRebalance {
		for _, m := range g.members {
			m.assignment = nil
			if m.sync != nil {
				m.sync <- syncAnswer{code: kerr.RebalanceInProgress.Code}
				m.sync = nil
			}
		}
	}
	g.pendingSync = nil
	wasEmpty := g.state == groupEmpty
	g.state = groupPreparingRebalance
	if wasEmpty && g.c.initialDelay > 0 {
		// group.initial.rebalance.delay.ms: let more members arrive
		// before the first generation, up to the rebalance timeout.
		total := g.maxRebalanceTimeout()
		delay := min(g.c.initialDelay, total)
		g.initialDelay, g.newMemberAdded = true, false
		g.setTimer(delay, func() { g.initialDelayDone(total - delay) })
		return
	}
	g.initialDelay = false
	g.setTimer(g.maxRebalanceTimeout(), g.completeJoin)
	g.tryCompleteJoin()
}

// initialDelayDone ends one initial delay: if members joined during it,
// another follows, within what is left of the rebalance timeout.
func (g *group) initialDelayDone(remaining time.Duration) {
	if g.newMemberAdded && remaining > 0 {
		delay := min(g.c.initialDelay, remaining)
		g.newMemberAdded = false
		g.setTimer(delay, func() { g.initialDelayDone(remaining - delay) })
		return
	}
	g.initialDelay = false
	g.completeJoin()
}

func (g *group) rebalanceOrComplete() {
	if g.state == groupPreparingRebalance {
		g.tryCompleteJoin()
	} else {
		g.prepareRebalance()
	}
}

// tryCompleteJoin completes the join phase once every member has rejoined
// and no member id handed out is still expected.
func (g *group) tryCompleteJoin() {
	if g.state != groupPreparingRebalance || g.initialDelay || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.join == nil {
			return
		}
	}
	g.completeJoin()
}

// completeJoin ends the join phase: members that did not rejoin are
// removed, the generation advances, every joined member gets its answer
// (the leader with the member list) and the group awaits the leader's
// sync, until the sync deadline.
func (g *group) completeJoin() {
	if g.state != groupPreparingRebalance {
		return
	}
	g.stopTimer()
	g.initialDelay = false
	for _, m := range g.members {
		if m.join == nil {
			g.removeMember(m, kerr.UnknownMemberID.Code)
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = groupEmpty, "", ""
		if _, err := g.logGeneration(); err != nil {
			// Nobody was given this generation: the group stays at the
			// logged one, and the next rebalance takes this number.
			g.generation--
			g.c.logger.Warn("logging empty group generation", "group", g.name, "err", err)
		}
		g.c.release(g)
		return
	}
	g.c.logger.Info("group rebalanced", "group", g.name, "generation", g.generation, "members", len(g.members))
	g.state = groupCompletingRebalance
	g.protocol = g.selectProtocol()
	if g.members[g.leader] == nil {
		g.leader = g.memberIDs()[0]
	}
	g.pendingSync = map[string]bool{}
	for _, m := range g.members {
		m.join <- g.joinResponse(m)
		m.join = nil
		g.pendingSync[m.id] = true
		g.heartbeat(m)
	}
	gen := g.generation
	g.setTimer(g.maxRebalanceTimeout(), func() { g.syncExpired(gen) })
}

// syncExpired is the sync deadline of generation gen: the members that
// have not sent their SyncGroup are removed and the rest rebalance.
func (g *group) syncExpired(gen int32) {
	if g.generation != gen || g.state != groupCompletingRebalance {
		return
	}
	for id := range g.pendingSync {
		if m := g.members[id]; m != nil {
			g.removeMember(m, kerr.UnknownMemberID.Code)
		}
	}
	g.prepareRebalance()
}

// logGeneration submits the current generation to the metadata log, or
// fails with meta.ErrBusy if the log's queue is full.
func (g *group) logGeneration() (*meta.Pending, error) {
	op := meta.GroupGeneration{Group: g.name, Generation: g.generation, ProtocolType: g.protocolType,
		Protocol: g.protocol, Leader: g.leader, Members: g.memberIDs()}
	if len(op.Members) == 0 {
		op.Members = nil
	}
	p, err := g.c.log.TrySubmit(op)
	if err != nil {
		return nil, err
	}
	g.logging = p
	// The log finishes every op it takes, applied or failed (or failed
	// when it stops), so this ends; at most one per generation in the
	// log's queue.
	go func() {
		p.Wait(context.Background())
		g.c.mu.Lock()
		defer g.c.mu.Unlock()
		if g.logging == p {
			g.logging = nil
			g.c.release(g)
		}
	}()
	return p, nil
}

// removeMember drops a member, answering whatever it waits for with code.
// The caller decides what the group does next (afterRemoval).
func (g *group) removeMember(m *member, code int16) {
	if m.join != nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Version, resp.ErrorCode, resp.Generation, resp.MemberID = m.joinVersion, code, -1, m.id
		m.join <- resp
		m.join = nil
	}
	if m.sync != nil {
		m.sync <- syncAnswer{code: code}
		m.sync = nil
	}
	if m.session != nil {
		m.session.Stop()
	}
	m.sessionSeq++
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
	}
}

// afterRemoval rebalances a group that lost a member.
func (g *group) afterRemoval() {
	switch g.state {
	case groupStable, groupCompletingRebalance:
		g.prepareRebalance()
	case groupPreparingRebalance:
		g.tryCompleteJoin()
	}
}
