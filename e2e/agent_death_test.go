package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/fleet"
)

// brokersOf returns the brokers agent addr lists in Metadata, address →
// node id, or nil if it does not answer.
func brokersOf(ctx context.Context, cl *kgo.Client) map[string]int32 {
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		return nil
	}
	out := map[string]int32{}
	for _, br := range resp.Brokers {
		out[fmt.Sprintf("%s:%d", br.Host, br.Port)] = br.NodeID
	}
	return out
}

// TestAgentDeathMovesGroups: of two agents on one bucket, the one
// coordinating a group is killed (SIGKILL, no departure written). Once it
// has been silent for the liveness TTL (10 s, README "brokers"; not a
// flag) the survivor drops it from Metadata's brokers, names itself the
// group's coordinator, and serves the group: a new member joining through
// it starts at the offset committed through the dead coordinator.
func TestAgentDeathMovesGroups(t *testing.T) {
	b := harness.FileBackend(t)
	args := []string{"--group-initial-rebalance-delay=100ms"}
	victim, survivor := startAgent(t, b, 0, args...), startAgent(t, b, 0, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Metadata requests go to the one seed: the survivor's own view.
	view := client(t, survivor.Addr)
	var nodes map[string]int32
	harness.Eventually(t, time.Minute, func() bool {
		nodes = brokersOf(ctx, view)
		return len(nodes) == 2
	}, "the survivor never listed both agents: %v", &nodes)

	// A group the victim coordinates, as every agent computes it.
	var group string
	for i := 0; group == ""; i++ {
		if g := fmt.Sprint("dying-", i); fleet.Rendezvous(g, []string{victim.Addr, survivor.Addr}) == victim.Addr {
			group = g
		}
	}
	findCoordinator := func() (int32, error) {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey, req.CoordinatorKeys = group, []string{group}
		resp, err := req.RequestWith(ctx, view.Broker(int(nodes[survivor.Addr])))
		if err != nil {
			return -1, err
		}
		if len(resp.Coordinators) == 1 {
			c := resp.Coordinators[0]
			return c.NodeID, kerr.ErrorForCode(c.ErrorCode)
		}
		return resp.NodeID, kerr.ErrorForCode(resp.ErrorCode)
	}
	if n, err := findCoordinator(); err != nil || n != nodes[victim.Addr] {
		t.Fatalf("before the kill the survivor names node %d (%v) for %s, want the victim's %d", n, err, group, nodes[victim.Addr])
	}

	const committed = 4
	createTopic(t, survivor.Addr, "dying", 1, nil)
	p := client(t, survivor.Addr, kgo.DefaultProduceTopic("dying"))
	for i := range 10 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: fmt.Append(nil, i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "dying", Partition: 0, At: committed, LeaderEpoch: -1})
	if resp, err := kadm.NewClient(client(t, victim.Addr)).CommitOffsets(ctx, group, offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit through the coordinator: %v %v", err, resp.Error())
	}

	victim.Kill()
	harness.Eventually(t, time.Minute, func() bool {
		nodes := brokersOf(ctx, view)
		_, alive := nodes[victim.Addr]
		return len(nodes) == 1 && !alive
	}, "the killed agent never left the survivor's Metadata")
	if n, err := findCoordinator(); err != nil || n != nodes[survivor.Addr] {
		t.Fatalf("after the TTL the survivor names node %d (%v) for %s, want itself (%d)", n, err, group, nodes[survivor.Addr])
	}

	// Offsets committed through the dead coordinator are the survivor's
	// to serve, and a member joining through it resumes from them.
	got, err := kadm.NewClient(client(t, survivor.Addr)).FetchOffsets(ctx, group)
	if o, ok := got.Lookup("dying", 0); err != nil || !ok || o.At != committed {
		t.Fatalf("offsets of %s through the survivor: %+v %v, want %d", group, o, err, committed)
	}
	first := make(chan int64, 1)
	startMember(t, survivor.Addr, group, "dying", func(r *kgo.Record) {
		select {
		case first <- r.Offset:
		default:
		}
	})
	select {
	case off := <-first:
		if off != committed {
			t.Fatalf("the member's first record is offset %d, want the committed %d", off, committed)
		}
	case <-ctx.Done():
		t.Fatal("no member of the group consumed through the survivor")
	}
}
