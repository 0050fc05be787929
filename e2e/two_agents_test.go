package e2e

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestTwoAgentsOneBucket: two agents on one bucket are one cluster. Two
// producers, one on each agent, write the same topic at once; the log's
// conditional writes order their commits, so every partition's offsets are
// contiguous, and consumers on either agent read every record exactly once,
// identically.
func TestTwoAgentsOneBucket(t *testing.T) {
	const (
		perProducer = 50_000
		partitions  = 8
		topic       = "shared"
	)
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			agents := []*harness.Agent{startAgent(t, b, 0), startAgent(t, b, 0)}
			createTopic(t, agents[0].Addr, topic, partitions, nil)
			// Wait until B has tailed the creation, so that its producer
			// does not auto-create a one-partition topic of the same name.
			admB := kadm.NewClient(client(t, agents[1].Addr))
			harness.Eventually(t, 30*time.Second, func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				td, err := admB.ListTopics(ctx)
				return err == nil && len(td[topic].Partitions) == partitions
			}, "agent B does not see topic %s with %d partitions", topic, partitions)

			type pos struct {
				p   int32
				off int64
			}
			var (
				mu    sync.Mutex
				acked = map[string]pos{} // value → where it was acknowledged
				errs  []error
				wg    sync.WaitGroup
			)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			for i, a := range agents {
				prod := client(t, a.Addr, kgo.DefaultProduceTopic(topic))
				name := string(rune('A' + i))
				wg.Go(func() {
					for j := range perProducer {
						v := fmt.Sprintf("%s-%d", name, j)
						prod.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
							mu.Lock()
							defer mu.Unlock()
							if err != nil {
								errs = append(errs, fmt.Errorf("%s: %w", v, err))
								return
							}
							acked[v] = pos{r.Partition, r.Offset}
						})
					}
					if err := prod.Flush(ctx); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("producer %s flush: %w", name, err))
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(errs) > 0 {
				t.Fatalf("%d produce errors; first: %v", len(errs), errs[0])
			}
			if len(acked) != 2*perProducer {
				t.Fatalf("%d records acknowledged, want %d", len(acked), 2*perProducer)
			}

			// The end offsets are the acknowledgement counts, as seen from
			// both agents once each has tailed the other's commits.
			ends := map[int32]int64{}
			for p := range int32(partitions) {
				ends[p] = 0
			}
			for _, at := range acked {
				ends[at.p]++
			}
			for _, a := range agents {
				var got map[int32]int64
				harness.Eventually(t, 30*time.Second, func() bool {
					got = endOffsets(t, a.Addr, topic)
					return maps.Equal(got, ends)
				}, "%s: end offsets %v, acknowledgements per partition %v", a, &got, ends)
			}

			reads := make([]map[int32][]*kgo.Record, len(agents))
			for i, a := range agents {
				reads[i] = consumeAll(t, a.Addr, topic, ends) // contiguous offsets, none past the end
				seen := map[string]bool{}
				for p, rs := range reads[i] {
					for off, r := range rs {
						v := string(r.Value)
						if seen[v] {
							t.Fatalf("%s: %s read twice", a, v)
						}
						seen[v] = true
						if at, ok := acked[v]; !ok || at != (pos{p, int64(off)}) {
							t.Fatalf("%s: %q read at partition %d offset %d, acknowledged at %+v (known %v)", a, v, p, off, at, ok)
						}
					}
				}
				if len(seen) != len(acked) {
					t.Fatalf("%s: read %d distinct records, %d acknowledged", a, len(seen), len(acked))
				}
			}
			mixed := 0 // partitions holding both producers' records
			for p := range int32(partitions) {
				from := map[byte]bool{}
				for off := range reads[0][p] {
					from[reads[0][p][off].Value[0]] = true
					if va, vb := reads[0][p][off].Value, reads[1][p][off].Value; string(va) != string(vb) {
						t.Fatalf("partition %d offset %d: agent A reads %q, agent B %q", p, off, va, vb)
					}
				}
				if len(from) == 2 {
					mixed++
				}
			}
			if mixed == 0 {
				t.Fatalf("no partition holds records of both producers: the agents never wrote the same partition")
			}
		})
	}
}
