package fleet

import (
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/meta"
)

// TestExpiries checks who writes the expiry of a silent member: the live
// member with the lowest node id, or anyone once the silence has lasted a
// heartbeat interval beyond the TTL; never the silent agent itself.
func TestExpiries(t *testing.T) {
	st := meta.NewState()
	apply := func(writer string, ms int64, ops ...meta.Op) {
		st.Apply(st.Seq+1, &meta.Entry{Writer: writer, TimeMs: ms, Ops: ops})
	}
	apply("a", 0, meta.AgentHeartbeat{Addr: "h1:1"}) // node 0
	apply("b", 0, meta.AgentHeartbeat{Addr: "h2:1"}) // node 1
	apply("c", 0, meta.AgentHeartbeat{Addr: "h3:1"}) // node 2
	apply("a", 0, meta.SetFormat{Version: meta.Format4})
	ttl, hb := TTL.Milliseconds(), HeartbeatInterval.Milliseconds()
	// silentAt times each member's silence from its newest entry, as an
	// agent that saw each entry as it was written would.
	silentAt := func(nowMs int64) func(meta.Agent) time.Duration {
		return func(a meta.Agent) time.Duration { return time.Duration(nowMs-a.LastMs) * time.Millisecond }
	}

	// a goes silent; b and c keep heartbeating.
	apply("b", 8000, meta.AgentHeartbeat{Addr: "h2:1"})
	apply("c", 8000, meta.AgentHeartbeat{Addr: "h3:1"})
	// Once a has missed a heartbeat, b (the first heard-from member)
	// probes it; nobody expires it before the TTL.
	sus := suspectAfter.Milliseconds()
	if ops, suspects := expiries(st.Members(), "b", silentAt(sus)); ops != nil || suspects != nil {
		t.Fatalf("at %d ms of silence: expire %v, probe %v; want nothing yet", sus, ops, suspects)
	}
	if ops, suspects := expiries(st.Members(), "b", silentAt(sus+1)); ops != nil || len(suspects) != 1 || suspects[0].ID != "a" {
		t.Fatalf("after a missed heartbeat: expire %v, probe %v; want a probe of a", ops, suspects)
	}
	if _, suspects := expiries(st.Members(), "c", silentAt(sus+1)); suspects != nil {
		t.Fatalf("c probes %v: only the first member probes", suspects)
	}
	if ops, _ := expiries(st.Members(), "b", silentAt(ttl)); ops != nil {
		t.Fatalf("expired at the TTL, not after it: %v", ops)
	}
	now := ttl + 1
	want := []meta.Op{meta.ExpireAgent{ID: "a", LastMs: 0}}
	if ops, suspects := expiries(st.Members(), "b", silentAt(now)); !reflect.DeepEqual(ops, want) || suspects != nil {
		t.Fatalf("b, the lowest live node, writes %v, want %v", ops, want)
	}
	if ops, _ := expiries(st.Members(), "c", silentAt(now)); ops != nil {
		t.Fatalf("c writes %v before the grace for b is over", ops)
	}
	if ops, _ := expiries(st.Members(), "c", silentAt(ttl+hb+1)); !reflect.DeepEqual(ops, want) {
		t.Fatalf("c writes %v once b has had a heartbeat interval, want %v", ops, want)
	}
	if ops, _ := expiries(st.Members(), "a", silentAt(now)); ops != nil {
		t.Fatalf("the silent agent expires itself: %v", ops)
	}
	apply("b", now, want...)
	if epoch := st.MembershipEpoch(); epoch != 2 || len(st.Members()) != 2 {
		t.Fatalf("after the expiry: epoch %d, %d members", epoch, len(st.Members()))
	}
	if ops, _ := expiries(st.Members(), "b", silentAt(now+1)); ops != nil {
		t.Fatalf("an expired agent is expired again: %v", ops)
	}
}

// TestRefuses: a probe tells a port nothing listens on from a live one.
func TestRefuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	live := ln.Addr().String()
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := gone.Addr().String()
	gone.Close()
	defer ln.Close()
	got := refusing([]meta.Agent{{ID: "live", Addr: live}, {ID: "dead", Addr: dead}})
	if len(got) != 1 || got[0].ID != "dead" {
		t.Fatalf("refusing: %+v, want only the agent at the closed port", got)
	}
}

// TestHearing: silence is timed on this agent's clock from when it saw a
// member's newest entry change, whatever time the entry says.
func TestHearing(t *testing.T) {
	var h hearing
	t0 := time.Unix(1000, 0)
	skewed := meta.Agent{ID: "b", LastMs: 1} // its clock is far behind
	h.saw([]meta.Agent{skewed}, t0)
	if d := h.silence(t0.Add(time.Second))(skewed); d != time.Second {
		t.Fatalf("silence %v a second after it was first seen, want 1s", d)
	}
	skewed.LastMs = 2 // a new entry
	h.saw([]meta.Agent{skewed}, t0.Add(5*time.Second))
	if d := h.silence(t0.Add(6 * time.Second))(skewed); d != time.Second {
		t.Fatalf("silence %v a second after its newest entry was seen, want 1s", d)
	}
	h.saw(nil, t0.Add(7*time.Second))
	if len(h) != 0 {
		t.Fatal("a member that left is still remembered")
	}
}
