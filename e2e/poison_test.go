package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
)

// TestPoisonRequests: requests that once made every agent allocate
// billions of partitions, or bloat the log, get Kafka's errors with a
// message; the agent stays up and serves others throughout; nothing of
// them reaches the metadata log, so a restart replays what it did before.
func TestPoisonRequests(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond, "--max-partitions=50")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bystander := startBystander(t, a.Addr) // a topic of 2 partitions
	createTopic(t, a.Addr, "base", 4, nil)
	cl := client(t, a.Addr, kgo.BrokerMaxWriteBytes(200<<20))

	createTopics := func(topics ...kmsg.CreateTopicsRequestTopic) *kmsg.CreateTopicsResponse {
		t.Helper()
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Topics = topics
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("CreateTopics: %v", err)
		}
		return resp
	}
	topic := func(name string, partitions int32) kmsg.CreateTopicsRequestTopic {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
		return rt
	}
	expect := func(what string, code, want int16, msg *string) {
		t.Helper()
		if code != want {
			t.Errorf("%s: %v, want %v", what, kerr.ErrorForCode(code), kerr.ErrorForCode(want))
		} else if msg == nil || *msg == "" {
			t.Errorf("%s: %v without a message", what, kerr.ErrorForCode(code))
		}
	}

	huge := createTopics(topic("huge", 100_000_000)).Topics[0]
	expect("100,000,000 partitions", huge.ErrorCode, kerr.InvalidPartitions.Code, huge.ErrorMessage)

	grow := kmsg.NewPtrCreatePartitionsRequest()
	gt := kmsg.NewCreatePartitionsRequestTopic()
	gt.Topic, gt.Count = "base", 100_000_000
	grow.Topics = append(grow.Topics, gt)
	gresp, err := grow.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	expect("growing to 100,000,000 partitions", gresp.Topics[0].ErrorCode, kerr.InvalidPartitions.Code, gresp.Topics[0].ErrorMessage)

	many := topic("configs", 1)
	for range 1_000_000 {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = "cleanup.policy", kmsg.StringPtr("delete")
		many.Configs = append(many.Configs, c)
	}
	cfgs := createTopics(many).Topics[0]
	expect("a million configs", cfgs.ErrorCode, kerr.InvalidConfig.Code, cfgs.ErrorMessage)

	long := strings.Repeat("n", 1<<20)
	named := createTopics(topic(long, 1)).Topics[0]
	expect("a one-megabyte topic name", named.ErrorCode, kerr.InvalidTopicException.Code, named.ErrorMessage)
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.AllowAutoTopicCreation = true
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(long)
	mreq.Topics = append(mreq.Topics, mt)
	if mresp, err := mreq.RequestWith(ctx, cl); err != nil || mresp.Topics[0].ErrorCode != kerr.InvalidTopicException.Code {
		t.Errorf("auto-creating a one-megabyte topic name: %v %v", err, mresp)
	}

	// The cluster limit counts every topic: 6 partitions exist.
	over := createTopics(topic("over", 45)).Topics[0]
	expect("past --max-partitions", over.ErrorCode, kerr.PolicyViolation.Code, over.ErrorMessage)
	if fits := createTopics(topic("fits", 44)).Topics[0]; fits.ErrorCode != 0 {
		t.Errorf("up to --max-partitions: %v", kerr.ErrorForCode(fits.ErrorCode))
	}
	bystander.check(t)

	// Nothing of the poison reached the log.
	store := b.Open(t)
	for _, k := range b.List(t, "meta/log/") {
		data, err := store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 64<<10 {
			t.Errorf("log entry %s is %d bytes", k, len(data))
		}
		en, err := meta.DecodeEntry(data)
		if err != nil {
			t.Fatalf("log entry %s: %v", k, err)
		}
		for _, op := range en.Ops {
			if ct, ok := op.(meta.CreateTopic); ok && ct.Name != "bystander" && ct.Name != "base" && ct.Name != "fits" && !meta.IsInternalTopic(ct.Name) {
				t.Errorf("log entry %s creates topic %.20q", k, ct.Name)
			}
			if _, ok := op.(meta.CreatePartitions); ok {
				t.Errorf("log entry %s grows a topic", k)
			}
		}
	}
	// The agent restarts on the same log, with the same topics.
	a.Restart(t)
	if ends := endOffsets(t, a.Addr, "fits"); len(ends) != 44 {
		t.Fatalf("after the restart topic fits has %d partitions", len(ends))
	}
}
