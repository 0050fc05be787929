package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
)

// TestGroupProtocolErrors drives the group APIs by hand and checks Kafka's
// codes: empty group id, MEMBER_ID_REQUIRED, protocol type mismatch,
// unknown member, wrong generation, and an offset commit of a stale
// generation that reaches the metadata log from another writer (a stale
// coordinator) and is rejected there with ILLEGAL_GENERATION.
func TestGroupProtocolErrors(t *testing.T) {
	b := harness.FileBackend(t)
	a := startAgent(t, b, 0, "--group-initial-rebalance-delay", "20ms")
	createTopic(t, a.Addr, "gt", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := client(t, a.Addr).Broker(0) // straight to the agent: no coordinator lookup
	code := func(what string, got int16, want *kerr.Error) {
		t.Helper()
		if want == nil && got != 0 || want != nil && got != want.Code {
			t.Fatalf("%s: %v, want %v", what, kerr.ErrorForCode(got), want)
		}
	}
	join := func(group, member, ptype string) *kmsg.JoinGroupResponse {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, member, ptype
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10_000, 10_000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 1}
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("JoinGroup: %v", err)
		}
		return resp
	}

	// Empty group ids.
	code("join with empty group id", join("", "", "consumer").ErrorCode, kerr.InvalidGroupID)
	hb := kmsg.NewPtrHeartbeatRequest()
	if r, err := hb.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	} else {
		code("heartbeat with empty group id", r.ErrorCode, kerr.InvalidGroupID)
	}

	// A new member gets its id first, then joins and leads generation 1.
	r := join("g", "", "consumer")
	code("first join", r.ErrorCode, kerr.MemberIDRequired)
	member := r.MemberID
	if member == "" {
		t.Fatal("MEMBER_ID_REQUIRED without a member id")
	}
	r = join("g", member, "consumer")
	code("second join", r.ErrorCode, nil)
	if r.Generation != 1 || r.LeaderID != member || len(r.Members) != 1 {
		t.Fatalf("join answer %+v, want generation 1 led by %s", r, member)
	}
	gen := r.Generation

	// Another protocol type is refused while the group has members.
	code("join with another protocol type", join("g", "", "connect").ErrorCode, kerr.InconsistentGroupProtocol)

	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = "g", member, gen
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: []byte("mine")}}
	if sr, err := sync.RequestWith(ctx, cl); err != nil || sr.ErrorCode != 0 || string(sr.MemberAssignment) != "mine" {
		t.Fatalf("SyncGroup: %v %+v", err, sr)
	}

	heartbeat := func(what string) int16 {
		t.Helper()
		hr, err := hb.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return hr.ErrorCode
	}
	hb.Group, hb.MemberID, hb.Generation = "g", "nobody", gen
	code("heartbeat of an unknown member", heartbeat("heartbeat of an unknown member"), kerr.UnknownMemberID)
	hb.MemberID, hb.Generation = member, gen+1
	code("heartbeat of a wrong generation", heartbeat("heartbeat of a wrong generation"), kerr.IllegalGeneration)
	hb.Generation = gen
	code("heartbeat", heartbeat("heartbeat"), nil)

	commit := func(member string, gen int32, offset int64) int16 {
		t.Helper()
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = "g", member, gen
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "gt"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 1, offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("OffsetCommit: %v", err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	code("commit of an unknown member", commit("nobody", gen, 5), kerr.UnknownMemberID)
	code("commit of a wrong generation", commit(member, gen+1, 5), kerr.IllegalGeneration)
	code("simple commit to a group with members", commit("", -1, 5), kerr.UnknownMemberID)
	code("commit", commit(member, gen, 42), nil)
	if got := fetchOffset(t, ctx, a.Addr, "g", "gt", 1); got != 42 {
		t.Fatalf("committed offset %d, want 42", got)
	}

	// A stale coordinator: another writer on the same bucket appends a
	// commit of generation 0 directly. The log rejects it.
	other, err := meta.Open(ctx, b.Open(t), meta.Options{WriterID: "stale-coordinator"})
	if err != nil {
		t.Fatal(err)
	}
	logCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { other.Run(logCtx); close(done) }()
	defer func() { stop(); <-done }()
	var id meta.TopicID
	other.View(func(st *meta.State) { id = st.Topic("gt").ID })
	res, err := other.Append(ctx,
		meta.CommitOffsets{Group: "g", Generation: gen - 1, Member: "old", Offsets: []meta.GroupOffset{{Topic: id, Partition: 1, Offset: 7}}},
		meta.CommitOffsets{Group: "g", Generation: gen + 1, Member: "ahead", Offsets: []meta.GroupOffset{{Topic: id, Partition: 1, Offset: 8}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != meta.ErrIllegalGeneration {
			t.Fatalf("stale commit %d reached the log with %v, want ErrIllegalGeneration", i, r.Err)
		}
	}
	// The agent applied the same entry (it tails the log) and kept 42.
	harness.Eventually(t, 30*time.Second, func() bool {
		code("commit after the stale entry", commit(member, gen, 43), nil)
		return fetchOffset(t, ctx, a.Addr, "g", "gt", 1) == 43
	}, "commit after the stale entry")

	// Leaving empties the group; DeleteGroups then works, once.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}, {MemberID: "nobody"}}
	lr, err := leave.RequestWith(ctx, cl)
	if err != nil || lr.ErrorCode != 0 || lr.Members[0].ErrorCode != 0 || lr.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("LeaveGroup: %v %+v", err, lr)
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g", "g", "missing"}
	dr, err := del.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	code("delete g", dr.Groups[0].ErrorCode, nil)
	code("delete g again", dr.Groups[1].ErrorCode, kerr.GroupIDNotFound)
	code("delete missing", dr.Groups[2].ErrorCode, kerr.GroupIDNotFound)
	if got := fetchOffset(t, ctx, a.Addr, "g", "gt", 1); got != -1 {
		t.Fatalf("offset %d after DeleteGroups, want -1", got)
	}
}

// fetchOffset returns a group's committed offset of one partition, -1 for none.
func fetchOffset(t *testing.T, ctx context.Context, addr, group, topic string, partition int32) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{partition}}}
	req.Groups = append(req.Groups, rg)
	resp, err := req.RequestWith(ctx, client(t, addr).Broker(0))
	if err != nil || len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != 0 {
		t.Fatalf("OffsetFetch: %v %+v", err, resp)
	}
	return resp.Groups[0].Topics[0].Partitions[0].Offset
}
