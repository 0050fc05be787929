package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/fleet"
)

// topicConfig returns a topic config's value and source as DescribeConfigs
// reports them.
func topicConfig(t *testing.T, adm *kadm.Client, topic, name string) (string, kmsg.ConfigSource) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil || len(rcs) != 1 || rcs[0].Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, rcs)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == name {
			return c.MaybeValue(), c.Source
		}
	}
	t.Fatalf("describe %s: no %s", topic, name)
	return "", 0
}

// TestAlterConfigs: IncrementalAlterConfigs and AlterConfigs on topics,
// as kadm sends them, read back with DescribeConfigs.
func TestAlterConfigs(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(client(t, a.Addr))
	createTopic(t, a.Addr, "conf", 1, map[string]*string{"retention.bytes": kadm.StringPtr("1000")})

	one := func(rs kadm.AlterConfigsResponses, err error) error {
		t.Helper()
		if err != nil || len(rs) != 1 {
			t.Fatalf("alter: %v %v", err, rs)
		}
		return rs[0].Err
	}
	set := func(name, v string) kadm.AlterConfig {
		return kadm.AlterConfig{Op: kadm.SetConfig, Name: name, Value: kadm.StringPtr(v)}
	}

	// Incremental SET keeps the others.
	if err := one(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "2000")}, "conf")); err != nil {
		t.Fatal(err)
	}
	if v, src := topicConfig(t, adm, "conf", "retention.ms"); v != "2000" || src != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("retention.ms = %s (%v)", v, src)
	}
	if v, _ := topicConfig(t, adm, "conf", "retention.bytes"); v != "1000" {
		t.Fatalf("retention.bytes = %s after an incremental alter of another config", v)
	}
	// APPEND and SUBTRACT on a list; DELETE goes back to the default.
	if err := one(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")},
		{Op: kadm.DeleteConfig, Name: "retention.bytes"},
	}, "conf")); err != nil {
		t.Fatal(err)
	}
	if v, _ := topicConfig(t, adm, "conf", "cleanup.policy"); v != "delete,compact" {
		t.Fatalf("cleanup.policy = %s after APPEND", v)
	}
	if v, src := topicConfig(t, adm, "conf", "retention.bytes"); v != "-1" || src != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("retention.bytes = %s (%v) after DELETE", v, src)
	}
	if err := one(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: kadm.StringPtr("delete")}}, "conf")); err != nil {
		t.Fatal(err)
	}
	if v, _ := topicConfig(t, adm, "conf", "cleanup.policy"); v != "compact" {
		t.Fatalf("cleanup.policy = %s after SUBTRACT", v)
	}

	// Errors leave the configs as they were.
	for _, c := range []struct {
		name string
		cfg  kadm.AlterConfig
		want error
	}{
		{"unknown config", set("no.such.config", "1"), kerr.InvalidConfig},
		{"bad value", set("retention.ms", "soon"), kerr.InvalidConfig},
		{"append to a non-list", kadm.AlterConfig{Op: kadm.AppendConfig, Name: "retention.ms", Value: kadm.StringPtr("1")}, kerr.InvalidConfig},
	} {
		if err := one(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{c.cfg}, "conf")); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if err := one(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "1")}, "nope")); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", err)
	}
	// ValidateOnly checks without writing.
	if err := one(adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "5")}, "conf")); err != nil {
		t.Fatal(err)
	}
	if err := one(adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{set("retention.ms", "x")}, "conf")); !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("validate-only bad value: %v", err)
	}
	if v, _ := topicConfig(t, adm, "conf", "retention.ms"); v != "2000" {
		t.Fatalf("retention.ms = %s after failed and validate-only alters", v)
	}

	// AlterConfigs replaces the whole set.
	if err := one(adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{set("max.message.bytes", "5000")}, "conf")); err != nil {
		t.Fatal(err)
	}
	if v, src := topicConfig(t, adm, "conf", "retention.ms"); v != "604800000" || src != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("retention.ms = %s (%v) after AlterConfigs without it", v, src)
	}
	if v, _ := topicConfig(t, adm, "conf", "max.message.bytes"); v != "5000" {
		t.Fatalf("max.message.bytes = %s", v)
	}
	if err := one(adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{set("retention.ms", "-7")}, "conf")); !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("AlterConfigs bad value: %v", err)
	}
	// Broker configs are the agent's flags.
	rs, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{set("log.retention.ms", "1")})
	if err != nil || len(rs) != 1 || !errors.Is(rs[0].Err, kerr.InvalidRequest) {
		t.Errorf("broker alter: %v %v", err, rs)
	}
}

