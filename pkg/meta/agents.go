package meta

import (
	"sort"
)

// Live agents. An agent announces its advertised address with an
// AgentHeartbeat when it starts and whenever it has been silent for a while;
// any entry it writes also counts as hearing from it. The state gives each
// agent a broker id that survives restarts, so clients see stable node ids:
// the id belongs to the agent's peer address (Agent.Key), which a restarted
// agent at the same place takes over. Agents that share one advertised
// address (the load balancer's) are told apart by their peer addresses
// (Format3); before Format3 the advertised address was the key.

// agentForgetMs is how long an agent unheard of stays in the state.
const agentForgetMs = 60 * 60 * 1000

// AgentHeartbeat registers or refreshes the writing agent.
type AgentHeartbeat struct {
	Addr string // host:port clients connect to
	Zone string
	// PeerAddr is the host:port other agents reach this one at
	// (Format3); "" means Addr.
	PeerAddr string
	// NoJobs says the agent runs no background jobs (--jobs=false;
	// Format4), so that they are placed on the others.
	NoJobs bool
	// NoSequence says the agent will not be the metadata log's
	// sequencer (--meta-sequencer=false; Format5), so that it is never
	// chosen to (sequencer.go).
	NoSequence bool
}

// key is the address that identifies the agent: its peer address.
func (op AgentHeartbeat) key() string {
	if op.PeerAddr != "" {
		return op.PeerAddr
	}
	return op.Addr
}

func (AgentHeartbeat) kind() uint8 { return kindAgentHeartbeat }

// Agent is what the log knows of one agent process.
type Agent struct {
	ID   string // the writer id of its entries
	Addr string
	Zone string
	// PeerAddr is where other agents reach it (Format3): its own
	// address when Addr is shared with others; "" means Addr.
	PeerAddr string
	NodeID   int32
	LastMs   int64 // writer time of its newest entry
	// Left says the agent wrote LeaveCluster on its way out: it is not
	// live, whatever its last entry's time, so that its groups and jobs
	// move at once instead of after the TTL. Before Format4 this is not
	// in snapshots (liveness was a hint): an agent loaded from one treats
	// the leaver as live until the TTL, as it would have without it.
	Left bool
	// Expired says another agent recorded it gone after a TTL of silence
	// (ExpireAgent, Format4); it is a member again once it heartbeats.
	Expired bool
	NoJobs  bool // it runs no background jobs (Format4)
	// NoSequence: it will not be the sequencer (Format5).
	NoSequence bool
}

// Key is the address that tells the agent apart from every other: its peer
// address. Its broker id and what rendezvous gives it follow the key.
func (a Agent) Key() string {
	if a.PeerAddr != "" {
		return a.PeerAddr
	}
	return a.Addr
}

// heard notes an entry by writer at timeMs.
func (s *State) heard(writer string, timeMs int64) {
	if a := s.agents[writer]; a != nil {
		a.LastMs = max(a.LastMs, timeMs)
	}
}

func (s *State) agentHeartbeat(writer string, timeMs int64, op AgentHeartbeat) int32 {
	s.forgetMembers(timeMs)
	if s.format < Format3 {
		op.PeerAddr = "" // not in the entry's encoding either
	}
	if s.format < Format4 {
		op.NoJobs = false // nor this
	}
	if s.format < Format5 {
		op.NoSequence = false // nor this
	}
	key := op.key()
	changed := !s.agents[writer].member() // a join
	id, ok := s.nodeByAddr[key]
	if !ok {
		id = s.nextNodeID
		s.nextNodeID++
		s.nodeByAddr[key] = id
	}
	for other, a := range s.agents {
		// An earlier process at this address is gone: this one replaced
		// it. Agents silent for an hour are forgotten.
		if other != writer && (a.Key() == key || timeMs-a.LastMs > agentForgetMs) {
			changed = changed || a.member() // replaced or forgotten while in
			delete(s.agents, other)
			if s.format >= Format2 && a.Key() != key {
				s.forgetAddr(a.Key())
			}
		}
	}
	a := s.agents[writer]
	if a == nil {
		a = &Agent{ID: writer}
		s.agents[writer] = a
	}
	a.Addr, a.Zone, a.PeerAddr, a.NodeID, a.LastMs, a.Left, a.Expired, a.NoJobs = op.Addr, op.Zone, op.PeerAddr, id, max(a.LastMs, timeMs), false, false, op.NoJobs
	a.NoSequence = op.NoSequence
	if changed {
		s.changedMembership()
	}
	return id
}

