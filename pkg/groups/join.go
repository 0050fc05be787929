package groups

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Joining is a JoinGroup the coordinator has taken: its change to the
// group is made, and its answer may wait for the join phase to end.
type Joining struct {
	req  *kmsg.JoinGroupRequest
	resp *kmsg.JoinGroupResponse      // the answer, if given at once
	ch   chan *kmsg.JoinGroupResponse // else where it comes
}

// Answer waits for the join's answer. If ctx ends first (the connection
// is gone, nobody reads it) it is REBALANCE_IN_PROGRESS.
func (j Joining) Answer(ctx context.Context) *kmsg.JoinGroupResponse {
	if j.ch == nil {
		return j.resp
	}
	select {
	case resp := <-j.ch:
		return resp
	case <-ctx.Done():
		return JoinError(j.req, kerr.RebalanceInProgress.Code)
	}
}

// JoinError is a join refused with code, as Kafka answers one.
func JoinError(req *kmsg.JoinGroupRequest, code int16) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode, resp.Generation, resp.MemberID = code, -1, req.MemberID
	return resp
}

func newMemberID(prefix string) string {
	if prefix == "" {
		prefix = "member"
	}
	return prefix + "-" + uuid.NewString()
}

// Join handles a JoinGroup from cl.
func (c *Coordinator) Join(req *kmsg.JoinGroupRequest, cl Client) Joining {
	resp, ch := c.join(req, cl)
	return Joining{req: req, resp: resp, ch: ch}
}

// join returns either an answer or a channel the answer will come on.
func (c *Coordinator) join(req *kmsg.JoinGroupRequest, cl Client) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	if req.Group == "" {
		return JoinError(req, kerr.InvalidGroupID.Code), nil
	}
	if st := time.Duration(req.SessionTimeoutMillis) * time.Millisecond; st < c.minSession || st > c.maxSession {
		return JoinError(req, kerr.InvalidSessionTimeout.Code), nil
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return JoinError(req, kerr.InconsistentGroupProtocol.Code), nil
	}
	size := 0
	for _, p := range req.Protocols {
		size += len(p.Name) + len(p.Metadata)
	}
	if size > maxMemberMetadataBytes {
		return JoinError(req, kerr.InvalidRequest.Code), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[req.Group]
	if g == nil {
		if req.MemberID != "" {
			return JoinError(req, kerr.UnknownMemberID.Code), nil
		}
		g = c.newGroup(req.Group)
	}
	defer c.release(g) // a join refused may leave a new group idle
	if g.state == groupDead {
		return JoinError(req, kerr.CoordinatorNotAvailable.Code), nil
	}
	if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
		return JoinError(req, kerr.InconsistentGroupProtocol.Code), nil
	}
	newMember := func(id string) *member {
		return &member{id: id, instanceID: req.InstanceID, clientID: cl.ID, clientHost: cl.Host}
	}
	if req.MemberID == "" {
		if req.InstanceID != nil {
			if old, ok := g.static[*req.InstanceID]; ok && g.members[old] != nil {
				return g.replaceStatic(g.members[old], newMember(newMemberID(*req.InstanceID)), req)
			}
			m := newMember(newMemberID(*req.InstanceID))
			g.static[*req.InstanceID] = m.id
			return nil, g.addMember(m, req)
		}
		id := newMemberID(cl.ID)
		if req.Version >= 4 { // KIP-394: the member must come back with its id
			g.expectMember(id, time.Duration(req.SessionTimeoutMillis)*time.Millisecond)
			resp := JoinError(req, kerr.MemberIDRequired.Code)
			resp.MemberID = id
			return resp, nil
		}
		return nil, g.addMember(newMember(id), req)
	}
	if g.stopExpecting(req.MemberID) {
		return nil, g.addMember(newMember(req.MemberID), req)
	}
	if req.InstanceID != nil {
		if code := g.checkInstance(req.InstanceID, req.MemberID); code != 0 {
			return JoinError(req, code), nil
		}
	}
	m := g.members[req.MemberID]
	if m == nil {
		return JoinError(req, kerr.UnknownMemberID.Code), nil
	}
	switch g.state {
	case groupPreparingRebalance:
		g.updateMember(m, req)
		ch := m.join
		g.tryCompleteJoin()
		return nil, ch
	case groupCompletingRebalance, groupStable:
		if sameProtocols(m.protocols, req.Protocols) && (g.state == groupCompletingRebalance || m.id != g.leader) {
			// Nothing changed: the current generation stands.
			m.joinVersion = req.Version
			g.heartbeat(m)
			return g.joinResponse(m), nil
		}
		g.updateMember(m, req)
		ch := m.join
		g.prepareRebalance()
		return nil, ch
	default:
		return JoinError(req, kerr.UnknownMemberID.Code), nil
	}
}