// produceAt produces n records to partition p with timestamp ts, waiting
// for the acknowledgement (so they form their own segment object).
func produceAt(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, p int32, n int, ts time.Time) {
	t.Helper()
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(strings.Repeat("v", 100)), Timestamp: ts})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func startOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("start offset %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// firstConsumed reads partition p of topic from offset 0 with a consumer
// that resets to the start on OFFSET_OUT_OF_RANGE, and returns the offset
// of the first record it gets.
func firstConsumed(ctx context.Context, t *testing.T, addr, topic string, p int32) int64 {
	t.Helper()
	cl := client(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(0)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consuming %s/%d: %v", topic, p, ctx.Err())
		}
		var first int64 = -1
		fs.EachRecord(func(r *kgo.Record) {
			if first < 0 {
				first = r.Offset
			}
		})
		if first >= 0 {
			return first
		}
	}
}

// TestDeleteRecords: the log start moves, ListOffsets earliest follows,
// a fetch below it is OFFSET_OUT_OF_RANGE, and a consumer at 0 resets to it.
func TestDeleteRecords(t *testing.T) {
	a := startAgent(t, harness.FileBackend(t), 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := client(t, a.Addr, kgo.ProducerBatchCompression(kgo.NoCompression()))
	adm := kadm.NewClient(cl)
	createTopic(t, a.Addr, "dr", 1, nil)
	for i := 0; i < 4; i++ {
		produceAt(ctx, t, cl, "dr", 0, 3, time.Now()) // offsets 3i .. 3i+2
	}
	del := func(offset int64) kadm.DeleteRecordsResponse {
		t.Helper()
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: "dr", Partition: 0, At: offset})
		rs, err := adm.DeleteRecords(ctx, os)
		if err != nil {
			t.Fatal(err)
		}
		r, ok := rs.Lookup("dr", 0)
		if !ok {
			t.Fatal("no DeleteRecords answer")
		}
		return r
	}
	// Into the middle of the second batch: the batch stays whole in fetches.
	if r := del(4); r.Err != nil || r.LowWatermark != 4 {
		t.Fatalf("delete to 4: %+v", r)
	}
	if got := startOffsets(t, adm, "dr")[0]; got != 4 {
		t.Fatalf("earliest %d after deleting to 4", got)
	}
	// A timestamp lookup skips the records below the log start.
	byTime, err := adm.ListOffsetsAfterMilli(ctx, 0, "dr")
	if o, ok := byTime.Lookup("dr", 0); err != nil || !ok || o.Err != nil || o.Offset != 4 {
		t.Fatalf("ListOffsets by timestamp 0: %+v %v", o, err)
	}
	if p := fetchRaw(ctx, t, cl, "dr", 3, 0); p.ErrorCode != kerr.OffsetOutOfRange.Code || p.LogStartOffset != 4 {
		t.Fatalf("fetch at 3: %v, log start %d", kerr.ErrorForCode(p.ErrorCode), p.LogStartOffset)
	}
	if p := fetchRaw(ctx, t, cl, "dr", 4, 0); p.ErrorCode != 0 || batchesIn(t, p.RecordBatches)[0] != [2]int64{3, 3} {
		t.Fatalf("fetch at 4: %v %v", kerr.ErrorForCode(p.ErrorCode), batchesIn(t, p.RecordBatches))
	}
	// Backwards changes nothing; beyond the high watermark is out of range.
	if r := del(2); r.Err != nil || r.LowWatermark != 4 {
		t.Fatalf("delete to 2: %+v", r)
	}
	if r := del(13); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete to 13: %+v", r)
	}
	if r := del(6); r.Err != nil || r.LowWatermark != 6 {
		t.Fatalf("delete to 6: %+v", r)
	}
	if got := firstConsumed(ctx, t, a.Addr, "dr", 0); got != 6 {
		t.Fatalf("consumer from 0 resumed at %d, want 6", got)
	}
	// -1 is the high watermark.
	if r := del(-1); r.Err != nil || r.LowWatermark != 12 {
		t.Fatalf("delete to -1: %+v", r)
	}
	if got := startOffsets(t, adm, "dr")[0]; got != 12 {
		t.Fatalf("earliest %d after deleting everything", got)
	}
	// Kafka refuses DeleteRecords on a topic that is only compacted.
	createTopic(t, a.Addr, "compacted", 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")})
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: "compacted", Partition: 0, At: -1})
	rs, err := adm.DeleteRecords(ctx, os)
	if r, ok := rs.Lookup("compacted", 0); err != nil || !ok || !errors.Is(r.Err, kerr.PolicyViolation) {
		t.Fatalf("DeleteRecords on a compacted topic: %+v %v", r, err)
	}
}

