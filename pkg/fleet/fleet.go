package fleet

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bargehq/barge/pkg/meta"
)

// Liveness timing, checked by Check: an agent counts as live while its
// newest metadata-log entry is younger than TTL. A busy agent's commits
// keep it live; an idle one writes a heartbeat once it has been silent for
// HeartbeatInterval, so liveness costs no bucket writes under load and one
// small conditional PUT every few seconds at rest. TTL leaves room for two
// missed heartbeats and a slow append.
const (
	HeartbeatInterval = 3 * time.Second
	TTL               = meta.MemberTTL
)

// Check reports whether a TTL and heartbeat interval keep a healthy idle
// agent live: it must be able to miss a heartbeat and still be live.
func Check(ttl, heartbeat time.Duration) error {
	if heartbeat <= 0 || ttl < 3*heartbeat {
		return fmt.Errorf("fleet: an agent TTL of %v must be at least three heartbeat intervals (%v)", ttl, heartbeat)
	}
	if heartbeat+suspectSlack >= ttl {
		return fmt.Errorf("fleet: an agent is probed %v after a missed heartbeat (%v), which must be inside the TTL of %v", suspectSlack, heartbeat, ttl)
	}
	return nil
}

// Member is one live agent as a Kafka broker.
type Member struct {
	NodeID int32
	Host   string
	Port   int32
	Zone   string // its availability zone, Kafka's broker.rack; "" if not set
	// Peer is the host:port other agents reach it at, which tells it
	// apart from every other member: it is its own even when the
	// advertised address is shared (a load balancer's).
	Peer string
	// NoJobs says it runs no background jobs (--jobs=false), so jobs
	// are placed on the others.
	NoJobs bool
}

// Addr is the member's advertised host:port.
func (m Member) Addr() string { return net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port))) }

// SharesAddr reports whether o is another agent that clients reach at m's
// advertised address: a request o must answer cannot be sent to it by the
// client, so the agent it reached forwards it.
func (m Member) SharesAddr(o Member) bool { return m.Peer != o.Peer && m.Addr() == o.Addr() }

// Fleet answers who is live and who owns what, from one agent's view of
// the metadata log.
type Fleet struct {
	log  *meta.Log
	self Member
	ttl  time.Duration
}

// New returns the fleet as the agent self sees it; ttl 0 means TTL, and a
// self.Peer of "" means its advertised address.
func New(log *meta.Log, self Member, ttl time.Duration) *Fleet {
	if ttl <= 0 {
		ttl = TTL
	}
	if self.Peer == "" {
		self.Peer = self.Addr()
	}
	return &Fleet{log: log, self: self, ttl: ttl}
}

// Self is this agent.
func (f *Fleet) Self() Member { return f.self }

// Epoch returns the leader epoch of every partition in st: the membership
// epoch, except with a shared address, where the fleet is one broker to
// clients whose leaders never change, so an epoch that moved with the
// membership would only make every consumer stop and revalidate. Shared
// is this agent's configuration (a peer address of its own), not who is
// at its address now, so the epoch never jumps back to 0 when a second
// agent arrives there.
func (f *Fleet) Epoch(st *meta.State) int32 {
	if f.self.Peer != f.self.Addr() {
		return 0
	}
	return st.MembershipEpoch()
}

// Live returns the live agents, this one first (unless the log says it is
// not a member), the others by node id.
func (f *Fleet) Live() []Member {
	live, _ := f.live()
	return live
}

// live returns the live agents and the membership epoch they are of, read
// together: the members the log names (Format4), or before that the agents
// heard from within the TTL, at epoch 0.
func (f *Fleet) live() ([]Member, int32) {
	var agents []meta.Agent
	var epoch int32
	selfIn := true
	f.log.View(func(st *meta.State) {
		if st.Membership() {
			agents, epoch = st.Members(), f.Epoch(st)
			selfIn = st.IsMember(f.log.WriterID()) || len(agents) == 0
		} else {
			agents = st.LiveAgents(time.Now().UnixMilli(), f.ttl.Milliseconds())
		}
	})
	var out []Member
	if selfIn {
		// Out of the fleet (expired, about to join again), this agent
		// names only the members, as every other agent does.
		out = append(out, f.self)
	}
	for _, a := range agents {
		host, port, err := net.SplitHostPort(a.Addr)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil || a.Key() == f.self.Peer || a.NodeID == f.self.NodeID {
			continue
		}
		out = append(out, Member{NodeID: a.NodeID, Host: host, Port: int32(p), Zone: a.Zone, Peer: a.Key(), NoJobs: a.NoJobs})
	}
	if len(out) == 0 {
		out = append(out, f.self) // never an empty placement
	}
	return out, epoch
}

// Owner returns the live agent that owns key (a group, a job): rendezvous
// over the peer addresses, so that a restarted agent at the same address
// gets its keys back.
func (f *Fleet) Owner(key string) Member { return f.Placement().owner(key) }

// Owns reports whether this agent owns key. It reads the log's state, so
// it must not be called inside Log.View.
func (f *Fleet) Owns(key string) bool { return f.Owner(key).Peer == f.self.Peer }

