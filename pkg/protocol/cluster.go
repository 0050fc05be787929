package protocol

import (
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/bargehq/barge/pkg/fleet"
	"github.com/bargehq/barge/pkg/meta"
)

// The cluster as clients see it comes from pkg/fleet: the live agents are
// the brokers, and the fleet's rendezvous places each partition's
// leadership and each group's coordinator, so every agent with the same
// view names the same ones. Any agent still serves any partition.

// brokers returns the live agents as clients see them (one broker per
// advertised address), this one's first.
func (s *Server) brokers() []fleet.Member { return s.fleet.Placement().Brokers() }

// coordinatorOf returns the broker that coordinates group, as clients know
// it: with a shared address, the address's broker, and the agent that
// reaches forwards the group's requests (forward.go).
func (s *Server) coordinatorOf(group string) fleet.Member {
	p := s.fleet.Placement()
	return p.Broker(p.Owner(group))
}

// coordinates reports whether this agent coordinates group; group APIs
// answer NOT_COORDINATOR otherwise, and clients look it up again.
func (s *Server) coordinates(group string) bool { return s.fleet.Owns(group) }

// leaderEpoch is every partition's leader epoch: the fleet's membership
// epoch (fleet.Epoch), 0 before the log records membership and with a
// shared address.
func (s *Server) leaderEpoch() (epoch int32) {
	s.log.View(func(st *meta.State) { epoch = s.fleet.Epoch(st) })
	return epoch
}

// checkLeaderEpoch answers a request's CurrentLeaderEpoch as a Kafka leader
// does (KIP-320): -1 skips the check; an older epoch than ours is
// FENCED_LEADER_EPOCH, on which the client refreshes its metadata (and
// moves to the partition's new leader); a newer one is
// UNKNOWN_LEADER_EPOCH: this agent has not yet read the slot that raised
// it, and the client retries.
func checkLeaderEpoch(current, ours int32) int16 {
	switch {
	case current < 0 || current == ours:
		return 0
	case current < ours:
		return kerr.FencedLeaderEpoch.Code
	default:
		return kerr.UnknownLeaderEpoch.Code
	}
}

// rack is a zone as Kafka's broker.rack: null when not set.
func rack(zone string) *string {
	if zone == "" {
		return nil
	}
	return &zone
}

// Fleet is the agent's view of the cluster, which the background jobs
// share to decide which of them to run.
func (s *Server) Fleet() *fleet.Fleet { return s.fleet }
