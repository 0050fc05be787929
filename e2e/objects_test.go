package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// TestOneObjectPerFlush: the agent writes one segment object and one
// metadata-log commit per flush, however many partitions the flush holds,
// never one per partition. A producer writes to all 1,000 partitions of a
// topic for 5 s at a modest rate (far below the 8 MiB size limit, so only
// the 250 ms interval seals). The agent's own flush counters say how many
// flushes there were; the bucket must have gained exactly one object for
// each, committed once each, and together they hold every partition.
func TestOneObjectPerFlush(t *testing.T) {
	const (
		partitions = 1000
		topic      = "wide"
		interval   = 250 * time.Millisecond
		produceFor = 5 * time.Second
	)
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, interval)
			createTopic(t, a.Addr, topic, partitions, nil)
			segsBefore := b.List(t, "seg/")
			logBefore := b.List(t, "meta/log/")
			metricsBefore := scrape(t, a.HTTPAddr)

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			prod := client(t, a.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			var failures atomic.Int64
			var firstErr atomic.Value
			tick := time.NewTicker(time.Millisecond)
			n := 0
			start := time.Now()
			for ; time.Since(start) < produceFor || n < partitions; n++ {
				<-tick.C // about one record a millisecond, round robin
				r := &kgo.Record{Partition: int32(n % partitions), Value: fmt.Appendf(nil, "r-%d", n)}
				prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
					if err != nil && failures.Add(1) == 1 {
						firstErr.Store(err)
					}
				})
			}
			tick.Stop()
			produced := time.Since(start) // 5 s, unless 1,000 records took longer
			if err := prod.Flush(ctx); err != nil {
				t.Fatalf("flush: %v", err)
			}
			if f := failures.Load(); f != 0 {
				t.Fatalf("%d of %d records failed; first: %v", f, n, firstErr.Load())
			}

			// Every record is acknowledged, so every flush that holds one
			// has been written (barge_flush_bytes counts objects encoded)
			// and committed (barge_flush_seconds, seal to commit).
			metricsAfter := scrape(t, a.HTTPAddr)
			delta := func(name string) int {
				return int(metricsAfter[name] - metricsBefore[name])
			}
			flushes := delta("barge_flush_bytes_count")
			if done, failed := delta("barge_flush_seconds_count"), delta("barge_flush_failures_total"); done != flushes || failed != 0 {
				t.Fatalf("%d flushes written, %d finished, %d failed", flushes, done, failed)
			}
			segsAfter := b.List(t, "seg/")
			newSegs := diffKeys(segsBefore, segsAfter)
			newLog := diffKeys(logBefore, b.List(t, "meta/log/"))
			t.Logf("%d records; %d flushes, %d new segment objects, %d new log entries", n, flushes, len(newSegs), len(newLog))
			if len(newSegs) != flushes {
				t.Fatalf("%d new segment objects for %d flushes", len(newSegs), flushes)
			}
			// An upper bound only, which a slow machine cannot break (it
			// makes fewer flushes): a segment seals 250 ms after its first
			// record, and franz-go's idempotent producer keeps one request
			// in flight, answered only once its segment committed, so the
			// loop's 5 s open at most 20 segments, the records buffered when
			// it ended one more, and we allow one beyond. Far below one
			// object per partition.
			if most := int(produced/interval) + 2; flushes > most {
				t.Fatalf("%d flushes for %v of producing at a %v flush interval, want at most %d", flushes, produced, interval, most)
			}

			// Each new object is committed exactly once, in entries no
			// more numerous than the flushes (the log may group commits
			// that queue up).
			store := b.Open(t)
			gctx, gcancel := context.WithTimeout(context.Background(), time.Minute)
			defer gcancel()
			committed, commitEntries := map[string]int{}, 0
			for _, k := range newLog {
				data, err := store.Get(gctx, k)
				if err != nil {
					t.Fatalf("get %s: %v", k, err)
				}
				en, err := meta.DecodeEntry(data)
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				has := false
				for _, op := range en.Ops {
					if c, ok := op.(meta.Commit); ok {
						committed[c.Object]++
						has = true
					}
				}
				if has {
					commitEntries++
				}
			}
			for _, k := range newSegs {
				if committed[k] != 1 {
					t.Errorf("%s committed %d times, want once", k, committed[k])
				}
			}
			if len(committed) != len(newSegs) || commitEntries > flushes {
				t.Fatalf("%d objects committed in %d entries, for %d flushes", len(committed), commitEntries, flushes)
			}

			// One object holds many partitions: together the objects
			// hold batches of all 1,000 partitions.
			written := map[tiered.SegmentPart]bool{}
			for _, key := range newSegs {
				obj, err := store.Get(gctx, key)
				if err != nil {
					t.Fatalf("get %s: %v", key, err)
				}
				parts, err := tiered.DecodeSegment(obj)
				if err != nil {
					t.Fatalf("decode %s: %v", key, err)
				}
				for _, p := range parts {
					if p.Batches < 1 {
						t.Fatalf("%s: partition %d has no batch", key, p.Partition)
					}
					written[tiered.SegmentPart{Topic: p.Topic, Partition: p.Partition}] = true
				}
			}
			if len(written) != partitions {
				t.Fatalf("the %d new objects hold batches of %d partitions, want all %d", len(newSegs), len(written), partitions)
			}
		})
	}
}

// diffKeys returns the keys of after that are not in before, in order.
// waitDeleted waits until none of keys is in bucket b any more.
func waitDeleted(t *testing.T, b harness.Backend, keys []string, msg string) {
	t.Helper()
	gone, prefixes := map[string]bool{}, map[string]bool{}
	for _, k := range keys {
		gone[k] = true
		prefixes[k[:strings.IndexByte(k, '/')+1]] = true
	}
	harness.Eventually(t, time.Minute, func() bool {
		for prefix := range prefixes {
			for _, k := range b.List(t, prefix) {
				if gone[k] {
					return false
				}
			}
		}
		return true
	}, "%s", msg)
}

func diffKeys(before, after []string) []string {
	old := map[string]bool{}
	for _, k := range before {
		old[k] = true
	}
	var out []string
	for _, k := range after {
		if !old[k] {
			out = append(out, k)
		}
	}
	return out
}
