package e2e

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
)

// TestConsumeFromLaggingAgent: an agent that polls the metadata log every
// 30 s serves a consumer records another agent produced a moment ago: a
// fetch past its view's high watermark reads the log's tail first instead
// of answering OFFSET_OUT_OF_RANGE (which makes consumers reset), and
// OffsetForLeaderEpoch ends epoch 0 where the log does.
func TestConsumeFromLaggingAgent(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond)
	slow := startAgent(t, b, 5*time.Millisecond, "--meta-poll-interval=30s")
	createTopic(t, a.Addr, "lag", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prod := client(t, a.Addr, kgo.DefaultProduceTopic("lag"))
	cl := client(t, slow.Addr)
	broker := cl.Broker(int(nodeOf(ctx, t, cl, slow.Addr))) // requests to the lagging agent itself
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("lag")
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, client(t, a.Addr))
	if err != nil {
		t.Fatal(err)
	}
	id := mresp.Topics[0].TopicID

	next := int64(0)
	for round := range 5 {
		var recs []*kgo.Record
		for range 10 {
			recs = append(recs, &kgo.Record{Value: []byte("fresh")})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		from, end := next+5, next+10
		next = end
		// Each round asks the lagging agent one question right after the
		// other agent's produce, before anything made it read the tail.
		if round%2 == 0 {
			fetch := kmsg.NewPtrFetchRequest()
			fetch.MaxWaitMillis, fetch.MaxBytes = 100, 1<<20
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic, ft.TopicID = "lag", id
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = from, 1<<20, -1
			ft.Partitions = append(ft.Partitions, fp)
			fetch.Topics = append(fetch.Topics, ft)
			raw, err := broker.Request(ctx, fetch)
			if err != nil {
				t.Fatal(err)
			}
			p := raw.(*kmsg.FetchResponse).Topics[0].Partitions[0]
			if p.ErrorCode != 0 {
				t.Fatalf("round %d: fetch at %d from the lagging agent: %v", round, from, kerr.ErrorForCode(p.ErrorCode))
			}
			if n := countRecords(t, p.RecordBatches, from); p.HighWatermark != end || n != end-from {
				t.Fatalf("round %d: fetch at %d: high watermark %d, %d records from it; want %d and %d", round, from, p.HighWatermark, n, end, end-from)
			}
			continue
		}
		epoch := kmsg.NewPtrOffsetForLeaderEpochRequest()
		et := kmsg.NewOffsetForLeaderEpochRequestTopic()
		et.Topic = "lag"
		ep := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		ep.LeaderEpoch, ep.CurrentLeaderEpoch = 0, -1
		et.Partitions = append(et.Partitions, ep)
		epoch.Topics = append(epoch.Topics, et)
		raw, err := broker.Request(ctx, epoch)
		if err != nil {
			t.Fatal(err)
		}
		if e := raw.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]; e.ErrorCode != 0 || e.EndOffset != end {
			t.Fatalf("round %d: epoch 0 ends at %d (%v) on the lagging agent; the log ends at %d", round, e.EndOffset, kerr.ErrorForCode(e.ErrorCode), end)
		}
	}

	// A real consumer that refuses to reset reads all of it through the
	// lagging agent.
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("last")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	next++
	cons := client(t, slow.Addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"lag": {0: kgo.NewOffset().At(next - 1)}}),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()))
	for got := false; !got; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the consumer read nothing")
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("consumer: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { got = got || r.Offset == next-1 && string(r.Value) == "last" })
	}
}

// nodeOf returns the broker id that cl's cluster gives the agent at addr.
func nodeOf(ctx context.Context, t *testing.T, cl *kgo.Client, addr string) int32 {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range resp.Brokers {
		if b.Host == host && strconv.Itoa(int(b.Port)) == port {
			return b.NodeID
		}
	}
	t.Fatalf("no broker at %s in %+v", addr, resp.Brokers)
	return -1
}

// countRecords counts the records at or after offset from in a fetch's
// record batches.
func countRecords(t *testing.T, b []byte, from int64) int64 {
	t.Helper()
	n := int64(0)
	err := batch.Split(b, func(raw []byte, h batch.Header) error {
		recs, err := batch.Records(raw, 1<<20)
		for _, r := range recs {
			if h.BaseOffset+int64(r.OffsetDelta) >= from {
				n++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
