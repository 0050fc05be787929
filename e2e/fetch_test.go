package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
)

// fetchRaw fetches partition 0 of topic at offset.
func fetchRaw(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, offset int64, maxWait time.Duration) kmsg.FetchResponseTopicPartition {
	t.Helper()
	return fetchPartition(ctx, t, cl, topic, 0, offset, maxWait, 1<<20)
}

// fetchPartition fetches one partition at offset with a raw Fetch request.
func fetchPartition(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, partition int32, offset int64, maxWait time.Duration, maxBytes int32) kmsg.FetchResponseTopicPartition {
	t.Helper()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 {
		t.Fatalf("metadata for %s: %v", topic, err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = int32(maxWait/time.Millisecond), 1, 50<<20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, mresp.Topics[0].TopicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, offset, maxBytes
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("fetch %s/%d at %d: %v", topic, partition, offset, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch %s/%d at %d: malformed answer", topic, partition, offset)
	}
	return resp.Topics[0].Partitions[0]
}

// batchesIn lists the (base offset, record count) of each batch.
func batchesIn(t *testing.T, b []byte) [][2]int64 {
	t.Helper()
	var out [][2]int64
	err := batch.Split(b, func(_ []byte, h batch.Header) error {
		out = append(out, [2]int64{h.BaseOffset, int64(h.NumRecords)})
		return nil
	})
	if err != nil {
		t.Fatalf("fetched bytes do not split into batches: %v", err)
	}
	return out
}

// TestFetchSemantics: whole batches from inside a batch, long polling at
// the high watermark, OFFSET_OUT_OF_RANGE beyond it.
func TestFetchSemantics(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			createTopic(t, a.Addr, "f", 1, nil)
			cl := client(t, a.Addr)
			for i := 0; i < 3; i++ {
				if code := produceRaw(ctx, t, cl, "f", buildBatch(t, 10, 10)); code != 0 {
					t.Fatalf("produce: %v", kerr.ErrorForCode(code))
				}
			}

			p := fetchRaw(ctx, t, cl, "f", 15, 0)
			got := batchesIn(t, p.RecordBatches)
			if p.ErrorCode != 0 || p.HighWatermark != 30 || len(got) != 2 || got[0] != [2]int64{10, 10} || got[1] != [2]int64{20, 10} {
				t.Fatalf("fetch at 15: error %v hwm %d batches %v, want the whole batches from offset 10", kerr.ErrorForCode(p.ErrorCode), p.HighWatermark, got)
			}

			// At the high watermark with nothing new: an empty answer, not before MaxWait.
			start := time.Now()
			p = fetchRaw(ctx, t, cl, "f", 30, 300*time.Millisecond)
			if p.ErrorCode != 0 || len(p.RecordBatches) != 0 || time.Since(start) < 300*time.Millisecond {
				t.Fatalf("idle fetch at the high watermark: error %v, %d bytes after %v", kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches), time.Since(start))
			}

			// At the high watermark with a long MaxWait: it answers when data
			// arrives. The request's own deadline (30 s) is far below MaxWait
			// (10 min), so only an early answer can pass.
			fetched := make(chan kmsg.FetchResponseTopicPartition, 1)
			go func() {
				fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
				defer fcancel()
				fetched <- fetchRaw(fctx, t, cl, "f", 30, 10*time.Minute)
			}()
			if code := produceRaw(ctx, t, client(t, a.Addr), "f", buildBatch(t, 10, 5)); code != 0 {
				t.Fatalf("produce: %v", kerr.ErrorForCode(code))
			}
			p = <-fetched
			if got := batchesIn(t, p.RecordBatches); p.ErrorCode != 0 || len(got) != 1 || got[0] != [2]int64{30, 5} {
				t.Fatalf("long poll: error %v batches %v, want the new batch at 30", kerr.ErrorForCode(p.ErrorCode), got)
			}

			for _, off := range []int64{36, 1000, -1} {
				if p = fetchRaw(ctx, t, cl, "f", off, 0); p.ErrorCode != kerr.OffsetOutOfRange.Code || p.HighWatermark != 35 {
					t.Errorf("fetch at %d: %v hwm %d, want OFFSET_OUT_OF_RANGE with hwm 35", off, kerr.ErrorForCode(p.ErrorCode), p.HighWatermark)
				}
			}
		})
	}
}

