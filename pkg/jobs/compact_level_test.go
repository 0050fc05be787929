package jobs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

func TestMain(m *testing.M) { harness.Main(m) }

// readCounter counts the chunk bytes the compactor reads: a merge reads
// each of its inputs once, so this is the bytes it rewrote.
type readCounter struct {
	Store
	read atomic.Int64
}

func (s *readCounter) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	s.read.Add(n)
	return s.Store.GetRange(ctx, key, off, n)
}

// 1,000 compaction passes over a topic that gets a trickle of small
// ingestion objects between passes (and now and then a burst large enough
// to be left alone) keep each partition's chunks within the bound
// compact.go documents at every pass, rewrite each byte at most the
// documented number of times, and leave every record readable in order.
func TestCompactLeveledBound(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { testLeveledBound(t, b.Open(t)) })
	}
}

func testLeveledBound(t *testing.T, bucket objstore.Store) {
	const (
		passes     = 1000
		partitions = 2
		target     = 64 << 10
		// Levels under target/8 = 8 KiB, by factors of 8 down to the
		// smallest chunk, one batch header (61 bytes): [1 KiB, 8 KiB),
		// [128 B, 1 KiB), [16 B, 128 B).
		levels = 3
		fanout = 8
	)
	ctx := context.Background()
	l := openLog(t, bucket)
	id := meta.TopicID{7}
	if _, err := l.Append(ctx, meta.CreateTopic{Name: "t", ID: id, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	store := &readCounter{Store: bucket}
	r := New(Config{CompactionTarget: target, WriterID: "w"}, l, store, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([][]string, partitions) // every record value, in produce order
	var ingested int64
	objects := 0
	newObject := func(pass int) meta.Commit {
		var obj []byte
		var parts []meta.CommitPart
		for p := range int32(partitions) {
			n := 1 + rng.IntN(6)
			if p == 0 && pass%100 == 50 {
				n = 700 // a burst: one chunk over target/8
			}
			values := make([]string, n)
			for i := range values {
				values[i] = fmt.Sprintf("%d-%d%s", p, len(want[p])+i, strings.Repeat(".", rng.IntN(20)))
			}
			want[p] = append(want[p], values...)
			b := valuesBatch(t, values)
			parts = append(parts, meta.CommitPart{Topic: id, Partition: p, Batches: []meta.CommitBatch{{Pos: int64(len(obj)),
				Len: int64(len(b)), Records: int32(n), MaxTimestamp: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}}})
			obj = append(obj, b...)
			ingested += int64(len(b))
		}
		key := fmt.Sprintf("seg/%013d-w-%06d", pass, objects)
		objects++
		if err := bucket.Put(ctx, key, obj); err != nil {
			t.Fatal(err)
		}
		return meta.Commit{Object: key, Size: int64(len(obj)), Parts: parts}
	}

	most := 0
	for pass := range passes {
		var ops []meta.Op
		for range rng.IntN(4) {
			ops = append(ops, newObject(pass))
		}
		if pass%100 == 50 && len(ops) == 0 {
			ops = append(ops, newObject(pass))
		}
		if len(ops) > 0 {
			if _, err := l.Append(ctx, ops...); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Compact(ctx); err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		l.View(func(st *meta.State) {
			for p, part := range st.Topic("t").Partitions {
				small, big := 0, 0
				for _, c := range part.Chunks {
					if c.Len < target/fanout {
						small++
					} else {
						big++
					}
				}
				most = max(most, small)
				// The open tail holds fewer than fanout chunks per level;
				// each chunk left alone closes at most one run before
				// it, which keeps at most one small chunk.
				if bound := (fanout-1)*levels + big; small > bound {
					t.Fatalf("pass %d: partition %d has %d chunks under %d bytes (and %d over), bound %d",
						pass, p, small, target/fanout, big, bound)
				}
			}
		})
	}
	rewritten := store.read.Load()
	t.Logf("%d passes, %d objects, %d bytes ingested, %d rewritten (%.2f per byte), at most %d small chunks",
		passes, objects, ingested, rewritten, float64(rewritten)/float64(ingested), most)
	// Leaving the ingestion object, twice per level, and closing a run.
	if limit := (2*levels + 2) * ingested; rewritten > limit {
		t.Fatalf("rewrote %d bytes of %d ingested, bound %d", rewritten, ingested, limit)
	}
	for p := range int32(partitions) {
		data, _ := readAll(t, l, bucket, id, p)
		var got []string
		next := int64(0)
		err := batch.Split(data, func(raw []byte, h batch.Header) error {
			if h.BaseOffset != next {
				return fmt.Errorf("batch at offset %d, want %d", h.BaseOffset, next)
			}
			next = h.NextOffset()
			recs, err := batch.Records(raw, 1<<20)
			for _, rec := range recs {
				got = append(got, string(rec.Value))
			}
			return err
		})
		if err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
		if strings.Join(got, ",") != strings.Join(want[p], ",") {
			t.Fatalf("partition %d reads %d records, want %d in produce order", p, len(got), len(want[p]))
		}
	}
}
