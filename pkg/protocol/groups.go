package protocol

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// The group coordinator: Apache Kafka's classic group protocol (JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup) with the join and sync state of every
// group in memory, as Kafka's GroupCoordinator keeps it. What must outlive
// the agent goes to the metadata log: the generation each completed sync
// produced (meta.GroupGeneration) and committed offsets (meta.CommitOffsets),
// which the state machine checks against the logged generation.
//
// States and transitions, as in Kafka:
//
//	Empty ──join──▶ PreparingRebalance ──all joined or rebalance timeout──▶ CompletingRebalance
//	CompletingRebalance ──leader's SyncGroup──▶ Stable ──join, leave, session timeout──▶ PreparingRebalance
//	PreparingRebalance ──nobody rejoined──▶ Empty;  Empty ──DeleteGroups──▶ Dead
//
// One mutex guards every group: the work under it is small and never waits
// for I/O. Log appends are submitted under it, so that a commit checked
// against a generation reaches the log after that generation and before
// the next, and waited for outside it. They are submitted with TrySubmit,
// which never waits for room in the log's queue: when it is full, the
// commit or the leader's sync that needed the append is answered
// COORDINATOR_NOT_AVAILABLE, which clients retry (Kafka's answer when the
// offsets topic cannot take an append in time), instead of every group
// stalling behind the lock. Session, rebalance and initial-delay timers are
// time.AfterFunc callbacks that re-check, under the mutex, that they still
// belong to the current state.
//
// A group's memory is freed once it is idle: Empty, with no members and
// no member id handed out, and its last generation applied to the log's
// state. newGroup starts a group from the logged generation, so freeing it
// earlier, while that generation waits in the log's queue, would let a new
// incarnation reuse generation numbers. The coordinator frees a group at
// the end of whatever left it idle (a leave, a timer, a refused join, a
// commit from outside group management) or, while a generation's append
// is in flight, once that is done (logGeneration). A generation whose
// append failed is forgotten with the group, as an agent restart would
// forget it; should it land after all (an unknown outcome), the next
// generation logged is refused and the group rebalances past it
// (generationFailed).

type groupState int8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
	groupDead
)

func (s groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

// Kafka's broker defaults.
const (
	defaultMinSessionTimeout = 6 * time.Second  // group.min.session.timeout.ms
	defaultMaxSessionTimeout = 30 * time.Minute // group.max.session.timeout.ms
	maxMemberMetadataBytes   = 1 << 20          // per JoinGroup: protocols' metadata together
	maxOffsetMetadataBytes   = 4096             // offset.metadata.max.bytes
)

type coordinator struct {
	s            *Server
	initialDelay time.Duration
	minSession   time.Duration
	maxSession   time.Duration

	mu     sync.Mutex
	groups map[string]*group
}

type group struct {
	c            *coordinator
	name         string
	state        groupState
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	pending      map[string]*time.Timer // member ids handed out with MEMBER_ID_REQUIRED
	static       map[string]string      // group.instance.id → member id
	pendingSync  map[string]bool        // members yet to send SyncGroup this generation

	timer          *time.Timer // rebalance, initial delay or sync deadline
	timerSeq       uint64      // bumped whenever timer is replaced
	initialDelay   bool        // in group.initial.rebalance.delay
	newMemberAdded bool
	logging        *meta.Pending // the last generation's append, until done
}

type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocols        []kmsg.JoinGroupRequestProtocol
	assignment       []byte

	joinVersion int16
	join        chan *kmsg.JoinGroupResponse // set while awaiting the join's answer
	sync        chan syncAnswer              // set while awaiting the sync's answer

	session    *time.Timer
	sessionSeq uint64
}

type syncAnswer struct {
	code       int16
	assignment []byte
	wait       *meta.Pending // the generation's log append to wait for first
}

