package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
)

// metadataFor sends a Metadata request naming topics (nil: all topics).
func metadataFor(ctx context.Context, t *testing.T, cl *kgo.Client, allowCreate bool, topics ...string) *kmsg.MetadataResponse {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = allowCreate
	for _, n := range topics {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, mt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	return resp
}

// topicPartitions lists every topic the agent knows with its partition
// count, from a Metadata request for all topics.
func topicPartitions(ctx context.Context, t *testing.T, cl *kgo.Client) map[string]int { // of the user's topics
	t.Helper()
	out := map[string]int{}
	for _, mt := range metadataFor(ctx, t, cl, false).Topics {
		if !mt.IsInternal { // __consumer_offsets and __transaction_state are always there
			out[*mt.Topic] = len(mt.Partitions)
		}
	}
	return out
}

// TestAutoCreateTopics: --auto-create-topics (auto.create.topics.enable) and
// --default-partitions (num.partitions). With auto-creation on, a Metadata
// request that allows it (v4+), or any Metadata v1–v3 (which has no such
// flag), creates an unknown topic with --default-partitions partitions and
// answers with it; one that does not allow it gets
// UNKNOWN_TOPIC_OR_PARTITION. A Produce to an unknown topic creates nothing
// and gets UNKNOWN_TOPIC_OR_PARTITION, as in Kafka (clients create through
// Metadata first). With auto-creation off, nothing is created and every
// Metadata request naming an unknown topic gets UNKNOWN_TOPIC_OR_PARTITION.
func TestAutoCreateTopics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	on := startAgent(t, harness.FileBackend(t), 0, "--default-partitions=3")
	off := startAgent(t, harness.FileBackend(t), 0, "--auto-create-topics=false", "--default-partitions=3")

	// metadataV3 asks on a raw connection with Metadata v3, which carries
	// no AllowAutoTopicCreation.
	metadataV3 := func(addr, topic string) kmsg.MetadataResponseTopic {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 3
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, mt)
		c := dialRaw(t, addr)
		resp := answer(t, req, c.roundTrip(t, []kmsg.Request{req})[0]).(*kmsg.MetadataResponse)
		if len(resp.Topics) != 1 {
			t.Fatalf("Metadata v3 for %s: %d topics answered", topic, len(resp.Topics))
		}
		return resp.Topics[0]
	}
	produceUnknown := func(addr, topic string) int16 {
		t.Helper()
		req := ackedProduce(t, topic, -1, "v")
		c := dialRaw(t, addr)
		return answer(t, req, c.roundTrip(t, []kmsg.Request{req})[0]).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}

	t.Run("on", func(t *testing.T) {
		cl := client(t, on.Addr)
		resp := metadataFor(ctx, t, cl, true, "made")
		if mt := resp.Topics[0]; mt.ErrorCode != 0 || len(mt.Partitions) != 3 {
			t.Errorf("Metadata allowing creation: %v with %d partitions, want the new topic with 3", kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions))
		}
		if mt := metadataFor(ctx, t, cl, false, "not-made").Topics[0]; mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("Metadata not allowing creation: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(mt.ErrorCode))
		}
		if mt := metadataV3(on.Addr, "made-v3"); mt.ErrorCode != 0 || len(mt.Partitions) != 3 {
			t.Errorf("Metadata v3: %v with %d partitions, want the new topic with 3", kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions))
		}
		if code := produceUnknown(on.Addr, "produced"); code != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("Produce to an unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(code))
		}
		got := topicPartitions(ctx, t, cl)
		if len(got) != 2 || got["made"] != 3 || got["made-v3"] != 3 {
			t.Errorf("topics afterwards: %v, want made and made-v3 with 3 partitions each", got)
		}
		if ends := endOffsets(t, on.Addr, "made"); len(ends) != 3 {
			t.Errorf("the auto-created topic lists %d partitions' end offsets, want 3", len(ends))
		}
	})

	t.Run("off", func(t *testing.T) {
		cl := client(t, off.Addr)
		if mt := metadataFor(ctx, t, cl, true, "made").Topics[0]; mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("Metadata allowing creation: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(mt.ErrorCode))
		}
		if mt := metadataV3(off.Addr, "made-v3"); mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("Metadata v3: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(mt.ErrorCode))
		}
		if code := produceUnknown(off.Addr, "produced"); code != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("Produce to an unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", kerr.ErrorForCode(code))
		}
		if got := topicPartitions(ctx, t, cl); len(got) != 0 {
			t.Errorf("topics afterwards: %v, want none", got)
		}
		// Creating explicitly still works, and -1 partitions means
		// --default-partitions, as num.partitions does in Kafka.
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "explicit", -1, -1
		req.Topics = append(req.Topics, rt)
		if resp, err := req.RequestWith(ctx, cl); err != nil || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("CreateTopics: %v %v", err, kerr.ErrorForCode(resp.Topics[0].ErrorCode))
		}
		if got := topicPartitions(ctx, t, cl); len(got) != 1 || got["explicit"] != 3 {
			t.Errorf("topics after CreateTopics: %v, want explicit with 3 partitions", got)
		}
	})
}
