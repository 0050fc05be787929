package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/fleet"
)

// TestDepartureMovesGroupsAtOnce: an agent stopped with SIGTERM records
// its departure in the metadata log, so the other agent drops it from
// Metadata and takes over its groups as soon as it has read that entry,
// not after the liveness TTL as for a killed agent (TestAgentDeathMovesGroups).
func TestDepartureMovesGroupsAtOnce(t *testing.T) {
	b := harness.FileBackend(t)
	leaving, staying := startAgent(t, b, 0), startAgent(t, b, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	view := client(t, staying.Addr)
	var nodes map[string]int32
	harness.Eventually(t, time.Minute, func() bool {
		nodes = brokersOf(ctx, view)
		return len(nodes) == 2
	}, "the staying agent never listed both agents: %v", &nodes)
	var group string
	for i := 0; group == ""; i++ {
		if g := fmt.Sprint("leaving-", i); fleet.Rendezvous(g, []string{leaving.Addr, staying.Addr}) == leaving.Addr {
			group = g
		}
	}
	coordinator := func() int32 {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorKeys = group, []string{group}
		resp, err := req.RequestWith(ctx, view.Broker(int(nodes[staying.Addr])))
		if err != nil || len(resp.Coordinators) != 1 || resp.Coordinators[0].ErrorCode != 0 {
			t.Fatalf("FindCoordinator %s: %v %v", group, err, resp)
		}
		return resp.Coordinators[0].NodeID
	}
	if n := coordinator(); n != nodes[leaving.Addr] {
		t.Fatalf("the staying agent names node %d for %s, want the leaving one's %d", n, group, nodes[leaving.Addr])
	}

	if err := leaving.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// The departure is the newest entry in the bucket once the agent
	// has exited; wait until the staying agent has applied it.
	keys := b.List(t, "meta/log/")
	last, err := strconv.ParseUint(strings.TrimPrefix(keys[len(keys)-1], "meta/log/"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, func() bool {
		return scrape(t, staying.HTTPAddr)["barge_meta_applied_slot"] >= float64(last)
	}, "the staying agent never read the departure (slot %d)", last)
	got, n := brokersOf(ctx, view), coordinator()
	if waited := time.Since(stopped); waited >= fleet.TTL {
		t.Fatalf("reading one entry took %v, the liveness TTL: the check cannot tell a departure from silence", waited)
	}
	if _, ok := got[staying.Addr]; len(got) != 1 || !ok || n != nodes[staying.Addr] {
		t.Fatalf("once the departure is read: brokers %v and coordinator %d for %s, want only %s (node %d)", got, n, group, staying.Addr, nodes[staying.Addr])
	}
}