func newCoordinator(s *Server) *coordinator {
	c := &coordinator{s: s, initialDelay: s.cfg.GroupInitialRebalanceDelay, minSession: s.cfg.GroupMinSessionTimeout,
		maxSession: s.cfg.GroupMaxSessionTimeout, groups: map[string]*group{}}
	if c.minSession <= 0 {
		c.minSession = defaultMinSessionTimeout
	}
	if c.maxSession <= 0 {
		c.maxSession = defaultMaxSessionTimeout
	}
	return c
}

// clientInfo is who sent a request, for member ids and DescribeGroups.
type clientInfo struct{ id, host string }

// newGroup starts a group's in-memory state where the log left it, so that
// generations keep increasing across agent restarts.
func (c *coordinator) newGroup(name string) *group {
	g := &group{c: c, name: name, members: map[string]*member{}, pending: map[string]*time.Timer{}, static: map[string]string{}}
	c.s.log.View(func(st *meta.State) {
		if lg, ok := st.Group(name); ok && lg.Generation > 0 {
			g.generation = lg.Generation
			if len(lg.Members) == 0 {
				g.protocolType = lg.ProtocolType
			}
		}
	})
	c.groups[name] = g
	return g
}

func (g *group) alive() bool { return g.c.groups[g.name] == g }

// release frees the group's memory if it is idle (see the top of the file).
func (c *coordinator) release(g *group) {
	if g.alive() && g.state == groupEmpty && len(g.members) == 0 && len(g.pending) == 0 && g.logging == nil {
		g.stopTimer()
		delete(c.groups, g.name)
	}
}

func newMemberID(prefix string) string {
	if prefix == "" {
		prefix = "member"
	}
	return prefix + "-" + uuid.NewString()
}

// maxRebalanceTimeout is the longest rebalance timeout of the members.
func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// setTimer replaces the group's rebalance/sync timer.
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
		g.c.s.cfg.Logger.Info("group member session expired", "group", g.name, "member", m.id)
		g.removeMember(m, kerr.UnknownMemberID.Code)
		g.afterRemoval()
	})
}

// supportsProtocols reports whether a joining member fits the group.
func (g *group) supportsProtocols(protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if len(g.members) == 0 {
		return protocolType != "" && len(protocols) > 0
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		if g.supportedByAll(p.Name, nil) {
			return true
		}
	}
	return false
}

// supportedByAll reports whether every member but skip lists protocol name.
func (g *group) supportedByAll(name string, skip *member) bool {
	for _, m := range g.members {
		if m == skip {
			continue
		}
		if !slices.ContainsFunc(m.protocols, func(p kmsg.JoinGroupRequestProtocol) bool { return p.Name == name }) {
			return false
		}
	}
	return true
}

// selectProtocol is Kafka's vote: among the protocols every member
// supports, each member votes for its most preferred; most votes win.
func (g *group) selectProtocol() string {
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if g.supportedByAll(p.Name, nil) {
				votes[p.Name]++
				break
			}
		}
	}
	best, n := "", -1
	for name, v := range votes {
		if v > n || v == n && name < best {
			best, n = name, v
		}
	}
	return best
}

func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.JoinGroupRequestProtocol) bool {
		return x.Name == y.Name && bytes.Equal(x.Metadata, y.Metadata)
	})
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
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
// (the leader with the member list) and the group awaits the leader's sync.
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
			g.c.s.cfg.Logger.Warn("logging empty group generation", "group", g.name, "err", err)
		}
		g.c.release(g)
		return
	}
	g.c.s.cfg.Logger.Info("group rebalanced", "group", g.name, "generation", g.generation, "members", len(g.members))
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
	g.setTimer(g.maxRebalanceTimeout(), func() {
		if g.generation != gen || g.state != groupCompletingRebalance {
			return
		}
		for id := range g.pendingSync {
			if m := g.members[id]; m != nil {
				g.removeMember(m, kerr.UnknownMemberID.Code)
			}
		}
		g.prepareRebalance()
	})
}