// forgetAddr drops a key's broker id once no agent has it, so that
// the table follows the agents as instances come and go instead of growing
// with every address ever seen (Format2: before it, ids were kept forever,
// and agents of one cluster must agree). An agent that comes back at the
// address after an hour gets a new id.
func (s *State) forgetAddr(addr string) {
	for _, a := range s.agents {
		if a.Key() == addr {
			return
		}
	}
	delete(s.nodeByAddr, addr)
}

// LiveAgents returns the agents heard from within ttlMs of nowMs that have
// not left, by node id.
func (s *State) LiveAgents(nowMs, ttlMs int64) []Agent {
	out := make([]Agent, 0, len(s.agents))
	for _, a := range s.agents {
		if !a.Left && nowMs-a.LastMs <= ttlMs {
			out = append(out, *a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// AgentByID returns a registered agent.
func (s *State) AgentByID(id string) (Agent, bool) {
	if a := s.agents[id]; a != nil {
		return *a, true
	}
	return Agent{}, false
}

func (op AgentHeartbeat) encode(e *encoder) {
	e.str(op.Addr)
	e.str(op.Zone)
	if e.format >= Format3 {
		e.str(op.PeerAddr)
	}
	if e.format >= Format4 {
		e.bool(op.NoJobs)
	}
	if e.format >= Format5 {
		e.bool(op.NoSequence)
	}
}

func decodeAgentHeartbeat(d *decoder) Op {
	op := AgentHeartbeat{Addr: d.str(), Zone: d.str()}
	if d.format >= Format3 {
		op.PeerAddr = d.str()
	}
	if d.format >= Format4 {
		op.NoJobs = d.bool()
	}
	if d.format >= Format5 {
		op.NoSequence = d.bool()
	}
	return op
}

// Snapshot agents section (version 3): next node id, the key → node id
// table sorted by key, then the agents sorted by id (id, address, zone,
// node id, last heard).
func (s *State) encodeAgents(e *encoder) {
	e.svar(int64(s.nextNodeID))
	addrs := make([]string, 0, len(s.nodeByAddr))
	for a := range s.nodeByAddr {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	e.uvar(uint64(len(addrs)))
	for _, a := range addrs {
		e.str(a)
		e.svar(int64(s.nodeByAddr[a]))
	}
	ids := make([]string, 0, len(s.agents))
	for id := range s.agents {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	e.uvar(uint64(len(ids)))
	for _, id := range ids {
		a := s.agents[id]
		e.str(a.ID)
		e.str(a.Addr)
		e.str(a.Zone)
		e.svar(int64(a.NodeID))
		e.svar(a.LastMs)
	}
}

func (s *State) decodeAgents(d *decoder) {
	s.nextNodeID = d.i32()
	n := d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		addr := d.str()
		s.nodeByAddr[addr] = d.i32()
	}
	n = d.count(5)
	for i := 0; i < n && d.err == nil; i++ {
		a := &Agent{ID: d.str(), Addr: d.str(), Zone: d.str(), NodeID: d.i32(), LastMs: d.svar()}
		s.agents[a.ID] = a
	}
}

// Snapshot peers section (version 8, Format3): the agents with a peer
// address of their own (count, then id and peer address, sorted by id).
func (s *State) encodePeers(e *encoder) {
	ids := make([]string, 0, len(s.agents))
	for id, a := range s.agents {
		if a.PeerAddr != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	e.uvar(uint64(len(ids)))
	for _, id := range ids {
		e.str(id)
		e.str(s.agents[id].PeerAddr)
	}
}

func (s *State) decodePeers(d *decoder) {
	n := d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		id, peer := d.str(), d.str()
		if a := s.agents[id]; a != nil {
			a.PeerAddr = peer
		} else {
			d.fail("peer of an unknown agent")
		}
	}
}
