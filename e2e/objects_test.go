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
	"github.com/bargehq/barge/pkg/tiered"
)

// TestOneObjectPerFlush: the agent writes one segment object and one
// metadata-log entry per flush, however many partitions the flush holds,
// never one per partition. A producer writes to all 1,000 partitions of a
// topic for 5 s at a modest rate (far below the 8 MiB size limit, so only
// the 250 ms interval seals), and the bucket gains about twenty objects.
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
			logBefore := len(b.List(t, "meta/log/"))

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			prod := client(t, a.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			var failures atomic.Int64
			var firstErr atomic.Value
			tick := time.NewTicker(time.Millisecond)
			n := 0
			for start := time.Now(); time.Since(start) < produceFor; n++ {
				<-tick.C // about one record a millisecond, round robin
				r := &kgo.Record{Partition: int32(n % partitions), Value: fmt.Appendf(nil, "r-%d", n)}
				prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
					if err != nil && failures.Add(1) == 1 {
						firstErr.Store(err)
					}
				})
			}
			tick.Stop()
			if err := prod.Flush(ctx); err != nil {
				t.Fatalf("flush: %v", err)
			}
			if f := failures.Load(); f != 0 {
				t.Fatalf("%d of %d records failed; first: %v", f, n, firstErr.Load())
			}
			if n < partitions {
				t.Fatalf("only %d records produced in %v: not every partition was written", n, produceFor)
			}

			// The bounds: 20 flushes at 250 ms in 5 s, one for the partial
			// interval, one for the producer-id block. In detail: a segment
			// seals 250 ms after its first record. franz-go's idempotent
			// producer keeps one request in flight, and each request is
			// answered only after its segment sealed and committed, so
			// requests that start within the 5 s are more than 250 ms
			// apart: at most 20 of them, each opening one segment. The
			// request carrying what was buffered when the loop ended may
			// open one more (the partial interval): at most 21 objects
			// (we allow the 22 the log may reach).
			// The log gets one commit entry per object (or fewer, when it
			// groups commits that queue up) and one entry reserving the
			// producer-id block: at most 22. A slower machine only makes
			// fewer flushes. At least 10 each shows the test is not
			// vacuous (it holds while a flush cycle stays under 500 ms).
			segsAfter := b.List(t, "seg/")
			newSegs := diffKeys(segsBefore, segsAfter)
			newLog := len(b.List(t, "meta/log/")) - logBefore
			t.Logf("%d records; %d new segment objects, %d new log entries", n, len(newSegs), newLog)
			if len(newSegs) > 22 || len(newSegs) < 10 {
				t.Fatalf("%d new segment objects for 5 s of producing at a %v flush interval, want 10..22", len(newSegs), interval)
			}
			if newLog > 22 || newLog < 10 {
				t.Fatalf("%d new metadata-log entries for 5 s of producing at a %v flush interval, want 10..22", newLog, interval)
			}

			// One object holds many partitions: decode one from the middle.
			key := newSegs[len(newSegs)/2]
			gctx, gcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer gcancel()
			obj, err := b.Open(t).Get(gctx, key)
			if err != nil {
				t.Fatalf("get %s: %v", key, err)
			}
			parts, err := tiered.DecodeSegment(obj)
			if err != nil {
				t.Fatalf("decode %s: %v", key, err)
			}
			distinct := map[tiered.SegmentPart]bool{}
			for _, p := range parts {
				if p.Batches < 1 {
					t.Fatalf("%s: partition %d has no batch", key, p.Partition)
				}
				distinct[tiered.SegmentPart{Topic: p.Topic, Partition: p.Partition}] = true
			}
			if len(distinct) <= 100 {
				t.Fatalf("%s holds batches of %d partitions, want more than 100", key, len(distinct))
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
