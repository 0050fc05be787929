package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// TestGroupsAcrossAgents: two agents on one bucket see each other as
// brokers, agree on every group's coordinator, answer NOT_COORDINATOR for
// the groups the other coordinates, and a consumer bootstrapped to the
// wrong agent follows FindCoordinator to the right one.
func TestGroupsAcrossAgents(t *testing.T) {
	b := harness.MinIOBackend(t)
	args := []string{"--group-initial-rebalance-delay", "100ms"}
	a := startAgent(t, b, 0, args...)
	c := startAgent(t, b, 0, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ca, cc := client(t, a.Addr), client(t, c.Addr)

	// Each lists both agents as brokers.
	nodeOf := map[string]int32{}
	harness.Eventually(t, time.Minute, func() bool {
		for _, cl := range []*kgo.Client{ca, cc} {
			resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
			if err != nil || len(resp.Brokers) != 2 {
				return false
			}
			for _, br := range resp.Brokers {
				nodeOf[fmt.Sprintf("%s:%d", br.Host, br.Port)] = br.NodeID
			}
		}
		return len(nodeOf) == 2
	}, "the agents never listed each other as brokers")
	if nodeOf[a.Addr] == nodeOf[c.Addr] {
		t.Fatalf("both agents have node id %d", nodeOf[a.Addr])
	}

	// Both name the same coordinator for every group, and both coordinate some.
	owner := map[string]int32{}
	count := map[int32]int{}
	for _, cl := range []*kgo.Client{ca, cc} {
		req := kmsg.NewPtrFindCoordinatorRequest()
		for i := 0; i < 20; i++ {
			req.CoordinatorKeys = append(req.CoordinatorKeys, fmt.Sprint("g", i))
		}
		for _, node := range []int32{nodeOf[a.Addr], nodeOf[c.Addr]} {
			resp, err := req.RequestWith(ctx, cl.Broker(int(node)))
			if err != nil {
				t.Fatal(err)
			}
			for _, co := range resp.Coordinators {
				if co.ErrorCode != 0 {
					t.Fatalf("FindCoordinator %s: %v", co.Key, kerr.ErrorForCode(co.ErrorCode))
				}
				if prev, ok := owner[co.Key]; ok && prev != co.NodeID {
					t.Fatalf("group %s: coordinators %d and %d", co.Key, prev, co.NodeID)
				}
				if _, ok := owner[co.Key]; !ok {
					count[co.NodeID]++
				}
				owner[co.Key] = co.NodeID
			}
		}
	}
	if count[nodeOf[a.Addr]] == 0 || count[nodeOf[c.Addr]] == 0 {
		t.Fatalf("one agent coordinates every group: %v", count)
	}

	// The other agent answers NOT_COORDINATOR.
	var group string
	for g, n := range owner {
		if n == nodeOf[a.Addr] {
			group = g
			break
		}
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = group, "consumer", 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0, 0, 0, 0, 0, 0, 0}}}
	if resp, err := join.RequestWith(ctx, cc.Broker(int(nodeOf[c.Addr]))); err != nil || resp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("JoinGroup %s at the other agent: %v %v, want NOT_COORDINATOR", group, err, errCode(resp))
	}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = group, -1
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "x", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	createTopic(t, a.Addr, "x", 1, nil)
	harness.Eventually(t, time.Minute, func() bool {
		resp, err := commit.RequestWith(ctx, cc.Broker(int(nodeOf[c.Addr])))
		return err == nil && resp.Topics[0].Partitions[0].ErrorCode == kerr.NotCoordinator.Code
	}, "OffsetCommit for %s at the other agent never answered NOT_COORDINATOR", group)

	// A group consumer bootstrapped to the other agent still works, and its
	// commits are what the coordinator reports.
	createTopic(t, a.Addr, "shared", 4, nil)
	p := client(t, c.Addr, kgo.DefaultProduceTopic("shared"))
	const n = 2000
	for i := 0; i < n; i += 100 {
		recs := make([]*kgo.Record, 100)
		for j := range recs {
			recs[j] = &kgo.Record{Key: fmt.Append(nil, i+j), Value: fmt.Append(nil, i+j)}
		}
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var got atomic.Int64
	startMember(t, c.Addr, group, "shared", func(*kgo.Record) { got.Add(1) })
	harness.Eventually(t, 2*time.Minute, func() bool {
		return got.Load() >= n && committedAtEnd(t, a.Addr, group, "shared")
	}, "group %s consumed %d of %d records through the other agent", group, got.Load(), n)
}

func errCode(r *kmsg.JoinGroupResponse) error {
	if r == nil {
		return nil
	}
	return kerr.ErrorForCode(r.ErrorCode)
}
