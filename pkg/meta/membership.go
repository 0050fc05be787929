package meta

import (
	"errors"
	"sort"
	"time"
)

// Membership (Format4): who is in the fleet, decided by the log rather than
// by each agent's clock, so that every agent that has read the same slots
// places partitions and groups over the same agents and names the same
// leader epoch.
//
// An agent joins with an AgentHeartbeat (its first, or its first after it
// left or was expired), leaves with LeaveCluster, and is expired by
// ExpireAgent, which any live agent writes once the agent has been silent
// for the fleet's TTL (pkg/fleet). Every change of the member set raises
// the membership epoch by one, and the epoch is every partition's leader
// epoch: leaders are a function of the member set, so it changes whenever a
// leader can, and only goes up, so a client refreshes instead of flapping
// between agents that have read different slots.
//
// Membership fences writes: from Format4 on, a Commit whose writer is not a
// member (expired while it was paused or cut off, departed, or replaced by a
// newer process at its peer address) takes nothing, so such an agent never
// acknowledges a produce. It must join again first, which it does by
// heartbeating as soon as it sees it is out (fleet.Heartbeat).
//
// Before Format4 nothing here is written: liveness is each agent's reading
// of heartbeat times (LiveAgents), and the leader epoch is 0. Raising the
// format to 4 starts membership afresh, at epoch 1 with every registered
// agent heard from within MemberTTL a member, because agents loaded from a
// Format3 snapshot do not know who had left.

// ExpireAgent records that agent ID, last heard at LastMs, is gone. It
// applies only if nothing has been heard from the agent since the writer
// looked (LastMs is still its newest entry time), so an agent that
// heartbeats in the meantime is never expired by a slow or skewed writer.
type ExpireAgent struct {
	ID     string
	LastMs int64
}

// ErrFenced refuses a Commit by an agent that is not a member (Format4):
// it must join again before it acknowledges anything.
var ErrFenced = errors.New("meta: this agent is not a member of the fleet (expired, departed or replaced)")

// errStillHeard refuses an ExpireAgent for an agent heard from since, or
// already out.
var errStillHeard = errors.New("meta: the agent was heard from since, or is already out")

func (ExpireAgent) kind() uint8 { return kindExpireAgent }

func (op ExpireAgent) encode(e *encoder) {
	e.str(op.ID)
	e.svar(op.LastMs)
}

func decodeExpireAgent(d *decoder) Op { return ExpireAgent{ID: d.str(), LastMs: d.svar()} }

// member reports whether the agent is in the fleet: registered, and
// neither left nor expired since.
func (a *Agent) member() bool { return a != nil && !a.Left && !a.Expired }

// changedMembership notes one change of the member set; before Format4
// there is no epoch to raise (startMembership begins it).
func (s *State) changedMembership() {
	if s.format >= Format4 {
		s.memberEpoch++
	}
}

func (s *State) expireAgent(op ExpireAgent) error {
	a := s.agents[op.ID]
	if !a.member() || a.LastMs != op.LastMs {
		return errStillHeard
	}
	a.Expired = true
	s.changedMembership()
	return nil
}

func (s *State) leaveCluster(writer string) {
	delete(s.members, writer)
	if a := s.agents[writer]; a.member() {
		a.Left = true
		s.changedMembership()
	}
}

// MemberTTL is how long a member may be silent before another records it
// gone (pkg/fleet's TTL, checked there against its heartbeat interval).
// The log needs it once: when membership begins.
const MemberTTL = 10 * time.Second

// startMembership begins Format4's membership at nowMs, the SetFormat
// entry's time: every registered agent heard from within MemberTTL is a
// member, the others are expired, at epoch 1. Who had left is not known
// alike by every agent (a Format3 snapshot does not say), so a leaver still
// within the TTL is a member until it is expired like a silent one.
func (s *State) startMembership(nowMs int64) {
	for _, a := range s.agents {
		a.Left, a.Expired = false, nowMs-a.LastMs > MemberTTL.Milliseconds()
	}
	s.memberEpoch = 1
}

// fenced reports whether writer may not commit records: from Format4 on,
// only members may.
func (s *State) fenced(writer string) bool {
	return s.format >= Format4 && !s.agents[writer].member()
}

// Membership reports whether the log decides membership (Format4).
func (s *State) Membership() bool { return s.format >= Format4 }

// MembershipEpoch is the leader epoch of every partition: the number of
// changes of the member set since membership began; 0 before Format4.
func (s *State) MembershipEpoch() int32 {
	if s.format < Format4 {
		return 0
	}
	return s.memberEpoch
}

// IsMember reports whether the writer is in the fleet (always true before
// Format4, which has no membership to be out of).
func (s *State) IsMember(writer string) bool {
	return s.format < Format4 || s.agents[writer].member()
}

// Members returns the agents in the fleet, by node id.
func (s *State) Members() []Agent {
	out := make([]Agent, 0, len(s.agents))
	for _, a := range s.agents {
		if a.member() {
			out = append(out, *a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// Snapshot membership section (version 9, Format4): the membership epoch,
// then the agents that are out (count, then id and a byte: 1 left, 2
// expired; sorted by id), then the agents that run no jobs (count, ids
// sorted).
func (s *State) encodeMembership(e *encoder) {
	e.svar(int64(s.memberEpoch))
	ids := make([]string, 0, len(s.agents))
	for id, a := range s.agents {
		if !a.member() {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	e.uvar(uint64(len(ids)))
	for _, id := range ids {
		e.str(id)
		if s.agents[id].Left {
			e.u8(1)
		} else {
			e.u8(2)
		}
	}
	ids = ids[:0]
	for id, a := range s.agents {
		if a.NoJobs {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	e.uvar(uint64(len(ids)))
	for _, id := range ids {
		e.str(id)
	}
}

func (s *State) decodeMembership(d *decoder) {
	s.memberEpoch = d.i32()
	n := d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		id, how := d.str(), d.u8()
		a := s.agents[id]
		switch {
		case a == nil:
			d.fail("membership of an unknown agent")
		case how == 1:
			a.Left = true
		case how == 2:
			a.Expired = true
		default:
			d.fail("unknown membership mark")
		}
	}
	n = d.count(1)
	for i := 0; i < n && d.err == nil; i++ {
		if a := s.agents[d.str()]; a != nil {
			a.NoJobs = true
		} else {
			d.fail("jobs of an unknown agent")
		}
	}
}
