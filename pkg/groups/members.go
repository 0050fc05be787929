package groups

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat handles a Heartbeat: it restarts the member's session timer
// and returns the answer's error code (REBALANCE_IN_PROGRESS: rejoin).
func (c *Coordinator) Heartbeat(req *kmsg.HeartbeatRequest) int16 {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[req.Group]
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	if code := g.checkInstance(req.InstanceID, req.MemberID); code != 0 {
		return code
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case req.Generation != g.generation:
		return kerr.IllegalGeneration.Code
	}
	switch g.state {
	case groupPreparingRebalance:
		g.heartbeat(m)
		return kerr.RebalanceInProgress.Code
	case groupCompletingRebalance, groupStable:
		g.heartbeat(m)
		return 0
	default:
		return kerr.UnknownMemberID.Code
	}
}

// Leave removes members from group, each by member id or group.instance.id
// (LeaveGroup v3+ batches them), and rebalances the rest. It returns the
// request's error code and one per member.
func (c *Coordinator) Leave(group string, members []kmsg.LeaveGroupRequestMember) (int16, []int16) {
	codes := make([]int16, len(members))
	if group == "" {
		return kerr.InvalidGroupID.Code, codes
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[group]
	if g == nil {
		return kerr.UnknownMemberID.Code, codes
	}
	changed := false
	for i, lm := range members {
		id := lm.MemberID
		if lm.InstanceID != nil {
			known, ok := g.static[*lm.InstanceID]
			switch {
			case !ok:
				codes[i] = kerr.UnknownMemberID.Code
				continue
			case id != "" && id != known:
				codes[i] = kerr.FencedInstanceID.Code
				continue
			}
			id = known
		}
		if g.stopExpecting(id) {
			changed = true
			continue
		}
		m := g.members[id]
		if m == nil {
			codes[i] = kerr.UnknownMemberID.Code
			continue
		}
		g.removeMember(m, kerr.UnknownMemberID.Code)
		changed = true
	}
	if changed {
		g.afterRemoval()
	}
	c.release(g)
	return 0, codes
}
