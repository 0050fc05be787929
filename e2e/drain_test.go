package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestSIGTERMFlushesAndAnswers: with a flush interval far longer than the
// test, a produce can only be answered by the drain on SIGTERM; it must be
// answered with success, the agent must exit 0, and the record must be
// there after a restart.
func TestSIGTERMFlushesAndAnswers(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, time.Hour)
			createTopic(t, a.Addr, "drain", 1, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			pcl := client(t, a.Addr, kgo.DefaultProduceTopic("drain"), kgo.RecordRetries(0))
			acked := make(chan *kgo.Record, 1)
			errs := make(chan error, 1)
			pcl.Produce(ctx, &kgo.Record{Value: []byte("buffered")}, func(r *kgo.Record, err error) {
				if err != nil {
					errs <- err
					return
				}
				acked <- r
			})
			harness.Eventually(t, time.Minute, func() bool {
				return scrape(t, a.HTTPAddr)["barge_produce_records_total"] == 1
			}, "the agent never buffered the record")
			select {
			case r := <-acked:
				t.Fatalf("acknowledged at offset %d before any flush", r.Offset)
			default:
			}
			if err := a.Stop(); err != nil {
				t.Fatalf("agent exit after SIGTERM: %v", err)
			}
			select {
			case r := <-acked:
				if r.Offset != 0 {
					t.Fatalf("acknowledged at offset %d, want 0", r.Offset)
				}
			case err := <-errs:
				t.Fatalf("produce failed during drain: %v", err)
			case <-ctx.Done():
				t.Fatal("produce never answered")
			}

			a.Restart(t)
			ccl := client(t, a.Addr, kgo.ConsumeTopics("drain"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			fs := ccl.PollFetches(ctx)
			if ctx.Err() != nil || fs.NumRecords() != 1 || string(fs.Records()[0].Value) != "buffered" {
				t.Fatalf("after restart: %d records, ctx %v", fs.NumRecords(), ctx.Err())
			}
		})
	}
}
