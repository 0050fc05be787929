package fleet

import (
	"fmt"
	"testing"
	"time"
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
