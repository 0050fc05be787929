package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// viewBucketState opens the bucket's metadata log read-only and calls fn
// with its state.
func viewBucketState(t *testing.T, b harness.Backend, fn func(*meta.State)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := meta.Open(ctx, b.Open(t), meta.Options{WriterID: "probe"})
	if err != nil {
		t.Fatal(err)
	}
	l.View(fn)
}

// metaState returns the size of a snapshot of the bucket's metadata state
// and the chunks of topic.
func metaState(t *testing.T, b harness.Backend, topic string) (snapBytes, chunks int) {
	t.Helper()
	viewBucketState(t, b, func(st *meta.State) {
		snapBytes = len(st.EncodeSnapshot())
		for _, p := range st.Topic(topic).Partitions {
			chunks += len(p.Chunks)
		}
	})
	return snapBytes, chunks
}

// consumeKeyed reads every record of topic from the start; franz-go checks
// each batch's CRC as it decodes it.
func consumeKeyed(t *testing.T, addr, topic string, want int) map[string]string {
	t.Helper()
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := map[string]string{}
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), want, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = string(r.Value) })
	}
	if len(got) != want {
		t.Fatalf("consumed %d records, want %d", len(got), want)
	}
	return got
}

// produceSmallObjects produces rounds of perPart records to every
// partition, ten partitions per request, so that the agent writes many
// small ingestion objects, each with a little of several partitions.
func produceSmallObjects(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, partitions, rounds, perPart int) {
	t.Helper()
	for r := range rounds {
		for g := 0; g < partitions; g += 10 {
			var recs []*kgo.Record
			for p := g; p < min(g+10, partitions); p++ {
				for i := range perPart {
					recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(p), Value: fmt.Appendf(nil, "r%d-p%d-%d", r, p, i)})
				}
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
}

// TestFileCompaction: many small multi-partition ingestion objects are
// merged into one object per partition; consumers read the same records
// at the same offsets, the ingestion objects are collected and the
// metadata state shrinks.
func TestFileCompaction(t *testing.T) {
	const (
		partitions = 50
		rounds     = 100 // each round: 5 produce requests of 10 partitions
		perPart    = 2   // records per partition per request
	)
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond, "--compaction-interval=0")
	createTopic(t, a.Addr, "cmp", partitions, nil)
	cl := client(t, a.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	produceSmallObjects(ctx, t, cl, "cmp", partitions, rounds, perPart)
	total := partitions * rounds * perPart
	before := consumeKeyed(t, a.Addr, "cmp", total)
	segBefore := len(b.List(t, "seg/"))
	snapBefore, chunksBefore := metaState(t, b, "cmp")
	t.Logf("before: %d seg/ objects, %d chunks, snapshot %d bytes", segBefore, chunksBefore, snapBefore)
	if segBefore < rounds*partitions/10/2 || chunksBefore < partitions*2 {
		t.Fatalf("only %d ingestion objects and %d chunks: the test needs many small ones", segBefore, chunksBefore)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}

	a = startAgent(t, b, 5*time.Millisecond, "--compaction-interval=300ms", "--retention-check-interval=200ms", "--collect-grace=100ms")
	harness.Eventually(t, 2*time.Minute, func() bool {
		return len(b.List(t, "seg/")) == 0 && len(b.List(t, "cmp/")) >= partitions
	}, "ingestion objects not compacted and collected")
	snapAfter, chunksAfter := metaState(t, b, "cmp")
	t.Logf("after: %d cmp/ objects, %d chunks, snapshot %d bytes", len(b.List(t, "cmp/")), chunksAfter, snapAfter)
	if chunksAfter > partitions*2 || snapAfter >= snapBefore/2 {
		t.Fatalf("state did not shrink: %d chunks (was %d), snapshot %d bytes (was %d)", chunksAfter, chunksBefore, snapAfter, snapBefore)
	}

	// Every chunk there was before is one this agent replaced.
	if n := scrape(t, a.HTTPAddr)["barge_compacted_chunks_total"]; n < float64(chunksBefore) {
		t.Errorf("barge_compacted_chunks_total %v, want at least the %d chunks replaced", n, chunksBefore)
	}

	after := consumeKeyed(t, a.Addr, "cmp", total)
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("record %s: %q after compaction, %q before", k, after[k], v)
		}
	}
}

// TestCompactedChunkReadByWindows: a partition's log compacted into one
// chunk of megabytes is read back, by a consumer asking for a little of it
// per fetch, with every record at its offset, in a handful of ranged GETs:
// a window of the chunk per GET, not the whole chunk per fetch.
func TestCompactedChunkReadByWindows(t *testing.T) {
	const records, size = 6000, 1000
	b := harness.MinIOBackend(t)
	a := startAgent(t, b, 5*time.Millisecond, "--compaction-interval=0")
	createTopic(t, a.Addr, "long", 1, nil)
	cl := client(t, a.Addr, kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	value := func(i int) []byte { return fmt.Appendf(nil, "%06d-%0*d", i, size-7, i) }
	for i := 0; i < records; i += 100 {
		var recs []*kgo.Record
		for j := i; j < i+100; j++ {
			recs = append(recs, &kgo.Record{Topic: "long", Value: value(j)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}

	// A 16 MiB cache gives ranges 4 MiB, less than the chunk: as with a
	// consumer catching up on many partitions compacted into chunks of
	// jobs.DefaultCompactionTarget, more than the share for ranges holds.
	a = startAgent(t, b, 5*time.Millisecond, "--compaction-interval=300ms", "--retention-check-interval=200ms", "--collect-grace=100ms",
		"--cache-bytes=16777216")
	var long meta.Chunk
	harness.Eventually(t, 2*time.Minute, func() bool {
		chunks := 0
		viewBucketState(t, b, func(st *meta.State) {
			p := st.Topic("long").Partitions[0]
			if chunks = len(p.Chunks); chunks == 1 {
				long = p.Chunks[0]
			}
		})
		return chunks == 1 && len(b.List(t, "seg/")) == 0
	}, "the partition's chunks not compacted into one")
	windows := int(long.Len/tiered.RangeWindow) + 1
	if windows < 5 {
		t.Fatalf("compacted chunk of %d bytes; the test wants one of several windows", long.Len)
	}

	before := scrape(t, a.HTTPAddr)[rangeReads]
	cons := client(t, a.Addr, kgo.ConsumeTopics("long"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(100<<10))
	fetches := 0
	for next := 0; next < records; {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", next, records, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fetches++
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != int64(next) || string(r.Value) != string(value(next)) {
				t.Fatalf("record at offset %d (%.12q...), want offset %d (%.12q...)", r.Offset, r.Value, next, value(next))
			}
			next++
		})
	}
	reads := scrape(t, a.HTTPAddr)[rangeReads] - before
	t.Logf("%d records of a %d-byte chunk in %d polls, %v ranged GETs", records, long.Len, fetches, reads)
	if reads > float64(2*windows) {
		t.Errorf("%v ranged GETs to read a chunk of %d windows; want at most %d", reads, windows, 2*windows)
	}
}
