package meta

import (
	"bytes"
	"reflect"
	"testing"
)

func TestAgents(t *testing.T) {
	s := NewState()
	apply := func(writer string, ms int64, ops ...Op) []Result {
		return s.Apply(s.Seq+1, &Entry{Writer: writer, TimeMs: ms, Ops: ops})
	}
	if r := apply("a1", 1000, AgentHeartbeat{Addr: "h1:9092"}); r[0].NodeID != 0 {
		t.Fatalf("first agent got node %d", r[0].NodeID)
	}
	if r := apply("b1", 1000, AgentHeartbeat{Addr: "h2:9092", Zone: "z"}); r[0].NodeID != 1 {
		t.Fatalf("second agent got node %d", r[0].NodeID)
	}
	// Any entry by a registered writer counts as hearing from it.
	apply("a1", 20000, Commit{Object: "o"})
	live := s.LiveAgents(21000, 10000)
	if len(live) != 1 || live[0].ID != "a1" || live[0].LastMs != 20000 {
		t.Fatalf("live at 21 s: %+v, want only a1", live)
	}
	// A restarted process at h2 takes over node 1 and replaces b1.
	if r := apply("b2", 22000, AgentHeartbeat{Addr: "h2:9092"}); r[0].NodeID != 1 {
		t.Fatalf("restarted agent got node %d, want 1", r[0].NodeID)
	}
	if _, ok := s.AgentByID("b1"); ok {
		t.Fatal("the replaced process is still registered")
	}
	if live = s.LiveAgents(22000, 10000); len(live) != 2 || live[0].NodeID != 0 || live[1].ID != "b2" {
		t.Fatalf("live at 22 s: %+v", live)
	}
	// Entries by unregistered writers change nothing.
	apply("stranger", 23000, Commit{Object: "p"})
	if _, ok := s.AgentByID("stranger"); ok {
		t.Fatal("a writer without a heartbeat became an agent")
	}
	// An hour of silence and a's registration is dropped; its node id stays.
	apply("b2", 22000+agentForgetMs+1, AgentHeartbeat{Addr: "h2:9092"})
	if _, ok := s.AgentByID("a1"); ok {
		t.Fatal("an agent silent for an hour is still registered")
	}
	if r := apply("a9", 22000+agentForgetMs+2, AgentHeartbeat{Addr: "h1:9092"}); r[0].NodeID != 0 {
		t.Fatalf("h1 came back as node %d, want 0", r[0].NodeID)
	}

	snap := s.EncodeSnapshot()
	dec, err := DecodeSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsSnapshot(s, dec) || !bytes.Equal(dec.EncodeSnapshot(), snap) {
		t.Fatal("agents do not survive a snapshot")
	}

	en := &Entry{Writer: "w", Ops: []Op{AgentHeartbeat{Addr: "x:1", Zone: "eu"}}}
	got, err := DecodeEntry(en.Encode())
	if err != nil || !reflect.DeepEqual(got, en) {
		t.Fatalf("heartbeat entry round trip: %v %+v", err, got)
	}
}

// An agent that leaves the cluster is not live from that entry on, though
// it wrote within the TTL (its last lease releases come after it), and
// nothing it writes later brings it back; a registration does. The node
// id stays with the address.
func TestLeftAgentsAreNotLive(t *testing.T) {
	s := NewState()
	apply := func(writer string, ms int64, ops ...Op) {
		s.Apply(s.Seq+1, &Entry{Writer: writer, TimeMs: ms, Ops: ops})
	}
	apply("a", 1000, AgentHeartbeat{Addr: "h1:9092"})
	apply("b", 1000, AgentHeartbeat{Addr: "h2:9092"})
	apply("b", 2000, LeaveCluster{})
	apply("b", 2001, ReleaseLease{Job: "collect"})
	if live := s.LiveAgents(2002, 10000); len(live) != 1 || live[0].ID != "a" {
		t.Fatalf("live after b left: %+v, want only a", live)
	}
	apply("b", 3000, AgentHeartbeat{Addr: "h2:9092"})
	if live := s.LiveAgents(3001, 10000); len(live) != 2 || live[1].ID != "b" || live[1].NodeID != 1 {
		t.Fatalf("live after b registered again: %+v, want a and b (node 1)", live)
	}
}

// Agents that advertise one address (a load balancer's) are told apart by
// their peer addresses from Format3: each has its own broker id and none
// replaces another, a restart at the same peer address takes its id back,
// and the peer addresses survive entries and snapshots. Before Format3 the
// peer address is not written, so agents of one address replace each other
// as they always did.
func TestAgentsSharingAnAddress(t *testing.T) {
	s := NewState()
	apply := func(writer string, ms int64, ops ...Op) []Result {
		return s.Apply(s.Seq+1, &Entry{Writer: writer, TimeMs: ms, Ops: ops})
	}
	apply("a", 1000, AgentHeartbeat{Addr: "lb:9092", PeerAddr: "10.0.0.1:9092"})
	apply("b", 1000, AgentHeartbeat{Addr: "lb:9092", PeerAddr: "10.0.0.2:9092"})
	if live := s.LiveAgents(1000, 10000); len(live) != 1 || live[0].ID != "b" {
		t.Fatalf("live at Format1: %+v, want b alone (the peer address is not in a Format1 entry)", live)
	}

	s = NewState()
	apply("t", 0, SetFormat{Version: Format3})
	ra := apply("a", 1000, AgentHeartbeat{Addr: "lb:9092", PeerAddr: "10.0.0.1:9092"})
	rb := apply("b", 1000, AgentHeartbeat{Addr: "lb:9092", PeerAddr: "10.0.0.2:9092", Zone: "z"})
	live := s.LiveAgents(1000, 10000)
	if len(live) != 2 || ra[0].NodeID == rb[0].NodeID || live[1].Key() != "10.0.0.2:9092" || live[1].Addr != "lb:9092" {
		t.Fatalf("live: %+v (nodes %d, %d), want a and b apart by peer address", live, ra[0].NodeID, rb[0].NodeID)
	}
	if r := apply("b2", 2000, AgentHeartbeat{Addr: "lb:9092", PeerAddr: "10.0.0.2:9092"}); r[0].NodeID != rb[0].NodeID {
		t.Fatalf("b restarted at its peer address got node %d, want %d", r[0].NodeID, rb[0].NodeID)
	}
	if _, ok := s.AgentByID("b"); ok {
		t.Fatal("the restarted agent did not replace its earlier process")
	}
	if _, ok := s.AgentByID("a"); !ok {
		t.Fatal("an agent at another peer address was replaced")
	}

	snap := s.EncodeSnapshot()
	if snap[4] != 8 {
		t.Fatalf("a Format3 state snapshots as version %d, want 8", snap[4])
	}
	dec, err := DecodeSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := dec.AgentByID("a"); a.PeerAddr != "10.0.0.1:9092" || !sameAsSnapshot(s, dec) || !bytes.Equal(dec.EncodeSnapshot(), snap) {
		t.Fatalf("peer addresses do not survive a snapshot: %+v", a)
	}
	en := &Entry{Writer: "w", Ops: []Op{AgentHeartbeat{Addr: "lb:1", PeerAddr: "p:1"}}}
	got, err := DecodeEntry(en.EncodeAt(Format3))
	if err != nil || !reflect.DeepEqual(got, en) {
		t.Fatalf("Format3 heartbeat entry round trip: %v %+v", err, got)
	}
}
