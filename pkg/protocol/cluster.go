package protocol

import (
	"net"
	"strconv"
	"time"

	"github.com/bargehq/barge/pkg/meta"
)

// The cluster as clients see it: the live agents (heard from in the
// metadata log within AgentTTL) are the brokers. Any agent serves any
// partition, so each names itself leader of all of them; groups are spread
// over the live agents by rendezvous hashing on the advertised address, so
// every agent computes the same coordinator and a restarted agent at the
// same address gets its groups back.

// broker is one live agent as a Kafka broker.
type broker struct {
	nodeID int32
	host   string
	port   int32
}

// brokers returns the live agents by node id, always with this agent.
func (s *Server) brokers() []broker {
	var agents []meta.Agent
	s.log.View(func(st *meta.State) { agents = st.LiveAgents(time.Now().UnixMilli(), s.cfg.AgentTTL.Milliseconds()) })
	self := s.self()
	out := []broker{self}
	for _, a := range agents {
		host, port, err := net.SplitHostPort(a.Addr)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil || (host == self.host && int32(p) == self.port) || a.NodeID == self.nodeID {
			continue
		}
		out = append(out, broker{nodeID: a.NodeID, host: host, port: int32(p)})
	}
	return out
}

func (s *Server) self() broker {
	return broker{nodeID: s.cfg.NodeID, host: s.cfg.AdvertisedHost, port: s.cfg.AdvertisedPort}
}

func (b broker) addr() string { return net.JoinHostPort(b.host, strconv.Itoa(int(b.port))) }

// coordinator returns the agent that coordinates group.
func (s *Server) coordinatorOf(group string) broker {
	bs := s.brokers()
	addrs := make([]string, len(bs))
	for i, b := range bs {
		addrs[i] = b.addr()
	}
	owner := Rendezvous(group, addrs)
	for _, b := range bs {
		if b.addr() == owner {
			return b
		}
	}
	return s.self()
}

// coordinates reports whether this agent coordinates group; group APIs
// answer NOT_COORDINATOR otherwise, and clients look it up again.
func (s *Server) coordinates(group string) bool {
	return s.coordinatorOf(group).addr() == s.self().addr()
}

// Owns reports whether this agent runs the background job named key: the
// same rendezvous over the live agents that places groups.
func (s *Server) Owns(key string) bool { return s.coordinates(key) }
