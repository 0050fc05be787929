package fleet

import (
	"reflect"
	"testing"

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

	// a goes silent; b and c keep heartbeating.
	apply("b", 5000, meta.AgentHeartbeat{Addr: "h2:1"})
	apply("c", 5000, meta.AgentHeartbeat{Addr: "h3:1"})
	if ops := expiries(st, "b", ttl); ops != nil {
		t.Fatalf("expired at the TTL, not after it: %v", ops)
	}
	now := ttl + 1
	want := []meta.Op{meta.ExpireAgent{ID: "a", LastMs: 0}}
	if ops := expiries(st, "b", now); !reflect.DeepEqual(ops, want) {
		t.Fatalf("b, the lowest live node, writes %v, want %v", ops, want)
	}
	if ops := expiries(st, "c", now); ops != nil {
		t.Fatalf("c writes %v before the grace for b is over", ops)
	}
	if ops := expiries(st, "c", ttl+hb+1); !reflect.DeepEqual(ops, want) {
		t.Fatalf("c writes %v once b has had a heartbeat interval, want %v", ops, want)
	}
	if ops := expiries(st, "a", now); ops != nil {
		t.Fatalf("the silent agent expires itself: %v", ops)
	}
	apply("b", now, want...)
	if epoch := st.MembershipEpoch(); epoch != 2 || len(st.Members()) != 2 {
		t.Fatalf("after the expiry: epoch %d, %d members", epoch, len(st.Members()))
	}
	if ops := expiries(st, "b", now+1); ops != nil {
		t.Fatalf("an expired agent is expired again: %v", ops)
	}
}
