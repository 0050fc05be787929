package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// sessionFetch sends one Fetch with the session fields and partitions
// given (partition → fetch offset), forgetting those in forget.
func sessionFetch(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, id [16]byte, session, epoch int32,
	parts map[int32]int64, forget ...int32) *kmsg.FetchResponse {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 50, 0, 50<<20
	req.SessionID, req.SessionEpoch = session, epoch
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, id
		for _, p := range slices.Sorted(maps.Keys(parts)) {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, parts[p], 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(forget) > 0 {
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic, ft.TopicID, ft.Partitions = topic, id, forget
		req.ForgottenTopics = append(req.ForgottenTopics, ft)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return resp
}

// answered returns the partitions an answer carries, with their record
// counts.
func answered(t *testing.T, resp *kmsg.FetchResponse) map[int32]int {
	t.Helper()
	out := map[int32]int{}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("partition %d: %v", p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
			n := 0
			for _, b := range batchesIn(t, p.RecordBatches) {
				n += int(b[1])
			}
			out[p.Partition] = n
		}
	}
	return out
}

// TestFetchSessions: KIP-227 incremental fetch sessions. A session starts
// with a full request and a whole answer; later requests name only what
// changed and answers carry only partitions with news; the session keeps
// fetch offsets, forgets partitions on request, and refuses a wrong epoch
// or an unknown id with Kafka's errors; epoch -1 closes it. A franz-go
// consumer (which uses sessions) then reads a topic whole.
func TestFetchSessions(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	createTopic(t, a.Addr, "sess", 3, nil)
	cl := client(t, a.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(p int32, n int) {
		for i := range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sess", Partition: p, Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 3)
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("sess")
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	id := mresp.Topics[0].TopicID

	// A new session: every partition answered, the id given out.
	resp := sessionFetch(ctx, t, cl, "sess", id, 0, 0, map[int32]int64{0: 0, 1: 0, 2: 0})
	if resp.ErrorCode != 0 || resp.SessionID == 0 {
		t.Fatalf("new session: error %d, id %d", resp.ErrorCode, resp.SessionID)
	}
	sid := resp.SessionID
	if got := answered(t, resp); len(got) != 3 || got[0] != 3 {
		t.Fatalf("first answer %v, want all three partitions, 3 records in 0", got)
	}
	// Partition 0 moves on; nothing is new anywhere: an empty answer.
	if got := answered(t, sessionFetch(ctx, t, cl, "sess", id, sid, 1, map[int32]int64{0: 3})); len(got) != 0 {
		t.Fatalf("answer with nothing new: %v", got)
	}
	// Records in partition 2, not named in the request: the session
	// remembers its offset.
	produce(2, 2)
	if got := answered(t, sessionFetch(ctx, t, cl, "sess", id, sid, 2, nil)); len(got) != 1 || got[2] != 2 {
		t.Fatalf("answer after producing to 2: %v, want only partition 2 with 2 records", got)
	}
	// Partition 2 forgotten, then fed: not answered.
	if got := answered(t, sessionFetch(ctx, t, cl, "sess", id, sid, 3, map[int32]int64{2: 2}, 2)); len(got) != 0 {
		t.Fatalf("answer forgetting 2: %v", got)
	}
	produce(2, 1)
	produce(1, 1)
	if got := answered(t, sessionFetch(ctx, t, cl, "sess", id, sid, 4, nil)); len(got) != 1 || got[1] != 1 {
		t.Fatalf("answer after forgetting 2: %v, want only partition 1", got)
	}
	// A stale epoch and an unknown session get Kafka's errors.
	if resp := sessionFetch(ctx, t, cl, "sess", id, sid, 4, nil); resp.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("repeated epoch: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp := sessionFetch(ctx, t, cl, "sess", id, sid+1000, 1, nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	// Epoch -1 closes the session: a sessionless, whole answer.
	resp = sessionFetch(ctx, t, cl, "sess", id, sid, -1, map[int32]int64{0: 0, 1: 0})
	if resp.SessionID != 0 || len(answered(t, resp)) != 2 {
		t.Fatalf("closing: session %d, partitions %v", resp.SessionID, answered(t, resp))
	}
	if resp := sessionFetch(ctx, t, cl, "sess", id, sid, 5, nil); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session: %v", kerr.ErrorForCode(resp.ErrorCode))
	}

	// franz-go keeps a session: after its first answer, records produced
	// later reach it through incremental fetches.
	before := scrape(t, a.HTTPAddr)["barge_fetch_session_requests_total"]
	consumer := client(t, a.Addr, kgo.ConsumeTopics("sess"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[int32][]int64{}
	consume := func(want int) {
		for n := 0; n < want; {
			fs := consumer.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("franz-go read %d of %d records", n, want)
			}
			fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch %d: %v", p, err) })
			fs.EachRecord(func(r *kgo.Record) {
				if want := int64(len(seen[r.Partition])); r.Offset != want {
					t.Fatalf("%d: offset %d where %d was next", r.Partition, r.Offset, want)
				}
				seen[r.Partition] = append(seen[r.Partition], r.Offset)
				n++
			})
		}
	}
	consume(7)
	produce(1, 2)
	produce(0, 1)
	consume(3)
	if len(seen[0]) != 4 || len(seen[1]) != 3 || len(seen[2]) != 3 {
		t.Fatalf("franz-go read %v", seen)
	}
	if after := scrape(t, a.HTTPAddr)["barge_fetch_session_requests_total"]; after <= before {
		t.Errorf("franz-go made no incremental fetch (%v before, %v after)", before, after)
	}
}
