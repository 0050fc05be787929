package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
)

func TestMain(m *testing.M) {
	if os.Getenv(txnMemberEnv) != "" {
		os.Exit(runTxnMember()) // a member process of TestGroupTransactSessionExactlyOnce
	}
	harness.Main(m)
}

// startAgent runs an agent on backend b.
func startAgent(t *testing.T, b harness.Backend, flush time.Duration, args ...string) *harness.Agent {
	t.Helper()
	return harness.StartAgent(t, harness.AgentConfig{Store: b.URL, Env: b.Env, FlushInterval: flush, Args: args})
}

// client returns a franz-go client bootstrapped to addr, closed at cleanup.
func client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic and fails the test on any error.
func createTopic(t *testing.T, addr, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	adm := kadm.NewClient(client(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, name)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v %v", name, err, resp.Err)
	}
}

// endOffsets returns the high watermark of every partition of topic,
// asked of each partition's leader (a client bootstrapped to addr follows
// Metadata), which has applied its own commits.
func endOffsets(t *testing.T, addr, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(client(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// metadataSeen asks the agent at addr itself, not the partitions' leaders,
// for topic's metadata (with a client of its own, closed before it
// returns, so that it can be polled). It fails unless the agent answers and
// knows the topic.
func metadataSeen(addr, topic string, opts ...kgo.Opt) (*kmsg.MetadataResponse, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, mt)
	resp, err := req.RequestWith(ctx, cl.SeedBrokers()[0])
	if err != nil {
		return nil, fmt.Errorf("metadata of %s from %s: %w", topic, addr, err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		return nil, fmt.Errorf("metadata of %s from %s: %v", topic, addr, resp.Topics)
	}
	return resp, nil
}

// endOffsetsSeen returns the high watermark of every partition of topic as
// the agent at addr sees it: asked of that agent, whichever leads (with a
// client of its own, closed before it returns, so that it can be polled).
func endOffsetsSeen(t *testing.T, addr, topic string) map[int32]int64 {
	t.Helper()
	mresp, err := metadataSeen(addr, topic)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition, lp.Timestamp = p.Partition, -1
		lt.Partitions = append(lt.Partitions, lp)
	}
	req.Topics = append(req.Topics, lt)
	resp, err := req.RequestWith(ctx, cl.SeedBrokers()[0])
	if err != nil || len(resp.Topics) != 1 {
		t.Fatalf("end offsets of %s from %s: %v %v", topic, addr, err, resp)
	}
	out := map[int32]int64{}
	for _, p := range resp.Topics[0].Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			t.Fatalf("end offset %s/%d from %s: %v", topic, p.Partition, addr, err)
		}
		out[p.Partition] = p.Offset
	}
	return out
}

// topicID returns topic's id as the agent at addr knows it.
func topicID(t *testing.T, addr, topic string) meta.TopicID {
	t.Helper()
	resp, err := metadataSeen(addr, topic)
	if err != nil {
		t.Fatal(err)
	}
	return meta.TopicID(resp.Topics[0].TopicID)
}

// consumeAll reads topic from the start with a fresh client bootstrapped to
// addr until every partition has reached its end offset in ends. It fails
// the test unless each partition's offsets run 0, 1, 2, … without a gap or
// a repeat, and returns the records per partition, indexed by offset.
func consumeAll(t *testing.T, addr, topic string, ends map[int32]int64) map[int32][]*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	out := map[int32][]*kgo.Record{}
	done := func() bool {
		for p, end := range ends {
			if int64(len(out[p])) < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s from %s: deadline with %d partitions read, want end offsets %v", topic, addr, len(out), ends)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d from %s: %v", topic, p, addr, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if want := int64(len(out[r.Partition])); r.Offset != want {
				t.Fatalf("%s/%d from %s: offset %d where %d was next", topic, r.Partition, addr, r.Offset, want)
			}
			if r.Offset >= ends[r.Partition] {
				t.Fatalf("%s/%d from %s: offset %d at or past the end offset %d", topic, r.Partition, addr, r.Offset, ends[r.Partition])
			}
			out[r.Partition] = append(out[r.Partition], r)
		})
	}
	return out
}
