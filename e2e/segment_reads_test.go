package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
)

const (
	rangeReads = `barge_segment_reads_total{kind="range"}`
	wholeReads = `barge_segment_reads_total{kind="whole"}`
)

// produceRounds produces rounds ProduceSync calls of perPart records to
// each of partitions partitions of topic, so that most segments hold
// several partitions' chunks. Values are "p/i".
func produceRounds(ctx context.Context, t *testing.T, addr, topic string, partitions, rounds, perPart int) {
	t.Helper()
	cl := client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for r := range rounds {
		var recs []*kgo.Record
		for p := range partitions {
			for i := range perPart {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(p), Value: fmt.Appendf(nil, "%d/%d", p, r*perPart+i)})
			}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCacheBytesWholeSegmentRule: the README's --cache-bytes row. A cold
// agent whose quarter of --cache-bytes for segments read whole holds four
// segments of its --flush-bytes reads each missing ingestion segment whole,
// once, and serves its other partitions' chunks from memory; one byte less
// of cache and it reads every chunk with a ranged GET instead. Counted by
// barge_segment_reads_total{kind}.
func TestCacheBytesWholeSegmentRule(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { checkWholeSegmentRule(t, b) })
	}
}

func checkWholeSegmentRule(t *testing.T, b harness.Backend) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := startAgent(t, b, 0)
	const partitions, rounds, perPart = 4, 6, 3
	createTopic(t, w.Addr, "whole", partitions, nil)
	produceRounds(ctx, t, w.Addr, "whole", partitions, rounds, perPart)
	ends := endOffsets(t, w.Addr, "whole")
	// The readers below are alone, so that every partition's fetches
	// reach them, not their leader's cache: the writer leaves.
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}

	var chunks int
	objects := map[string]bool{}
	viewBucketState(t, b, func(st *meta.State) {
		for _, p := range st.Topic("whole").Partitions {
			for _, c := range p.Chunks {
				chunks++
				objects[c.Object] = true
			}
		}
	})
	if chunks <= len(objects) {
		t.Fatalf("%d chunks in %d objects: no segment holds two partitions, the rule would not show", chunks, len(objects))
	}

	const flushBytes = 1 << 20 // four of them: 4 MiB, a quarter of 16 MiB
	for _, tc := range []struct {
		cacheBytes    int64
		whole, range_ int // reads expected; -1: at least chunks
	}{
		{16 << 20, len(objects), 0},
		{16<<20 - 1, 0, -1},
	} {
		t.Run(fmt.Sprint(tc.cacheBytes), func(t *testing.T) {
			r := startAgent(t, b, 0, "--jobs=false", fmt.Sprintf("--flush-bytes=%d", flushBytes), fmt.Sprintf("--cache-bytes=%d", tc.cacheBytes))
			got := consumeAll(t, r.Addr, "whole", ends)
			for p, recs := range got {
				for i, rec := range recs {
					if want := fmt.Sprintf("%d/%d", p, i); string(rec.Value) != want {
						t.Fatalf("%d/%d: %q, want %q", p, i, rec.Value, want)
					}
				}
			}
			m := scrape(t, r.HTTPAddr)
			whole, ranged := int(m[wholeReads]), int(m[rangeReads])
			t.Logf("%d chunks in %d segments: %d whole-segment reads, %d ranged", chunks, len(objects), whole, ranged)
			if _, ok := m[wholeReads]; !ok {
				t.Fatalf("no %s in /metrics", wholeReads)
			}
			if whole != tc.whole || (tc.range_ >= 0 && ranged != tc.range_) || (tc.range_ < 0 && ranged < chunks) {
				t.Errorf("--cache-bytes=%d --flush-bytes=%d: %d whole-segment and %d ranged reads for %d chunks in %d segments; want %d whole and %d ranged (-1: one per chunk at least)",
					tc.cacheBytes, flushBytes, whole, ranged, chunks, len(objects), tc.whole, tc.range_)
			}
			if err := r.Stop(); err != nil { // it leaves: the next reader is alone
				t.Fatal(err)
			}
		})
	}
}

// TestTailReadsMakeNoSegmentGets: the README's "tail consumers never reach
// the bucket". Consumers that keep up with producers are served from the
// agent's copy of the objects it has just committed: zero segment reads
// (barge_segment_reads_total, either kind) and zero ranged GETs of the
// bucket, whether the agent would read missing segments whole or by range.
func TestTailReadsMakeNoSegmentGets(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"whole-segment reads", nil},                         // 512 MiB cache, 8 MiB flushes
		{"ranged reads", []string{"--cache-bytes=33554431"}}, // a quarter holds under four 8 MiB segments
	} {
		for _, b := range []harness.Backend{harness.FileBackend(t), harness.MinIOBackend(t)} {
			t.Run(tc.name+"/"+b.Name, func(t *testing.T) { checkTailReads(t, b, tc.args) })
		}
	}
}

// checkTailReads runs TestTailReadsMakeNoSegmentGets's case on b, at the
// backend's default flush interval (250 ms on S3, 5 ms on a directory).
func checkTailReads(t *testing.T, b harness.Backend, args []string) {
	a := startAgent(t, b, 0, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const partitions, rounds, perPart = 4, 20, 5
	createTopic(t, a.Addr, "tail", partitions, nil)
	// The consumer is polling before the first record exists.
	cl := client(t, a.Addr, kgo.ConsumeTopics("tail"), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(time.Second))
	seen := make(chan int, 1)
	go func() {
		n := 0
		for n < partitions*rounds*perPart && ctx.Err() == nil {
			n += cl.PollFetches(ctx).NumRecords()
		}
		seen <- n
	}()
	harness.Eventually(t, time.Minute, func() bool { return scrape(t, a.HTTPAddr)[`barge_requests_total{api="Fetch"}`] > 0 },
		"the consumer never fetched")
	produceRounds(ctx, t, a.Addr, "tail", partitions, rounds, perPart)
	if n := <-seen; n != partitions*rounds*perPart {
		t.Fatalf("tail consumer read %d of %d records", n, partitions*rounds*perPart)
	}
	m := scrape(t, a.HTTPAddr)
	if _, ok := m[wholeReads]; !ok {
		t.Fatalf("no %s in /metrics", wholeReads)
	}
	for _, name := range []string{wholeReads, rangeReads, `barge_objstore_requests_total{op="get_range",result="ok"}`} {
		if m[name] != 0 {
			t.Errorf("%s = %v after tail reads, want 0", name, m[name])
		}
	}
	if m["barge_cache_hits_total"] == 0 {
		t.Errorf("no cache hits: the tail reads were not served from the cache")
	}
}
