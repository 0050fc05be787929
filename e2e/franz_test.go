package e2e

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
)

// TestFranzMillionRecords: a franz-go producer with its defaults
// (idempotent, acks=all, its own linger and buffering) writes a million
// records over 64 partitions, and a fresh consumer reads each exactly once,
// at the offset it was acknowledged with, in the order the acknowledgements
// came. Against MinIO the agent uses the S3 default flush interval, 250ms.
func TestFranzMillionRecords(t *testing.T) {
	const (
		n          = 1_000_000
		partitions = 64
	)
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0) // the default: 5ms for file, 250ms for s3
			const topic = "million"
			createTopic(t, a.Addr, topic, partitions, nil)

			// Produce: the value is a 16-byte record number, independent of
			// the partition the producer picks.
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			prod := client(t, a.Addr, kgo.DefaultProduceTopic(topic))
			var (
				mu       sync.Mutex
				acked    [partitions][]uint64 // per partition, in callback order
				ackedOff = make([]int64, n)   // per record, the offset it was acknowledged with
				failures atomic.Int64
				firstErr atomic.Value
			)
			for i := range n {
				v := make([]byte, 16)
				binary.BigEndian.PutUint64(v, uint64(i))
				copy(v[8:], "franz-go")
				prod.Produce(ctx, &kgo.Record{Value: v}, func(r *kgo.Record, err error) {
					if err != nil {
						if failures.Add(1) == 1 {
							firstErr.Store(err)
						}
						return
					}
					seq := binary.BigEndian.Uint64(r.Value)
					mu.Lock()
					acked[r.Partition] = append(acked[r.Partition], seq)
					ackedOff[seq] = r.Offset
					mu.Unlock()
				})
			}
			if err := prod.Flush(ctx); err != nil {
				t.Fatalf("flush: %v", err)
			}
			if f := failures.Load(); f != 0 {
				t.Fatalf("%d of %d records failed; first: %v", f, n, firstErr.Load())
			}

			// Consume everything with a fresh client.
			cons := client(t, a.Addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			var consumed [partitions][]uint64
			seen := make([]bool, n)
			for got := 0; got < n; {
				fs := cons.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("consumed %d of %d records before the deadline", got, n)
				}
				fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
				fs.EachRecord(func(r *kgo.Record) {
					seq := binary.BigEndian.Uint64(r.Value)
					switch {
					case len(r.Value) != 16 || seq >= n:
						t.Fatalf("partition %d offset %d: unexpected value %x", r.Partition, r.Offset, r.Value)
					case seen[seq]:
						t.Fatalf("record %d read twice (again at partition %d offset %d)", seq, r.Partition, r.Offset)
					case r.Offset != int64(len(consumed[r.Partition])):
						t.Fatalf("partition %d: offset %d after %d records", r.Partition, r.Offset, len(consumed[r.Partition]))
					case r.Offset != ackedOff[seq]:
						t.Fatalf("record %d read at partition %d offset %d, acknowledged at offset %d", seq, r.Partition, r.Offset, ackedOff[seq])
					}
					seen[seq] = true
					consumed[r.Partition] = append(consumed[r.Partition], seq)
					got++
				})
			}

			used := 0
			for p := range partitions {
				if len(consumed[p]) != len(acked[p]) {
					t.Fatalf("partition %d: read %d records, %d were acknowledged there", p, len(consumed[p]), len(acked[p]))
				}
				for i := range consumed[p] {
					if consumed[p][i] != acked[p][i] {
						t.Fatalf("partition %d offset %d: read record %d, the %d-th acknowledgement was record %d",
							p, i, consumed[p][i], i, acked[p][i])
					}
				}
				if len(consumed[p]) > 0 {
					used++
				}
			}
			if used < partitions/2 {
				t.Fatalf("records landed in only %d of %d partitions", used, partitions)
			}
		})
	}
}