// TestRetentionCollectsObjects: retention.ms moves the log start past
// expired data (on every partition of an object), the collector deletes
// the objects that held only expired data, and a consumer from 0 resets
// to the new start.
func TestRetentionCollectsObjects(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 10*time.Millisecond, "--retention-check-interval=200ms", "--collect-grace=100ms")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := client(t, a.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	// Records written an hour ago expire at once under retention.ms of a
	// minute; those written now stay for the whole test, without timing.
	// The topic starts with the default retention (a week), so nothing
	// expires until the objects have been listed.
	createTopic(t, a.Addr, "ret", 2, nil)
	old := time.Now().Add(-time.Hour)
	for i := 0; i < 3; i++ {
		var recs []*kgo.Record
		for p := int32(0); p < 2; p++ {
			recs = append(recs, &kgo.Record{Topic: "ret", Partition: p, Value: []byte("old"), Timestamp: old})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	oldObjects := b.List(t, "seg/")
	if len(oldObjects) == 0 {
		t.Fatal("no segment objects")
	}
	for p := int32(0); p < 2; p++ {
		produceAt(ctx, t, cl, "ret", p, 2, time.Now())
	}
	ends := endOffsets(t, a.Addr, "ret")
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("60000")}}, "ret")
	if err != nil || len(rs) != 1 || rs[0].Err != nil {
		t.Fatalf("set retention.ms: %v %v", err, rs)
	}

	harness.Eventually(t, time.Minute, func() bool {
		starts := startOffsets(t, adm, "ret")
		return starts[0] == 3 && starts[1] == 3
	}, "log starts never moved past the expired records")
	waitDeleted(t, b, oldObjects, "objects of expired data were never deleted")
	if got := startOffsets(t, adm, "ret"); got[0] != 3 || got[1] != 3 {
		t.Fatalf("log starts %v, want 3 (the live records must stay)", got)
	}
	if len(b.List(t, "seg/")) == 0 {
		t.Fatal("objects of live data were deleted")
	}
	for p := int32(0); p < 2; p++ {
		if got := firstConsumed(ctx, t, a.Addr, "ret", p); got != 3 {
			t.Fatalf("consumer from 0 on partition %d resumed at %d, want 3", p, got)
		}
	}
	if ends[0] != 5 || ends[1] != 5 {
		t.Fatalf("end offsets %v", ends)
	}

	// A deleted topic's objects go the same way.
	createTopic(t, a.Addr, "gone", 1, nil)
	before := b.List(t, "seg/")
	produceAt(ctx, t, cl, "gone", 0, 3, time.Now())
	goneObjects := diffKeys(before, b.List(t, "seg/"))
	if len(goneObjects) == 0 {
		t.Fatal("producing to gone wrote no object")
	}
	if rs, err := adm.DeleteTopics(ctx, "gone"); err != nil || rs.Error() != nil {
		t.Fatalf("delete topic: %v %v", err, rs.Error())
	}
	waitDeleted(t, b, goneObjects, "objects of a deleted topic were never deleted")
	if got := startOffsets(t, adm, "ret"); got[0] != 3 || got[1] != 3 {
		t.Fatalf("log starts %v after deleting another topic", got)
	}
	// Every released object was collected, and forgotten by the state.
	harness.Eventually(t, 30*time.Second, func() bool { return scrape(t, a.HTTPAddr)["barge_released_objects"] == 0 },
		"barge_released_objects never came back to 0 after collection")
	m := scrape(t, a.HTTPAddr)
	if m["barge_retention_log_start_moves_total"] < 2 || m["barge_collected_objects_total"] < float64(len(oldObjects)+len(goneObjects)) {
		t.Errorf("job metrics: moves %v, collected %v", m["barge_retention_log_start_moves_total"], m["barge_collected_objects_total"])
	}
}

// partitionBytes fetches partition p of topic from its log start to its
// high watermark and returns the size of each batch.
func partitionBytes(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, p int32, start int64) []int {
	t.Helper()
	fp := fetchPartition(ctx, t, cl, topic, p, start, 0, 50<<20)
	if fp.ErrorCode != 0 {
		return nil // the log start moved meanwhile
	}
	var sizes []int
	if err := batch.Split(fp.RecordBatches, func(raw []byte, _ batch.Header) error {
		sizes = append(sizes, len(raw))
		return nil
	}); err != nil {
		t.Fatalf("fetched bytes do not split into batches: %v", err)
	}
	return sizes
}

