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
