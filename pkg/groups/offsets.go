package groups

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// Commit validates an offset commit against the group in memory, as
// Kafka's validateOffsetCommit, and submits op to the log under the lock
// so that it precedes any later generation of the group in the log; the
// caller waits for the returned append. op's generation is set from the
// group. A full queue answers COORDINATOR_NOT_AVAILABLE.
func (c *Coordinator) Commit(req *kmsg.OffsetCommitRequest, op meta.CommitOffsets) (int16, *meta.Pending) {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[req.Group]
	if g == nil {
		if req.Generation >= 0 {
			return kerr.IllegalGeneration.Code, nil
		}
		g = c.newGroup(req.Group)
	}
	defer c.release(g) // commits from outside group management leave it idle
	switch {
	case g.state == groupDead:
		return kerr.CoordinatorNotAvailable.Code, nil
	case req.Generation < 0 && g.state == groupEmpty:
		op.Generation = -1
	case req.Generation >= 0 || req.MemberID != "" || req.InstanceID != nil:
		if code := g.checkInstance(req.InstanceID, req.MemberID); code != 0 {
			return code, nil
		}
		m := g.members[req.MemberID]
		if m == nil {
			return kerr.UnknownMemberID.Code, nil
		}
		if req.Generation != g.generation {
			return kerr.IllegalGeneration.Code, nil
		}
		if g.state == groupCompletingRebalance {
			return kerr.RebalanceInProgress.Code, nil
		}
		g.heartbeat(m)
		// In PreparingRebalance this is the generation being left, the
		// last one logged: Kafka accepts its commits too.
		op.Generation = g.generation
	default:
		return kerr.UnknownMemberID.Code, nil
	}
	p, err := c.log.TrySubmit(op)
	if err != nil {
		return kerr.CoordinatorNotAvailable.Code, nil
	}
	return 0, p
}