// TestLaggingConsumerReadsThroughCache: with a cache far smaller than the
// data, a consumer from offset 0 gets every record from the bucket through
// the read-through cache (ranged GETs, cache misses), and every record's
// key and value are the bytes produced (compared by SHA-256).
func TestLaggingConsumerReadsThroughCache(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0, "--cache-bytes", "4194304")
			createTopic(t, a.Addr, "lag", 4, nil)
			const n = 20000 // 20 MB of 1 KiB values, five times the cache
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			pcl := client(t, a.Addr, kgo.DefaultProduceTopic("lag"))
			sums := make(map[string][sha256.Size]byte, n) // id → hash of key and value produced
			for i := 0; i < n; i += 1000 {
				recs := make([]*kgo.Record, 1000)
				for j := range recs {
					v := append([]byte(fmt.Sprintf("%08d", i+j)), make([]byte, 1024)...)
					rand.Read(v[8:]) // incompressible: the bytes must really be 20 MB
					recs[j] = &kgo.Record{Key: []byte(fmt.Sprint((i + j) % 97)), Value: v}
					sums[string(v[:8])] = recordSum(recs[j])
				}
				if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			before := scrape(t, a.HTTPAddr)

			ccl := client(t, a.Addr, kgo.ConsumeTopics("lag"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			seen := make(map[string]bool, n)
			for len(seen) < n {
				fs := ccl.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("consumed %d of %d: %v", len(seen), n, err)
				}
				fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
				fs.EachRecord(func(r *kgo.Record) {
					if len(r.Value) < 8 {
						t.Fatalf("%d/%d: value of %d bytes", r.Partition, r.Offset, len(r.Value))
					}
					id := string(r.Value[:8])
					if seen[id] {
						t.Fatalf("record %s read twice", id)
					}
					want, ok := sums[id]
					if !ok {
						t.Fatalf("%d/%d: record %q was never produced", r.Partition, r.Offset, id)
					}
					if recordSum(r) != want {
						t.Fatalf("%d/%d: record %s's key or value differs from what was produced", r.Partition, r.Offset, id)
					}
					seen[id] = true
				})
			}
			after := scrape(t, a.HTTPAddr)
			gets := after[`barge_objstore_requests_total{op="get_range",result="ok"}`] - before[`barge_objstore_requests_total{op="get_range",result="ok"}`]
			misses := after["barge_cache_misses_total"] - before["barge_cache_misses_total"]
			if gets == 0 || misses == 0 {
				t.Fatalf("catch-up read did not go to the bucket through the cache: %v ranged GETs, %v misses (hits %v→%v, produced bytes %v)", gets, misses, before["barge_cache_hits_total"], after["barge_cache_hits_total"], after["barge_produce_bytes_total"])
			}
		})
	}
}

// recordSum hashes a record's key and value, each with its length first.
func recordSum(r *kgo.Record) [sha256.Size]byte {
	h := sha256.New()
	for _, b := range [][]byte{r.Key, r.Value} {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
		h.Write(b)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// When fetch.max.bytes cuts an answer short, the partitions whose next
// records sit in the oldest ingestion segment get the bytes first, whatever
// the request's order: a consumer far behind on many partitions then
// reads each segment for all of them at once, and the partitions cut are
// the ones ahead.
func TestFetchServesOldestSegmentFirst(t *testing.T) {
	b := harness.Backends(t)[0]
	a := startAgent(t, b, 0)
	createTopic(t, a.Addr, "oldest", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := client(t, a.Addr, kgo.DefaultProduceTopic("oldest"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, p := range []int32{1, 0} { // partition 1's record in the older segment
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(fmt.Sprint("p", p))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("oldest")
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 {
		t.Fatalf("metadata: %v", err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxBytes, req.MinBytes, req.SessionEpoch = 1, 1, -1 // room for the one batch a fetch always gets
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = "oldest", mresp.Topics[0].TopicID
	for _, p := range []int32{0, 1} {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = p, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32]int{}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("partition %d: error %d", p.Partition, p.ErrorCode)
		}
		got[p.Partition] = len(batchesIn(t, p.RecordBatches))
	}
	if got[1] != 1 || got[0] != 0 {
		t.Errorf("batches by partition %v: want partition 1's (the older segment) alone", got)
	}
}
