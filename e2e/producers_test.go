package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
)

// TestProducerStateExpires: 10,000 idempotent producers, each restarted
// with a new producer id, write to 100 partitions; once they have been
// silent for producer.id.expiration.ms the metadata state, and so every
// snapshot, holds only the producers that are still writing.
func TestProducerStateExpires(t *testing.T) {
	const restarts, partitions, active = 10_000, 100, 300
	b := harness.MinIOBackend(t)
	// Producing ten thousand takes seconds: the producers expire only once
	// the agent restarts with a short expiration.
	a := startAgent(t, b, 5*time.Millisecond, "--retention-check-interval=500ms")
	createTopic(t, a.Addr, "pids", partitions, nil)
	cl := client(t, a.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	produceAs := func(n int) {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(64)
		for i := range n {
			g.Go(func() error {
				init, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(gctx, cl)
				if err != nil || init.ErrorCode != 0 {
					return fmt.Errorf("InitProducerID: %v %v", err, kerr.ErrorForCode(init.ErrorCode))
				}
				now := time.Now().UnixMilli()
				rec, err := batch.Build(batch.Header{FirstTimestamp: now, MaxTimestamp: now, ProducerID: init.ProducerID,
					ProducerEpoch: init.ProducerEpoch, BaseSequence: 0},
					batch.None, []batch.Record{{Value: []byte("v")}})
				if err != nil {
					return err
				}
				req := kmsg.NewPtrProduceRequest()
				req.Acks, req.TimeoutMillis = -1, 60000
				rt := kmsg.NewProduceRequestTopic()
				rt.Topic = "pids"
				rp := kmsg.NewProduceRequestTopicPartition()
				rp.Partition, rp.Records = int32(i%partitions), rec
				rt.Partitions = append(rt.Partitions, rp)
				req.Topics = append(req.Topics, rt)
				resp, err := req.RequestWith(gctx, cl)
				if err != nil {
					return err
				}
				if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
					return fmt.Errorf("produce: %v", kerr.ErrorForCode(code))
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	// states returns how many producer states the log's state holds and
	// what they cost its snapshot: its size less that of the same state
	// with every producer dropped.
	states := func() (n int, bytes int) {
		t.Helper()
		l, err := meta.Open(ctx, b.Open(t), meta.Options{WriterID: "probe"})
		if err != nil {
			t.Fatal(err)
		}
		l.View(func(st *meta.State) {
			n = st.ProducerStates()
			bare := st.Clone()
			bare.Apply(bare.Seq+1, &meta.Entry{Ops: []meta.Op{meta.ExpireProducers{BeforeMs: 1 << 62}}})
			bytes = len(st.EncodeSnapshot()) - len(bare.EncodeSnapshot())
		})
		return n, bytes
	}

	produceAs(restarts)
	n, all := states()
	if n != restarts {
		t.Fatalf("%d producer states after %d producers, want one each", n, restarts)
	}
	expiring := a.Config.Args
	a.Config.Args = append(append([]string(nil), expiring...), "--producer-id-expiration=2s")
	a.Restart(t)
	harness.Eventually(t, 2*time.Minute, func() bool { n, _ := states(); return n == 0 },
		"the silent producers' states were not dropped")
	a.Config.Args = expiring
	a.Restart(t)
	produceAs(active)
	n, left := states()
	if n != active {
		t.Fatalf("%d producer states with %d producers writing", n, active)
	}
	if each := float64(all) / restarts; float64(left) > 1.5*each*active {
		t.Fatalf("the snapshot holds %d bytes of producer state for %d producers (%.1f bytes each with all %d)", left, active, each, restarts)
	}
	// Producing goes on: an expired producer is a new one.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "pids", Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