// TestRetentionBytes: each partition ends at or just above retention.bytes,
// dropping whole chunks only.
func TestRetentionBytes(t *testing.T) {
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 10*time.Millisecond, "--retention-check-interval=200ms", "--collect-grace=100ms")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := client(t, a.Addr, kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	const limit = 1000
	createTopic(t, a.Addr, "bytes", 2, map[string]*string{"retention.bytes": kadm.StringPtr("1000")})
	for i := 0; i < 10; i++ {
		for p := int32(0); p < 2; p++ {
			produceAt(ctx, t, cl, "bytes", p, 1, time.Now()) // one batch of ~170 bytes per chunk
		}
	}
	for p := int32(0); p < 2; p++ {
		harness.Eventually(t, time.Minute, func() bool {
			start := startOffsets(t, adm, "bytes")[p]
			sizes := partitionBytes(ctx, t, cl, "bytes", p, start)
			total := 0
			for _, s := range sizes {
				total += s
			}
			return len(sizes) > 0 && total >= limit && total-sizes[0] < limit && int64(len(sizes)) == 10-start
		}, "partition %d never came down to just above %d bytes", p, limit)
	}
}

// TestRetentionTwoAgents: two agents on one bucket share the jobs; every
// topic's expired data goes and its objects are deleted once. Each agent
// advances the log starts of the topics rendezvous gives it, and the
// metadata log shows no job leased to both at once.
func TestRetentionTwoAgents(t *testing.T) {
	const perAgent = 3
	b := harness.MinIOBackend(t)
	// The whole log stays, for ReadLeaseHistory.
	args := []string{"--retention-check-interval=200ms", "--collect-grace=100ms", "--meta-retention=0"}
	agents := []*harness.Agent{startAgent(t, b, 10*time.Millisecond, args...), startAgent(t, b, 10*time.Millisecond, args...)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := client(t, agents[0].Addr)
	adm := kadm.NewClient(cl)
	// perAgent topics for each agent to run retention on.
	addrs := []string{agents[0].Addr, agents[1].Addr}
	var names []string
	owned := map[string]int{}
	for i := 0; len(names) < 2*perAgent; i++ {
		name := fmt.Sprint("two-", i)
		if o := fleet.Rendezvous("retention/"+name, addrs); owned[o] < perAgent {
			owned[o]++
			names = append(names, name)
			createTopic(t, agents[0].Addr, name, 1, nil)
		}
	}
	for _, n := range names {
		produceAt(ctx, t, cl, n, 0, 2, time.Now().Add(-time.Hour)) // offsets 0-1, one object per topic
	}
	oldObjects := b.List(t, "seg/")
	for _, n := range names {
		produceAt(ctx, t, cl, n, 0, 1, time.Now()) // offset 2
	}
	// Both agents must see each other before the jobs are due.
	for _, a := range agents {
		admA := kadm.NewClient(client(t, a.Addr))
		harness.Eventually(t, 30*time.Second, func() bool {
			bs, err := admA.ListBrokers(ctx)
			return err == nil && len(bs) == 2
		}, "%s does not see both agents", a)
	}
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("60000")}}, names...)
	if err != nil || len(rs) != len(names) {
		t.Fatalf("set retention.ms: %v %v", err, rs)
	}
	for _, r := range rs {
		if r.Err != nil {
			t.Fatalf("set retention.ms on %s: %v", r.Name, r.Err)
		}
	}
	harness.Eventually(t, time.Minute, func() bool {
		for _, n := range names {
			if startOffsets(t, adm, n)[0] != 2 {
				return false
			}
		}
		return true
	}, "log starts never moved past the expired records on every topic")
	waitDeleted(t, b, oldObjects, "objects of expired data were never deleted")
	var moves []float64
	for _, a := range agents {
		moves = append(moves, scrape(t, a.HTTPAddr)["barge_retention_log_start_moves_total"])
	}
	// Stopped, the agents release their leases and write no more entries.
	for _, a := range agents {
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	h := harness.ReadLeaseHistory(t, b.Open(t)) // fails on a lease granted while another agent held it
	t.Logf("log start moves per agent %v, retention leases per job and writer %v", moves, h.Grants)
	if moves[0]+moves[1] < float64(len(names)) {
		t.Errorf("log start moves per agent %v, want %d in all", moves, len(names))
	}
	byAddr := map[string]int{}
	for _, n := range names {
		ws := h.Grants["retention/"+n]
		if len(ws) == 0 {
			t.Errorf("retention/%s was never leased", n)
		}
		for w, c := range ws {
			byAddr[h.Addrs[w]] += c
		}
	}
	for i, a := range agents {
		if moves[i] == 0 || byAddr[a.Addr] == 0 {
			t.Errorf("%s did no retention work: %v log start moves, %d retention leases (per agent %v)", a, moves[i], byAddr[a.Addr], byAddr)
		}
	}
}