// logGeneration submits the current generation to the metadata log, or
// fails with meta.ErrBusy if the log's queue is full.
func (g *group) logGeneration() (*meta.Pending, error) {
	op := meta.GroupGeneration{Group: g.name, Generation: g.generation, ProtocolType: g.protocolType,
		Protocol: g.protocol, Leader: g.leader, Members: g.memberIDs()}
	if len(op.Members) == 0 {
		op.Members = nil
	}
	p, err := g.c.s.log.TrySubmit(op)
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

func (g *group) rebalanceOrComplete() {
	if g.state == groupPreparingRebalance {
		g.tryCompleteJoin()
	} else {
		g.prepareRebalance()
	}
}

func errJoin(req *kmsg.JoinGroupRequest, code int16) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode, resp.Generation, resp.MemberID = code, -1, req.MemberID
	return resp
}

// join handles a JoinGroup: it returns either an answer or a channel the
// answer will come on.
func (c *coordinator) join(req *kmsg.JoinGroupRequest, cl clientInfo) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	if req.Group == "" {
		return errJoin(req, kerr.InvalidGroupID.Code), nil
	}
	if st := time.Duration(req.SessionTimeoutMillis) * time.Millisecond; st < c.minSession || st > c.maxSession {
		return errJoin(req, kerr.InvalidSessionTimeout.Code), nil
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return errJoin(req, kerr.InconsistentGroupProtocol.Code), nil
	}
	size := 0
	for _, p := range req.Protocols {
		size += len(p.Name) + len(p.Metadata)
	}
	if size > maxMemberMetadataBytes {
		return errJoin(req, kerr.InvalidRequest.Code), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[req.Group]
	if g == nil {
		if req.MemberID != "" {
			return errJoin(req, kerr.UnknownMemberID.Code), nil
		}
		g = c.newGroup(req.Group)
	}
	defer c.release(g) // a join refused may leave a new group idle
	if g.state == groupDead {
		return errJoin(req, kerr.CoordinatorNotAvailable.Code), nil
	}
	if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
		return errJoin(req, kerr.InconsistentGroupProtocol.Code), nil
	}
	newMember := func(id string) *member {
		return &member{id: id, instanceID: req.InstanceID, clientID: cl.id, clientHost: cl.host}
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
		id := newMemberID(cl.id)
		if req.Version >= 4 { // KIP-394: the member must come back with its id
			timeout := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
			g.pending[id] = time.AfterFunc(timeout, func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				if g.alive() && g.pending[id] != nil {
					delete(g.pending, id)
					g.tryCompleteJoin()
					c.release(g)
				}
			})
			resp := errJoin(req, kerr.MemberIDRequired.Code)
			resp.MemberID = id
			return resp, nil
		}
		return nil, g.addMember(newMember(id), req)
	}
	if t := g.pending[req.MemberID]; t != nil {
		t.Stop()
		delete(g.pending, req.MemberID)
		return nil, g.addMember(newMember(req.MemberID), req)
	}
	if req.InstanceID != nil {
		if code := g.checkInstance(req.InstanceID, req.MemberID); code != 0 {
			return errJoin(req, code), nil
		}
	}
	m := g.members[req.MemberID]
	if m == nil {
		return errJoin(req, kerr.UnknownMemberID.Code), nil
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
		return errJoin(req, kerr.UnknownMemberID.Code), nil
	}
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

