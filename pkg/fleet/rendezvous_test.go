package fleet

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/meta"
)

func TestRendezvous(t *testing.T) {
	agents := []string{"a", "b", "c", "d"}
	owners := map[string]string{}
	count := map[string]int{}
	for i := 0; i < 4000; i++ {
		g := fmt.Sprint("group-", i)
		owners[g] = Rendezvous(g, agents)
		count[owners[g]]++
		if again := Rendezvous(g, []string{"d", "c", "b", "a"}); again != owners[g] {
			t.Fatalf("%s: owner depends on candidate order: %s vs %s", g, owners[g], again)
		}
	}
	for _, a := range agents {
		if count[a] < 800 || count[a] > 1200 {
			t.Errorf("agent %s owns %d of 4000 groups; want about 1000", a, count[a])
		}
	}
	// Removing an agent moves only its own groups.
	for g, owner := range owners {
		if now := Rendezvous(g, []string{"a", "b", "d"}); owner != "c" && now != owner {
			t.Fatalf("%s moved from %s to %s when c left", g, owner, now)
		}
	}
	if Rendezvous("g", nil) != "" {
		t.Fatal("no candidates must give no owner")
	}
}

func TestCheck(t *testing.T) {
	if err := Check(TTL, HeartbeatInterval); err != nil {
		t.Fatalf("the built-in timing: %v", err)
	}
	for _, c := range [][2]time.Duration{{5 * time.Second, 3 * time.Second}, {time.Second, 0}} {
		if Check(c[0], c[1]) == nil {
			t.Errorf("TTL %v with heartbeats every %v accepted: one missed heartbeat would drop a healthy agent", c[0], c[1])
		}
	}
}

func TestClientZone(t *testing.T) {
	for id, want := range map[string]string{
		"":                           "",
		"app":                        "",
		"barge_az=use1-az1":          "use1-az1",
		"app,barge_az=eu-west-1b":    "eu-west-1b",
		"app-barge_az=b;host=x":      "b",
		"barge_az=a rest of the id":  "a",
		"warpstream_az=a,barge_az=c": "c",
	} {
		if got := ClientZone(id); got != want {
			t.Errorf("ClientZone(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestPlacementInZone(t *testing.T) {
	p := Placement{live: []Member{{NodeID: 0, Host: "a", Port: 1, Zone: "z1"}, {NodeID: 1, Host: "b", Port: 1, Zone: "z2"}, {NodeID: 2, Host: "c", Port: 1, Zone: "z1"}}}
	for _, m := range p.live {
		p.addrs = append(p.addrs, m.Addr())
	}
	seen := map[int32]bool{}
	for i := range int32(64) {
		l := p.InZone("z1").Leader([16]byte{1}, i)
		if l.Zone != "z1" {
			t.Fatalf("partition %d: leader %+v outside z1", i, l)
		}
		seen[l.NodeID] = true
		if all := p.InZone("nowhere").Leader([16]byte{1}, i); all != p.Leader([16]byte{1}, i) {
			t.Fatalf("partition %d: a zone with no agent gives %+v, all agents %+v", i, all, p.Leader([16]byte{1}, i))
		}
	}
	if len(seen) != 2 {
		t.Fatalf("z1's partitions led by %v, want both z1 agents", seen)
	}
}

// Agents that share an advertised address are one broker to clients, the
// one of lowest node id there, whichever of them answers; every partition
// and group they own is named by that broker. Agents of their own address
// stay brokers of their own.
func TestPlacementSharedAddress(t *testing.T) {
	live := []Member{
		{NodeID: 4, Host: "lb", Port: 9092, Peer: "10.0.0.4:9092"}, // this agent
		{NodeID: 1, Host: "lb", Port: 9092, Peer: "10.0.0.1:9092"},
		{NodeID: 2, Host: "lb", Port: 9092, Peer: "10.0.0.2:9092"},
		{NodeID: 3, Host: "own", Port: 9092, Peer: "own:9092"},
	}
	p := placementOf(live)
	brokers := p.Brokers()
	if len(brokers) != 2 || brokers[0].NodeID != 1 || brokers[1].NodeID != 3 {
		t.Fatalf("brokers %+v, want node 1 (lb, this agent's broker) first, then node 3", brokers)
	}
	owners := map[string]bool{}
	for i := range 200 {
		key := strconv.Itoa(i)
		owners[p.Owner(key).Peer] = true
		if l := p.Leader(meta.TopicID{byte(i)}, 0).NodeID; l != 1 && l != 3 {
			t.Fatalf("partition led by node %d, not a broker clients know", l)
		}
	}
	if len(owners) != len(live) {
		t.Fatalf("keys owned by %d agents, want all %d: agents behind one address still share the work", len(owners), len(live))
	}
	if !live[0].SharesAddr(live[1]) || live[0].SharesAddr(live[0]) || live[0].SharesAddr(live[3]) {
		t.Fatal("SharesAddr")
	}
}

// TestJobOwner: jobs go only to agents that run them, groups to all.
func TestJobOwner(t *testing.T) {
	self := Member{NodeID: 0, Host: "a", Port: 1, Peer: "a:1"}
	off := Member{NodeID: 1, Host: "b", Port: 1, Peer: "b:1", NoJobs: true}
	other := Member{NodeID: 2, Host: "c", Port: 1, Peer: "c:1"}
	p := placementOf([]Member{self, off, other})
	jobs, groups := map[string]int{}, map[string]int{}
	for i := range 300 {
		key := fmt.Sprint("retention/t-", i)
		jobs[p.JobOwner(key).Peer]++
		groups[p.Owner(key).Peer]++
	}
	if jobs[off.Peer] != 0 || jobs[self.Peer] == 0 || jobs[other.Peer] == 0 {
		t.Fatalf("jobs placed %v: want none on the --jobs=false agent, some on each other", jobs)
	}
	if groups[off.Peer] == 0 {
		t.Fatalf("groups placed %v: the --jobs=false agent still coordinates its share", groups)
	}
	// With no other runner, this agent (which asks only because it runs
	// jobs) runs them all.
	alone := placementOf([]Member{self, off})
	for i := range 50 {
		if o := alone.JobOwner(fmt.Sprint("collect-", i)); o.Peer != self.Peer {
			t.Fatalf("job placed on %s, want this agent, the only runner", o.Peer)
		}
	}
}