// OwnsJob reports whether this agent, which runs jobs, should run job:
// rendezvous over the live agents that run jobs, so that an agent started
// with --jobs=false leaves its share to the others instead of to no one.
// Like Owns, it must not be called inside Log.View.
func (f *Fleet) OwnsJob(job string) bool {
	return f.Placement().JobOwner(job).Peer == f.self.Peer
}

// InZone returns the placement among the live agents in zone, so that a
// client there is given leaders it reaches without crossing zones; all of
// them when zone is "" or has no live agent.
func (p Placement) InZone(zone string) Placement {
	if zone == "" {
		return p
	}
	in := Placement{Epoch: p.Epoch, brokers: p.brokers}
	for i, m := range p.live {
		if m.Zone == zone {
			in.live, in.addrs = append(in.live, m), append(in.addrs, p.addrs[i])
		}
	}
	if len(in.live) == 0 {
		return p
	}
	return in
}

// Zone returns the placement among the live agents in zone and whether
// there is any (InZone falls back to all of them instead).
func (p Placement) Zone(zone string) (Placement, bool) {
	in := p.InZone(zone)
	return in, zone != "" && len(in.live) > 0 && in.live[0].Zone == zone
}

// ClientZone returns the zone a client names in its client.id, as
// "barge_az=NAME" anywhere in it (WarpStream's warpstream_az= convention:
// the id is the one setting every Kafka client has), or "".
func ClientZone(clientID string) string {
	const tag = "barge_az="
	i := strings.Index(clientID, tag)
	if i < 0 {
		return ""
	}
	zone := clientID[i+len(tag):]
	if j := strings.IndexAny(zone, ",; "); j >= 0 {
		zone = zone[:j]
	}
	return zone
}

// PartitionKey is the rendezvous key of a partition's leadership: the
// topic's id (names can be reused) and the partition.
func PartitionKey(topic meta.TopicID, partition int32) string {
	var key [len(meta.TopicID{}) + 4]byte
	copy(key[:], topic[:])
	binary.BigEndian.PutUint32(key[len(topic):], uint32(partition))
	return string(key[:])
}

// Placement is the live set at one moment, for placing many keys alike
// (every partition of a Metadata answer) without reading the log for each.
type Placement struct {
	// Epoch is the leader epoch of every partition it places: the
	// membership epoch of its live set (meta.State.MembershipEpoch),
	// which changes whenever a leader may.
	Epoch int32
	live  []Member
	addrs []string // their peer addresses, the rendezvous keys
	// brokers maps an advertised address to the broker clients know it
	// as: the live agent with the lowest node id there.
	brokers map[string]Member
}

// Placement returns the live agents as they are now.
func (f *Fleet) Placement() Placement {
	live, epoch := f.live()
	p := placementOf(live)
	p.Epoch = epoch
	return p
}

// placementOf places keys over live, whose first member is this agent.
func placementOf(live []Member) Placement {
	addrs := make([]string, len(live))
	brokers := make(map[string]Member, len(live))
	for i, m := range live {
		addrs[i] = m.Peer
		if b, ok := brokers[m.Addr()]; !ok || m.NodeID < b.NodeID {
			brokers[m.Addr()] = m
		}
	}
	return Placement{live: live, addrs: addrs, brokers: brokers}
}

// Brokers returns the live agents as clients see them, this agent's
// broker first: one broker per advertised address. Agents that share an
// address (a load balancer's) are one broker to clients, whichever of them
// a connection reaches, since a client keys its brokers by address as much
// as by id (librdkafka merges brokers of one address, and then never finds
// the others' ids); they tell each other apart by peer address.
func (p Placement) Brokers() []Member {
	first := p.Broker(p.live[0])
	out := []Member{first}
	for _, m := range p.live {
		if b := p.brokers[m.Addr()]; b.Peer == m.Peer && b.Peer != first.Peer {
			out = append(out, b)
		}
	}
	return out
}

// Broker returns the broker clients know m as (Brokers).
func (p Placement) Broker(m Member) Member {
	if b, ok := p.brokers[m.Addr()]; ok {
		return b
	}
	return m
}

// Leader returns the agent that leads a partition: rendezvous over the
// live agents, so a partition's producers and consumers meet on one agent,
// whose cache holds its tail, and when an agent leaves only its partitions
// move. Every agent serves every partition (the bucket holds the data), so
// a client with an older view still gets answers; leading only concentrates
// a partition's traffic.
func (p Placement) Leader(topic meta.TopicID, partition int32) Member {
	return p.Broker(p.owner(PartitionKey(topic, partition)))
}

// Owner is the live agent that owns key (a group).
func (p Placement) Owner(key string) Member { return p.owner(key) }

// JobOwner is the live agent that runs job: rendezvous over the live
// agents that run jobs (this one is taken to, since only a runner asks);
// over all of them if none does.
func (p Placement) JobOwner(job string) Member {
	var runners []Member
	for i, m := range p.live {
		if i == 0 || !m.NoJobs {
			runners = append(runners, m)
		}
	}
	return placementOf(runners).owner(job)
}

// owner is the live agent rendezvous picks for key; the live set is never
// empty (this agent is in it).
func (p Placement) owner(key string) Member {
	owner := Rendezvous(key, p.addrs)
	for i, a := range p.addrs {
		if a == owner {
			return p.live[i]
		}
	}
	return p.live[0]
}