// addMember adds a joining member and starts or advances the rebalance.
func (g *group) addMember(m *member, req *kmsg.JoinGroupRequest) chan *kmsg.JoinGroupResponse {
	g.updateMember(m, req)
	g.members[m.id] = m
	if g.leader == "" {
		g.leader = m.id
	}
	if len(g.members) == 1 {
		g.protocolType = req.ProtocolType
	}
	g.newMemberAdded = true
	ch := m.join
	g.rebalanceOrComplete()
	return ch
}

// updateMember takes a join's protocols and timeouts and marks the member
// as awaiting the join's answer.
func (g *group) updateMember(m *member, req *kmsg.JoinGroupRequest) {
	m.protocols = slices.Clone(req.Protocols)
	m.sessionTimeout = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 {
		m.rebalanceTimeout = m.sessionTimeout
	}
	m.joinVersion = req.Version
	if m.join != nil { // an earlier join of the same member is superseded
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Version, resp.ErrorCode, resp.Generation, resp.MemberID = m.joinVersion, kerr.UnknownMemberID.Code, -1, m.id
		m.join <- resp
	}
	m.join = make(chan *kmsg.JoinGroupResponse, 1)
}

// joinResponse is the answer to a member's join in the current generation.
func (g *group) joinResponse(m *member) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = m.joinVersion
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if m.id == g.leader {
		for _, id := range g.memberIDs() {
			o := g.members[id]
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID, jm.InstanceID, jm.ProtocolMetadata = o.id, o.instanceID, o.metadataFor(g.protocol)
			resp.Members = append(resp.Members, jm)
		}
	}
	return resp
}

// checkInstance validates a static member's instance id against its
// member id (KIP-345).
func (g *group) checkInstance(instanceID *string, memberID string) int16 {
	if instanceID == nil {
		return 0
	}
	id, ok := g.static[*instanceID]
	switch {
	case !ok:
		return kerr.UnknownMemberID.Code
	case id != memberID:
		return kerr.FencedInstanceID.Code
	}
	return 0
}

// replaceStatic handles a known group.instance.id joining with no member
// id: a restarted static member. It takes over the old member's place and
// assignment, the old member id is fenced, and a Stable group whose
// selected protocol the new member still supports keeps its generation.
func (g *group) replaceStatic(old, m *member, req *kmsg.JoinGroupRequest) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	wasLeader := g.leader == old.id
	m.assignment = old.assignment
	inSync := g.pendingSync[old.id]
	g.removeMember(old, kerr.FencedInstanceID.Code)
	g.members[m.id] = m
	g.static[*req.InstanceID] = m.id
	if wasLeader {
		g.leader = m.id
	}
	if inSync {
		g.pendingSync[m.id] = true
	}
	keeps := g.state == groupStable && slices.ContainsFunc(req.Protocols, func(p kmsg.JoinGroupRequestProtocol) bool { return p.Name == g.protocol }) &&
		(!wasLeader || req.Version >= 9)
	if keeps {
		m.protocols = slices.Clone(req.Protocols)
		m.sessionTimeout = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
		m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
		m.joinVersion = req.Version
		g.heartbeat(m)
		resp := g.joinResponse(m)
		resp.SkipAssignment = wasLeader // KIP-814: the leader resends the current assignment
		return resp, nil
	}
	g.updateMember(m, req)
	ch := m.join
	g.rebalanceOrComplete()
	return nil, ch
}
