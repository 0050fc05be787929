package groups

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

type syncAnswer struct {
	code       int16
	assignment []byte
	wait       *meta.Pending // the generation's log append to wait for first
}

// Syncing is a SyncGroup the coordinator has taken: its change to the
// group is made, and its answer may wait for the leader's assignment and
// for the generation's log append.
type Syncing struct {
	c   *Coordinator
	req *kmsg.SyncGroupRequest
	g   *group          // nil if the group is unknown
	ans syncAnswer      // the answer, if given at once
	ch  chan syncAnswer // else where it comes
}

// Sync handles a SyncGroup.
func (c *Coordinator) Sync(req *kmsg.SyncGroupRequest) Syncing {
	ans, ch, g := c.sync(req)
	return Syncing{c: c, req: req, g: g, ans: ans, ch: ch}
}

// Answer waits for the member's assignment, then for the generation it
// belongs to to be in the log, so that offsets committed in it can be
// checked there. A generation the log did not take is answered
// COORDINATOR_NOT_AVAILABLE and the group rebalances; if ctx ends first
// the answer is REBALANCE_IN_PROGRESS (nobody reads it).
func (s Syncing) Answer(ctx context.Context) *kmsg.SyncGroupResponse {
	resp := s.req.ResponseKind().(*kmsg.SyncGroupResponse)
	ans := s.ans
	if s.ch != nil {
		select {
		case ans = <-s.ch:
		case <-ctx.Done():
			resp.ErrorCode = kerr.RebalanceInProgress.Code
			return resp
		}
	}
	if ans.wait != nil {
		res, err := ans.wait.Wait(ctx)
		if err == nil && res[0].Err != nil {
			err = res[0].Err
		}
		if err != nil {
			s.c.logger.Warn("logging group generation", "group", s.req.Group, "generation", s.req.Generation, "err", err)
			s.c.generationFailed(s.g, s.req.Generation)
			ans = syncAnswer{code: kerr.CoordinatorNotAvailable.Code}
		}
	}
	resp.ErrorCode = ans.code
	if ans.code == 0 {
		resp.MemberAssignment = ans.assignment
		s.c.mu.Lock()
		resp.ProtocolType, resp.Protocol = kmsg.StringPtr(s.g.protocolType), kmsg.StringPtr(s.g.protocol)
		s.c.mu.Unlock()
	}
	return resp
}

// sync returns either an answer or a channel the answer will come on, and
// the group.
func (c *Coordinator) sync(req *kmsg.SyncGroupRequest) (syncAnswer, chan syncAnswer, *group) {
	if req.Group == "" {
		return syncAnswer{code: kerr.InvalidGroupID.Code}, nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[req.Group]
	if g == nil {
		return syncAnswer{code: kerr.UnknownMemberID.Code}, nil, nil
	}
	if code := g.checkInstance(req.InstanceID, req.MemberID); code != 0 {
		return syncAnswer{code: code}, nil, g
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		return syncAnswer{code: kerr.UnknownMemberID.Code}, nil, g
	case req.Generation != g.generation:
		return syncAnswer{code: kerr.IllegalGeneration.Code}, nil, g
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType, req.Protocol != nil && *req.Protocol != g.protocol:
		return syncAnswer{code: kerr.InconsistentGroupProtocol.Code}, nil, g
	}
	switch g.state {
	case groupPreparingRebalance:
		return syncAnswer{code: kerr.RebalanceInProgress.Code}, nil, g
	case groupStable:
		g.heartbeat(m)
		return syncAnswer{assignment: m.assignment}, nil, g
	case groupCompletingRebalance:
	default:
		return syncAnswer{code: kerr.UnknownMemberID.Code}, nil, g
	}
	if m.sync != nil {
		m.sync <- syncAnswer{code: kerr.RebalanceInProgress.Code}
	}
	m.sync = make(chan syncAnswer, 1)
	ch := m.sync
	delete(g.pendingSync, m.id)
	g.heartbeat(m)
	if m.id != g.leader {
		return syncAnswer{}, ch, g
	}
	for _, o := range g.members {
		o.assignment = nil
	}
	for _, a := range req.GroupAssignment {
		if o := g.members[a.MemberID]; o != nil {
			o.assignment = a.MemberAssignment
		}
	}
	wait, err := g.logGeneration()
	if err != nil {
		// As Kafka does when storing a generation fails: the members
		// waiting are told, and the group rebalances.
		c.logger.Warn("logging group generation", "group", g.name, "generation", g.generation, "err", err)
		for _, o := range g.members {
			if o.sync != nil {
				o.sync <- syncAnswer{code: kerr.CoordinatorNotAvailable.Code}
				o.sync = nil
			}
		}
		g.prepareRebalance()
		return syncAnswer{}, ch, g
	}
	g.state = groupStable
	g.stopTimer()
	g.pendingSync = nil
	for _, o := range g.members {
		if o.sync != nil {
			o.sync <- syncAnswer{assignment: o.assignment, wait: wait}
			o.sync = nil
		}
	}
	return syncAnswer{}, ch, g
}

// generationFailed handles a generation the log did not take: the group
// rebalances, from past the logged generation if another agent got ahead.
func (c *Coordinator) generationFailed(g *group, gen int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log.View(func(st *meta.State) {
		if lg, ok := st.Group(g.name); ok && lg.Generation > g.generation {
			g.generation = lg.Generation
		}
	})
	if g.alive() && g.state == groupStable && g.generation == gen {
		g.prepareRebalance()
	}
}
