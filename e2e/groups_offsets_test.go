package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// TestGroupOffsetsRetention: the offsets of a group without members expire
// after offsets.retention (--offsets-retention); a group with a member
// keeps them however old.
func TestGroupOffsetsRetention(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0, "--group-initial-rebalance-delay", "50ms",
		"--offsets-retention", "2s", "--offsets-retention-check-interval", "100ms")
	createTopic(t, a.Addr, "ret", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := client(t, a.Addr, kgo.DefaultProduceTopic("ret"))
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("a")}, &kgo.Record{Value: []byte("b")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// "live": a member that commits once and then stays, idle.
	var got atomic.Int64
	m := startMember(t, a.Addr, "live", "ret", func(*kgo.Record) { got.Add(1) }, kgo.DisableAutoCommit())
	harness.Eventually(t, time.Minute, func() bool { return got.Load() == 2 }, "the member never read its records")
	if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	// "old": offsets committed from outside group management, no members.
	adm := kadm.NewClient(client(t, a.Addr))
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: "ret", Partition: 0, At: 1, LeaderEpoch: -1, Metadata: "resume here"})
	if resp, err := adm.CommitOffsets(ctx, "old", os); err != nil || resp.Error() != nil {
		t.Fatalf("commit for old: %v %v", err, resp.Error())
	}
	// Commit metadata round-trips.
	if offs, err := adm.FetchOffsets(ctx, "old"); err != nil {
		t.Fatal(err)
	} else if o, ok := offs.Lookup("ret", 0); !ok || o.At != 1 || o.Metadata != "resume here" {
		t.Fatalf("committed %+v, want offset 1 with its metadata", o)
	}

	harness.Eventually(t, time.Minute, func() bool {
		offs, err := adm.FetchOffsets(ctx, "old")
		_, ok := offs.Lookup("ret", 0)
		return err == nil && !ok
	}, "the member-less group's offsets never expired")
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed["old"]; ok {
		t.Error("the expired group is still listed")
	}
	offs, err := adm.FetchOffsets(ctx, "live")
	if o, ok := offs.Lookup("ret", 0); err != nil || !ok || o.At != 2 {
		t.Fatalf("the group with a member lost its offsets: %v %+v", err, o)
	}
}

// TestGroupCommitsCoalesce: many groups committing at once share log
// entries instead of costing one bucket write per commit.
func TestGroupCommitsCoalesce(t *testing.T) {
	b := harness.FileBackend(t)
	a := startAgent(t, b, 0)
	createTopic(t, a.Addr, "co", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := len(b.List(t, "meta/log/"))
	const groups, rounds = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, groups*rounds)
	for g := 0; g < groups; g++ {
		cl := client(t, a.Addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				req := kmsg.NewPtrOffsetCommitRequest()
				req.Group, req.Generation = fmt.Sprint("co-", g), -1
				req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "co", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: int64(r), LeaderEpoch: -1}}}}
				resp, err := req.RequestWith(ctx, cl)
				if err == nil {
					err = kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries := len(b.List(t, "meta/log/")) - before
	t.Logf("%d commits in %d log entries", groups*rounds, entries)
	if entries >= groups*rounds*3/4 {
		t.Fatalf("%d commits took %d log entries: commits are not coalesced", groups*rounds, entries)
	}
}

// TestGroupOversizedMetadata: a JoinGroup whose protocol metadata exceeds
// 1 MiB is refused with INVALID_REQUEST, and the group is unharmed.
func TestGroupOversizedMetadata(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "big", "consumer", 10000, 10000
	join.MemberID = "m"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: make([]byte, 2<<20)}}
	resp, err := join.RequestWith(ctx, client(t, a.Addr))
	if err != nil || resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("oversized JoinGroup: %v %v, want INVALID_REQUEST", err, kerr.ErrorForCode(resp.ErrorCode))
	}
}
