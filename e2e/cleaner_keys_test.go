package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestCleanerKeysSplitsPasses: with --cleaner-keys=10, a compacted
// partition whose dirty head holds 50 distinct keys in 50 chunks is
// cleaned in five passes of ten keys each (barge_cleaned_partitions_total
// counts them), and the result is what one pass would leave: the newest
// record of every key at its offset, tombstones kept (delete.retention.ms
// has not passed).
func TestCleanerKeysSplitsPasses(t *testing.T) {
	const topic, keysPerPass = "splitclean", 10
	b := harness.FileBackend(t)
	a := startAgent(t, b, 0, "--cleaner-backoff=100ms", fmt.Sprint("--cleaner-keys=", keysPerPass), "--compaction-interval=0")
	// Held back by min.compaction.lag.ms until everything is written, so
	// that the passes see the whole dirty head at once.
	createTopic(t, a.Addr, topic, 1, map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
		"min.compaction.lag.ms":     kadm.StringPtr("3600000"),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := client(t, a.Addr, kgo.DefaultProduceTopic(topic))
	// One record per request, each acknowledged before the next: one
	// chunk each. Keys k0…k39, then new values for k0…k4 and tombstones
	// for k5…k9: the last ten chunks hold ten distinct keys again.
	var produced []*kgo.Record
	produce := func(key string, value []byte) {
		r := &kgo.Record{Key: []byte(key), Value: value}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", key, err)
		}
		produced = append(produced, r)
	}
	for i := range 40 {
		produce(fmt.Sprint("k", i), fmt.Append(nil, "v1-", i))
	}
	for i := range 5 {
		produce(fmt.Sprint("k", i), fmt.Append(nil, "v2-", i))
	}
	for i := 5; i < 10; i++ {
		produce(fmt.Sprint("k", i), nil)
	}
	if _, chunks := metaState(t, b, topic); chunks != len(produced) {
		t.Fatalf("%d chunks for %d records: the test needs one each", chunks, len(produced))
	}

	adm := kadm.NewClient(client(t, a.Addr))
	alter := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "min.compaction.lag.ms", Value: kadm.StringPtr("0")}}
	if resp, err := adm.AlterTopicConfigs(ctx, alter, topic); err != nil || resp[0].Err != nil {
		t.Fatalf("alter: %v %v", err, resp[0].Err)
	}
	harness.Eventually(t, time.Minute, func() bool {
		hw, cleaned, _ := cleanerState(t, b, topic)
		return cleaned[0] == hw[0]
	}, "the partition was never cleaned to its high watermark")
	passes := func() float64 { return scrape(t, a.HTTPAddr)["barge_cleaned_partitions_total"] }
	want := float64(len(produced) / keysPerPass)
	// The boundary entry of the last pass lands just before the metric
	// counts it.
	harness.Eventually(t, 10*time.Second, func() bool { return passes() >= want },
		"barge_cleaned_partitions_total %v, want %v passes of %d keys", lazy(func() string { return fmt.Sprint(passes()) }), want, keysPerPass)
	if got := passes(); got != want {
		t.Fatalf("barge_cleaned_partitions_total %v, want %v passes of %d keys", got, want, keysPerPass)
	}

	ref := newestPerKey(produced)
	if d := ref.diff(readCompactedFranz(t, a.Addr, topic, ref)); d != "" {
		t.Fatalf("after the passes:\n%s", d)
	}
	if n := len(ref[0]); n != 40 {
		t.Fatalf("reference holds %d records, want 40 (35 values and 5 tombstones)", n)
	}
}
