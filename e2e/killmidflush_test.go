package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestKillMidFlush: kill -9 while a producer keeps segments in flight.
// Whatever was acknowledged is readable at its acknowledged offset after a
// restart; whatever was not may be lost, and nothing appears twice.
func TestKillMidFlush(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0)
			createTopic(t, a.Addr, "midflush", 4, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			pcl := client(t, a.Addr, kgo.DefaultProduceTopic("midflush"), kgo.RecordRetries(1))

			var mu sync.Mutex
			acked := map[string]*kgo.Record{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r := &kgo.Record{Key: fmt.Append(nil, i%16), Value: fmt.Appendf(nil, "v%07d", i)}
					pcl.Produce(ctx, r, func(r *kgo.Record, err error) {
						if err == nil {
							mu.Lock()
							acked[string(r.Value)] = r
							mu.Unlock()
						}
					})
				}
			}()
			harness.Eventually(t, time.Minute, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(acked) >= 20000
			}, "producer never got going")
			a.Kill() // segments are mid-upload or mid-commit now
			close(stop)
			pcl.Close() // fails what was never answered, unblocking Produce
			wg.Wait()
			mu.Lock()
			snapshot := make(map[string]*kgo.Record, len(acked))
			for k, v := range acked {
				snapshot[k] = v
			}
			mu.Unlock()

			a.Restart(t)
			ends := endOffsets(t, a.Addr, "midflush")
			got := consumeAll(t, a.Addr, "midflush", ends)
			seen := map[string]bool{}
			for p, recs := range got {
				for _, r := range recs {
					if seen[string(r.Value)] {
						t.Fatalf("%s stored twice", r.Value)
					}
					seen[string(r.Value)] = true
					if want, ok := snapshot[string(r.Value)]; ok && (want.Partition != p || want.Offset != r.Offset) {
						t.Fatalf("%s acknowledged at %d/%d, read at %d/%d", r.Value, want.Partition, want.Offset, p, r.Offset)
					}
				}
			}
			for v := range snapshot {
				if !seen[v] {
					t.Fatalf("acknowledged record %s lost", v)
				}
			}
			t.Logf("%d acknowledged before the kill, %d stored", len(snapshot), len(seen))
		})
	}
}
