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

// TestKeyCompactionOfTransactions: on a compacted topic a committed
// transaction writes k=committed, an aborted one then writes k=aborted,
// and a transaction is left open. Key compaction neither lets the
// aborted record supersede the committed one (read_committed still sees
// k=committed) nor keeps it (read_uncommitted no longer sees it), and
// leaves the open transaction's records, past the last stable offset,
// alone.
func TestKeyCompactionOfTransactions(t *testing.T) {
	const topic = "txn-compacted"
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond, "--cleaner-backoff=200ms", "--compaction-interval=0")
	createTopic(t, a.Addr, topic, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01")})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := client(t, a.Addr, kgo.TransactionalID("tx-compact"), kgo.DefaultProduceTopic(topic))
	txn := func(value string, commit bool) {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn("committed", true)
	txn("aborted", false)
	plain := client(t, a.Addr, kgo.DefaultProduceTopic(topic))
	for i := range 20 {
		if err := plain.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "other-%d", i%2), Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	open := client(t, a.Addr, kgo.TransactionalID("tx-open"), kgo.DefaultProduceTopic(topic))
	if err := open.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := open.ProduceSync(ctx, &kgo.Record{Key: []byte("other-0"), Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	lso, _ := lastStable(ctx, t, plain, topic, 1)
	harness.Eventually(t, time.Minute, func() bool {
		_, cleaned, _ := cleanerState(t, b, topic)
		return cleaned[0] > 0
	}, "a key compaction pass")
	if _, cleaned, _ := cleanerState(t, b, topic); cleaned[0] > lso[0] {
		t.Fatalf("cleaned to %d, past the last stable offset %d", cleaned[0], lso[0])
	}
	if err := open.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	awaitStable(ctx, t, plain, topic, 1)
	// The newest value of each key, read up to the open transaction's
	// record, the last.
	newest := func(iso kgo.IsolationLevel) map[string]string {
		m := map[string]string{}
		cl := client(t, a.Addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
		for m["other-0"] != "open" {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatal(ctx.Err())
			}
			fs.EachRecord(func(r *kgo.Record) { m[string(r.Key)] = string(r.Value) })
		}
		return m
	}
	if got := newest(kgo.ReadCommitted()); got["k"] != "committed" {
		t.Fatalf("read_committed after key compaction: k=%q, want the committed value (%v)", got["k"], got)
	}
	if got := newest(kgo.ReadUncommitted()); got["k"] != "committed" {
		t.Fatalf("read_uncommitted after key compaction: k=%q: the aborted record was kept (%v)", got["k"], got)
	}
}