// sync handles a SyncGroup.
func (c *coordinator) sync(req *kmsg.SyncGroupRequest) (syncAnswer, chan syncAnswer, *group) {
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
		c.s.cfg.Logger.Warn("logging group generation", "group", g.name, "generation", g.generation, "err", err)
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
func (c *coordinator) generationFailed(g *group, gen int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.log.View(func(st *meta.State) {
		if lg, ok := st.Group(g.name); ok && lg.Generation > g.generation {
			g.generation = lg.Generation
		}
	})
	if g.alive() && g.state == groupStable && g.generation == gen {
		g.prepareRebalance()
	}
}

// heartbeat handles a Heartbeat.
func (c *coordinator) heartbeat(req *kmsg.HeartbeatRequest) int16 {
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

// leave removes members (LeaveGroup v3+ batches them).
func (c *coordinator) leave(group string, members []kmsg.LeaveGroupRequestMember) (int16, []int16) {
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
		if t := g.pending[id]; t != nil {
			t.Stop()
			delete(g.pending, id)
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

// commit validates an offset commit against the group in memory, as
// Kafka's validateOffsetCommit, and submits it to the log under the lock
// so that it precedes any later generation of the group in the log. A
// full queue answers COORDINATOR_NOT_AVAILABLE.
func (c *coordinator) commit(req *kmsg.OffsetCommitRequest, op meta.CommitOffsets) (int16, *meta.Pending) {
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
	p, err := c.s.log.TrySubmit(op)
	if err != nil {
		return kerr.CoordinatorNotAvailable.Code, nil
	}
	return 0, p
}

// snapshot of one group for DescribeGroups and ListGroups.
type groupView struct {
	name, state, protocolType, protocol string
	members                             []kmsg.DescribeGroupsResponseGroupMember
	subscribed                          map[string]bool // consumer groups: topics of the members' subscriptions
}

// view describes a group from memory, or from the log (an Empty group
// that only has offsets or a past generation), or reports it unknown.
func (c *coordinator) view(name string) (groupView, bool) {
	c.mu.Lock()
	g := c.groups[name]
	if g != nil {
		v := groupView{name: name, state: g.state.String(), protocolType: g.protocolType, protocol: g.protocol}
		if g.state != groupEmpty {
			v.subscribed = map[string]bool{}
		}
		for _, id := range g.memberIDs() {
			m := g.members[id]
			dm := kmsg.NewDescribeGroupsResponseGroupMember()
			dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
			dm.ProtocolMetadata = m.metadataFor(g.protocol)
			if g.state == groupStable {
				dm.MemberAssignment = m.assignment
			}
			v.members = append(v.members, dm)
			if g.protocolType == "consumer" {
				for _, p := range m.protocols {
					var md kmsg.ConsumerMemberMetadata
					if md.ReadFrom(p.Metadata) == nil {
						for _, t := range md.Topics {
							v.subscribed[t] = true
						}
					}
				}
			}
		}
		c.mu.Unlock()
		return v, true
	}
	c.mu.Unlock()
	var v groupView
	var ok bool
	c.s.log.View(func(st *meta.State) {
		var lg meta.Group
		if lg, ok = st.Group(name); ok {
			v = groupView{name: name, state: groupEmpty.String(), protocolType: lg.ProtocolType}
		}
	})
	return v, ok
}

// names lists the groups in memory and in the log.
func (c *coordinator) names() []string {
	set := map[string]bool{}
	c.mu.Lock()
	for n, g := range c.groups {
		if g.state != groupDead {
			set[n] = true
		}
	}
	c.mu.Unlock()
	c.s.log.View(func(st *meta.State) {
		for _, n := range st.GroupNames() {
			set[n] = true
		}
	})
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// remove marks a group Dead and forgets it, unless it has members.
func (c *coordinator) remove(name string) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[name]
	if g != nil && g.state != groupEmpty && g.state != groupDead {
		return kerr.NonEmptyGroup.Code
	}
	known := g != nil
	if !known {
		c.s.log.View(func(st *meta.State) { _, known = st.Group(name) })
	}
	if !known {
		return kerr.GroupIDNotFound.Code
	}
	if g != nil {
		g.state = groupDead
		g.stopTimer()
		for _, t := range g.pending {
			t.Stop()
		}
		delete(c.groups, name)
	}
	return 0
}

// waitJoin waits for a join's answer.
func waitJoin(ctx context.Context, req *kmsg.JoinGroupRequest, ch chan *kmsg.JoinGroupResponse) *kmsg.JoinGroupResponse {
	select {
	case resp := <-ch:
		return resp
	case <-ctx.Done():
		return errJoin(req, kerr.RebalanceInProgress.Code) // the connection is gone; nobody reads this
	}
}
