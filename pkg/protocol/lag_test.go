package protocol

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// laggingServer returns a Server whose log polls once an hour, and a log
// of another agent on the same bucket that the test writes through.
func laggingServer(t *testing.T, store objstore.Store) (*Server, *meta.Log) {
	t.Helper()
	open := func(writer string, poll time.Duration) *meta.Log {
		l, err := meta.Open(context.Background(), store, meta.Options{WriterID: writer, PollInterval: poll})
		if err != nil {
			t.Fatal(err)
		}
		runLog(t, l)
		return l
	}
	lagging := open("lagging", time.Hour)
	other := open("other", 5*time.Millisecond)
	return New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, lagging, nil, nil, nil), other
}

// runLog runs l until the test ends.
func runLog(t *testing.T, l *meta.Log) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func appendOps(t *testing.T, l *meta.Log, ops ...meta.Op) {
	t.Helper()
	if _, err := l.Append(context.Background(), ops...); err != nil {
		t.Fatal(err)
	}
}

var lagTopic = meta.TopicID{7}

// A coordinator whose view lags (it may have just become the group's
// coordinator) answers OffsetFetch with what the group committed through
// the agent that coordinated it before, not with "no commit".
func TestOffsetFetchReadsTheTail(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMemory())
	s, other := laggingServer(t, store)
	appendOps(t, other, meta.CreateTopic{Name: "t", ID: lagTopic, Partitions: 1},
		meta.CommitOffsets{Group: "g", Generation: -1, Offsets: []meta.GroupOffset{{Topic: lagTopic, Offset: 42}}})
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = "g"
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic, rt.Partitions = "t", []int32{0}
	rg.Topics = append(rg.Topics, rt)
	req.Groups = append(req.Groups, rg)

	resp := handleOffsetFetch(context.Background(), s, req).(*kmsg.OffsetFetchResponse)
	g := resp.Groups[0]
	if g.ErrorCode != 0 || len(g.Topics) != 1 || g.Topics[0].Partitions[0].Offset != 42 {
		t.Fatalf("OffsetFetch from a lagging coordinator: %+v, want offset 42", g)
	}

	// A coordinator that cannot read the tail says it is still loading.
	store.FailAll(objstore.OpGet)
	resp = handleOffsetFetch(context.Background(), s, req).(*kmsg.OffsetFetchResponse)
	if code := resp.Groups[0].ErrorCode; code != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("OffsetFetch without the tail: %v, want COORDINATOR_LOAD_IN_PROGRESS", kerr.ErrorForCode(code))
	}
}

// OffsetForLeaderEpoch from a lagging agent ends epoch 0 where the log
// does, not where the agent's view does: an end below a consumer's
// position reads as truncation.
func TestOffsetForLeaderEpochReadsTheTail(t *testing.T) {
	store := objstore.NewFaulty(objstore.NewMemory())
	s, other := laggingServer(t, store)
	appendOps(t, other, meta.CreateTopic{Name: "t", ID: lagTopic, Partitions: 1},
		meta.Commit{Object: "seg/x", Size: 100, Parts: []meta.CommitPart{{Topic: lagTopic,
			Batches: []meta.CommitBatch{{Pos: 0, Len: 100, Records: 10, ProducerID: -1}}}}})
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.LeaderEpoch, rp.CurrentLeaderEpoch = 0, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	p := handleOffsetForLeaderEpoch(context.Background(), s, req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 || p.EndOffset != 10 {
		t.Fatalf("epoch 0 from a lagging agent: %v, end offset %d; want 10", kerr.ErrorForCode(p.ErrorCode), p.EndOffset)
	}
	store.FailAll(objstore.OpGet)
	p = handleOffsetForLeaderEpoch(context.Background(), s, req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	if p.ErrorCode != kerr.KafkaStorageError.Code {
		t.Fatalf("without the tail: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(p.ErrorCode))
	}
}
