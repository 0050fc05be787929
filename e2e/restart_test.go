package e2e

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestKillNineKeepsAcknowledged: what an agent acknowledged survives
// SIGKILL right after the acknowledgement. After a restart on the same
// bucket every acknowledged record is read back at the offset it was
// acknowledged with, the end offsets are unchanged, and new records
// continue from them.
func TestKillNineKeepsAcknowledged(t *testing.T) {
	const (
		n          = 20_000
		perBatch   = 500
		partitions = 8
		topic      = "survivor"
	)
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0)
			createTopic(t, a.Addr, topic, partitions, nil)

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			prod := client(t, a.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			acked := map[int32]map[int64]string{} // partition → offset → value
			for p := range int32(partitions) {
				acked[p] = map[int64]string{}
			}
			for start := 0; start < n; start += perBatch {
				rs := make([]*kgo.Record, perBatch)
				for i := range rs {
					seq := start + i
					rs[i] = &kgo.Record{Partition: int32(seq % partitions), Value: fmt.Appendf(nil, "rec-%d", seq)}
				}
				if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
					t.Fatalf("produce records %d..%d: %v", start, start+perBatch-1, err)
				}
				for _, r := range rs {
					if _, dup := acked[r.Partition][r.Offset]; dup {
						t.Fatalf("offset %d of partition %d acknowledged twice", r.Offset, r.Partition)
					}
					acked[r.Partition][r.Offset] = string(r.Value)
				}
			}
			a.Kill() // SIGKILL, right after the last acknowledgement
			prod.Close()

			ends := map[int32]int64{}
			for p, offs := range acked {
				ends[p] = int64(len(offs)) // acknowledged offsets are 0..len-1: checked below
			}

			a.Restart(t)
			if got := endOffsets(t, a.Addr, topic); !maps.Equal(got, ends) {
				t.Fatalf("end offsets after restart %v, before the kill %v", got, ends)
			}
			read := consumeAll(t, a.Addr, topic, ends)
			for p, offs := range acked {
				for off, v := range offs {
					if off >= int64(len(read[p])) {
						t.Fatalf("partition %d: acknowledged offset %d not readable (end %d)", p, off, len(read[p]))
					}
					if got := string(read[p][off].Value); got != v {
						t.Fatalf("partition %d offset %d: read %q, acknowledged %q", p, off, got, v)
					}
				}
			}

			// New records continue the offsets.
			prod2 := client(t, a.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			for p := range int32(partitions) {
				r := &kgo.Record{Partition: p, Value: []byte("after-restart")}
				if err := prod2.ProduceSync(ctx, r).FirstErr(); err != nil {
					t.Fatalf("produce after restart to partition %d: %v", p, err)
				}
				if r.Offset != ends[p] {
					t.Fatalf("partition %d: first offset after restart %d, end offset before the kill %d", p, r.Offset, ends[p])
				}
			}
		})
	}
}
