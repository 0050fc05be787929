package meta_test

import (
	"context"
	"testing"
	"time"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// TestMain stops the MinIO the bucket tests start.
func TestMain(m *testing.M) { harness.Main(m) }

// TestRetryLostAnswerOnBuckets: against a real MinIO bucket and a local
// directory, an append whose first conditional write lands but whose
// answer is lost, and whose retry first reads the log's tail (its view is
// stale), is in the log exactly once. The same on a fault-injecting store
// in memory is TestRetryDuringStaleCatchUpCommitsOnce.
func TestRetryLostAnswerOnBuckets(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			store := b.Open(t)
			f := objstore.NewFaulty(store)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			l, err := meta.Open(ctx, f, meta.Options{WriterID: "w", Retention: time.Nanosecond, PollInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { l.Run(runCtx); close(done) }()
			defer func() { stop(); <-done }()

			f.LoseNth(objstore.OpPutIfAbsent, 1)
			if _, err := l.Append(ctx, meta.ReserveProducers{Count: 7}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(ctx, meta.ReserveProducers{Count: 3}); err != nil {
				t.Fatal(err)
			}
			keys, err := store.List(ctx, "meta/log/", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			counts := map[int32]int{}
			for _, k := range keys {
				data, err := store.Get(ctx, k.Key)
				if err != nil {
					t.Fatal(err)
				}
				en, err := meta.DecodeEntry(data)
				if err != nil {
					t.Fatal(err)
				}
				for _, op := range en.Ops {
					if r, ok := op.(meta.ReserveProducers); ok {
						counts[r.Count]++
					}
				}
			}
			if counts[7] != 1 || counts[3] != 1 {
				t.Fatalf("reservations in the log %v, want each once", counts)
			}
		})
	}
}
