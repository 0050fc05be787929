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
	return c.commit(req.Group, req.MemberID, req.InstanceID, req.Generation, false, func(gen int32) (*meta.Pending, error) {
		op.Generation = gen
		return c.log.TrySubmit(op)
	})
}

// CommitTxn is Commit for a transaction's offsets (TxnOffsetCommit): a
// commit that names no member and no generation (before KIP-447) is
// taken whatever the group's state, as Kafka takes it.
func (c *Coordinator) CommitTxn(group, member string, instance *string, generation int32, op meta.TxnCommitOffsets) (int16, *meta.Pending) {
	return c.commit(group, member, instance, generation, true, func(gen int32) (*meta.Pending, error) {
		op.Offsets.Generation = gen
		return c.log.TrySubmit(op)
	})
}

func (c *Coordinator) commit(group, member string, instance *string, generation int32, txn bool,
	submit func(generation int32) (*meta.Pending, error)) (int16, *meta.Pending) {
	if group == "" {
		return kerr.InvalidGroupID.Code, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[group]
	if g == nil {
		if generation >= 0 {
			return kerr.IllegalGeneration.Code, nil
		}
		g = c.newGroup(group)
	}
	defer c.release(g) // commits from outside group management leave it idle
	logged := g.generation
	switch {
	case g.state == groupDead:
		return kerr.CoordinatorNotAvailable.Code, nil
	case generation < 0 && (g.state == groupEmpty || txn && member == "" && instance == nil):
		logged = -1
	case generation >= 0 || member != "" || instance != nil:
		if code := g.checkInstance(instance, member); code != 0 {
			return code, nil
		}
		m := g.members[member]
		if m == nil {
			return kerr.UnknownMemberID.Code, nil
		}
		if generation != g.generation {
			return kerr.IllegalGeneration.Code, nil
		}
		if g.state == groupCompletingRebalance {
			return kerr.RebalanceInProgress.Code, nil
		}
		g.heartbeat(m)
		// In PreparingRebalance this is the generation being left, the
		// last one logged: Kafka accepts its commits too.
	default:
		return kerr.UnknownMemberID.Code, nil
	}
	p, err := submit(logged)
	if err != nil {
		return kerr.CoordinatorNotAvailable.Code, nil
	}
	return 0, p
}
