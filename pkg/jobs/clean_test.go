package jobs

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// kv is one record of a compacted topic; a nil value is a tombstone.
type kv struct {
	key, value string
	tombstone  bool
}

// produceKeyed commits one ingestion object holding one batch of recs
// for partition 0 of topic id, compressed with codec, at time ts.
func produceKeyed(t *testing.T, l *meta.Log, store objstore.Store, id meta.TopicID, n int, codec batch.Codec, ts int64, recs []kv) {
	t.Helper()
	ctx := context.Background()
	rs := make([]batch.Record, len(recs))
	for i, r := range recs {
		rs[i] = batch.Record{OffsetDelta: int32(i), TimestampDelta: int64(i), Key: []byte(r.key)}
		if !r.tombstone {
			rs[i].Value = []byte(r.value)
		}
	}
	b, err := batch.Build(batch.Header{PartitionLeaderEpoch: -1, FirstTimestamp: ts, MaxTimestamp: ts + int64(len(recs)) - 1,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, codec, rs)
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("seg/%013d-test-%06d", ts, n)
	if err := store.Put(ctx, key, append(make([]byte, 8), b...)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, meta.Commit{Object: key, Size: int64(len(b)) + 8, Parts: []meta.CommitPart{{Topic: id, Partition: 0,
		Batches: []meta.CommitBatch{{Pos: 8, Len: int64(len(b)), Records: int32(len(recs)), MaxTimestamp: ts + int64(len(recs)) - 1,
			ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}}}}}); err != nil {
		t.Fatal(err)
	}
}

// offsetRecord is a record read back, by offset.
type offsetRecord struct {
	key       string
	value     string
	tombstone bool
	ts        int64
}

// readKeyed reads partition 0 back through a cold reader, checking every
// batch as a client would (CRC, offsets ascending within the batch range).
func readKeyed(t *testing.T, l *meta.Log, store objstore.Store, id meta.TopicID) map[int64]offsetRecord {
	t.Helper()
	data, _ := readAll(t, l, store, id, 0)
	got := map[int64]offsetRecord{}
	next := int64(-1)
	err := batch.Split(data, func(b []byte, h batch.Header) error {
		if _, err := batch.Validate(b); err != nil && h.NumRecords != 0 {
			// Validate insists on dense offsets; a cleaned batch is sparse.
			recs, rerr := batch.Records(b, 1<<20)
			if rerr != nil || len(recs) == int(h.LastOffsetDelta)+1 {
				return fmt.Errorf("batch at %d: %v / %v", h.BaseOffset, err, rerr)
			}
		}
		if h.BaseOffset < next {
			return fmt.Errorf("batch at %d overlaps the previous one ending at %d", h.BaseOffset, next)
		}
		next = h.NextOffset()
		recs, err := batch.Records(b, 1<<20)
		if err != nil {
			return err
		}
		for _, r := range recs {
			off := h.BaseOffset + int64(r.OffsetDelta)
			if off >= next {
				return fmt.Errorf("record offset %d past its batch's end %d", off, next)
			}
			got[off] = offsetRecord{key: string(r.Key), value: string(r.Value), tombstone: r.Value == nil, ts: h.FirstTimestamp + r.TimestampDelta}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestCleanKeepsNewestPerKey(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	l := openLog(t, store)
	id := meta.TopicID{7}
	if _, err := l.Append(ctx, meta.CreateTopic{Name: "c", ID: id, Partitions: 1, Configs: map[string]string{
		"cleanup.policy": "compact", "delete.retention.ms": "1000", "min.cleanable.dirty.ratio": "0.01"}}); err != nil {
		t.Fatal(err)
	}
	// 40 batches of 25 updates over 30 keys, every codec; key k3's last
	// update and every 7th update are tombstones.
	codecs := []batch.Codec{batch.None, batch.Gzip, batch.Snappy, batch.LZ4, batch.Zstd}
	ref := map[string]int64{} // key → newest offset
	all := map[int64]offsetRecord{}
	off := int64(0)
	const base = 1_000_000
	for n := range 40 {
		var recs []kv
		for i := range 25 {
			k := fmt.Sprintf("k%d", (n*25+i)*7%30)
			r := kv{key: k, value: fmt.Sprintf("v%d", off), tombstone: off%7 == 0 || (k == "k3" && n >= 39)}
			recs = append(recs, r)
			ref[k] = off
			all[off] = offsetRecord{key: k, value: r.value, tombstone: r.tombstone, ts: base + int64(n)*100 + int64(i)}
			if r.tombstone {
				o := all[off]
				o.value = ""
				all[off] = o
			}
			off++
		}
		produceKeyed(t, l, store, id, n, codecs[n%len(codecs)], base+int64(n)*100, recs)
	}
	want := map[int64]offsetRecord{}
	for _, o := range ref {
		want[o] = all[o]
	}
	if len(want) != 30 {
		t.Fatalf("reference has %d keys", len(want))
	}

	counted := objstore.NewFaulty(store)
	r := New(Config{WriterID: "w", CompactionTarget: 4 << 10, CleanerBackoff: time.Second}, l, counted, nil)
	now := time.UnixMilli(base + 10_000)
	n, err := r.Clean(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("clean: %d partitions, %v", n, err)
	}
	// The dirty head (40 chunks, all of it here) is read once, not once
	// for the key map and again for the rewrite.
	if gets := counted.Calls(objstore.OpGetRange); gets != 40 {
		t.Errorf("%d ranged GETs for a pass over 40 chunks, want 40", gets)
	}
	got := readKeyed(t, l, store, id)
	if !maps.Equal(got, want) {
		t.Fatalf("after cleaning: %d records, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	var p meta.Partition
	l.View(func(st *meta.State) { p = *st.TopicByID(id).Partition(0) })
	if p.CleanedTo != off || p.HighWatermark != off || p.DeleteHorizon != now.UnixMilli()+1000 {
		t.Fatalf("cleaned to %d, high watermark %d, horizon %d", p.CleanedTo, p.HighWatermark, p.DeleteHorizon)
	}
	for _, c := range p.Chunks {
		if c.Object[:4] != "cln/" {
			t.Errorf("chunk %+v was not rewritten", c)
		}
	}

	// Nothing is dirty and no tombstone is due: no pass.
	if n, err := r.Clean(ctx, now.Add(500*time.Millisecond)); err != nil || n != 0 {
		t.Fatalf("clean with nothing due: %d, %v", n, err)
	}

	// Past the horizon, the tombstones go and nothing else changes.
	if n, err := r.Clean(ctx, now.Add(1001*time.Millisecond)); err != nil || n != 1 {
		t.Fatalf("clean past the delete horizon: %d, %v", n, err)
	}
	maps.DeleteFunc(want, func(_ int64, r offsetRecord) bool { return r.tombstone })
	got = readKeyed(t, l, store, id)
	if !maps.Equal(got, want) {
		t.Fatalf("after the delete horizon: %d records, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	l.View(func(st *meta.State) { p = *st.TopicByID(id).Partition(0) })
	if p.DeleteHorizon != 0 || p.HighWatermark != off {
		t.Fatalf("horizon %d, high watermark %d after dropping tombstones", p.DeleteHorizon, p.HighWatermark)
	}
	// The log still ends at the high watermark, with a batch a consumer
	// can move past even if every record of it went.
	last := p.Chunks[len(p.Chunks)-1]
	b, err := r.readChunk(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	if err := batch.Split(b, func(_ []byte, h batch.Header) error { end = h.NextOffset(); return nil }); err != nil || end != off {
		t.Fatalf("last batch ends at %d, want %d (%v)", end, off, err)
	}
}

func TestCleanDueRules(t *testing.T) {
	ctx := context.Background()
	const base = 1_000_000
	for _, tc := range []struct {
		name    string
		configs map[string]string
		nowMs   int64
		want    int
	}{
		{"dirty ratio reached", map[string]string{"min.cleanable.dirty.ratio": "0.5"}, base + 1000, 1},
		{"below the dirty ratio", map[string]string{"min.cleanable.dirty.ratio": "0.6"}, base + 1000, 0},
		{"below the ratio but past max.compaction.lag.ms", map[string]string{"min.cleanable.dirty.ratio": "0.6", "max.compaction.lag.ms": "500"}, base + 1000, 1},
		{"dirty head newer than min.compaction.lag.ms", map[string]string{"min.cleanable.dirty.ratio": "0", "min.compaction.lag.ms": "5000"}, base + 1000, 0},
		{"dirty head older than min.compaction.lag.ms", map[string]string{"min.cleanable.dirty.ratio": "0", "min.compaction.lag.ms": "5000"}, base + 6000, 1},
		{"policy delete", map[string]string{"cleanup.policy": "delete", "min.cleanable.dirty.ratio": "0"}, base + 1000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := objstore.NewMemory()
			l := openLog(t, store)
			id := meta.TopicID{8}
			configs := map[string]string{"cleanup.policy": "compact,delete"}
			maps.Copy(configs, tc.configs)
			if _, err := l.Append(ctx, meta.CreateTopic{Name: "c", ID: id, Partitions: 1, Configs: configs}); err != nil {
				t.Fatal(err)
			}
			r := New(Config{WriterID: "w"}, l, store, nil)
			same := []kv{{key: "a", value: "1"}, {key: "b", value: "2"}}
			// A first pass at min lag 0 cleans the first half.
			produceKeyed(t, l, store, id, 0, batch.None, base, same)
			if n, err := r.Clean(ctx, time.UnixMilli(base+100)); err != nil || (n != 1) != (configs["cleanup.policy"] == "delete" || configs["min.compaction.lag.ms"] != "") {
				t.Fatalf("first pass: %d, %v", n, err)
			}
			if configs["min.compaction.lag.ms"] != "" {
				// Clean the first half by lowering the lag for one pass.
				lowered := maps.Clone(configs)
				delete(lowered, "min.compaction.lag.ms")
				if _, err := l.Append(ctx, meta.SetTopicConfigs{Topic: id, Configs: lowered}); err != nil {
					t.Fatal(err)
				}
				if n, err := r.Clean(ctx, time.UnixMilli(base+100)); err != nil || n != 1 {
					t.Fatalf("first pass: %d, %v", n, err)
				}
				if _, err := l.Append(ctx, meta.SetTopicConfigs{Topic: id, Configs: configs}); err != nil {
					t.Fatal(err)
				}
			}
			// The dirty head: the same size as the clean tail, 200 ms later.
			produceKeyed(t, l, store, id, 1, batch.None, base+200, same)
			n, err := r.Clean(ctx, time.UnixMilli(tc.nowMs))
			if err != nil || n != tc.want {
				t.Fatalf("cleaned %d partitions, want %d (%v)", n, tc.want, err)
			}
		})
	}
}

// produceFlagged commits a batch whose producer set the delete-horizon
// attribute bit itself, with a first timestamp long past.
func produceFlagged(t *testing.T, l *meta.Log, store objstore.Store, id meta.TopicID, ts int64) {
	t.Helper()
	ctx := context.Background()
	b, err := batch.Build(batch.Header{PartitionLeaderEpoch: -1, Attributes: attrDeleteHorizon, FirstTimestamp: 1, MaxTimestamp: ts,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, batch.None, []batch.Record{{Key: []byte("x"), TimestampDelta: ts - 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, "seg/flagged", append(make([]byte, 8), b...)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, meta.Commit{Object: "seg/flagged", Size: int64(len(b)) + 8, Parts: []meta.CommitPart{{Topic: id, Partition: 0,
		Batches: []meta.CommitBatch{{Pos: 8, Len: int64(len(b)), Records: 1, MaxTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}}}}}); err != nil {
		t.Fatal(err)
	}
}

func TestCleanTombstoneEdges(t *testing.T) {
	ctx := context.Background()
	const base = 1_000_000
	open := func(t *testing.T, configs map[string]string) (*meta.Log, objstore.Store, meta.TopicID, *Runner) {
		store := objstore.NewMemory()
		l := openLog(t, store)
		id := meta.TopicID{9}
		configs["cleanup.policy"] = "compact"
		if _, err := l.Append(ctx, meta.CreateTopic{Name: "c", ID: id, Partitions: 1, Configs: configs}); err != nil {
			t.Fatal(err)
		}
		return l, store, id, New(Config{WriterID: "w", CompactionTarget: 1}, l, store, nil) // a run per chunk
	}
	t.Run("delete.retention.ms of Long.MAX keeps tombstones", func(t *testing.T) {
		l, store, id, r := open(t, map[string]string{"delete.retention.ms": "9223372036854775807"})
		produceKeyed(t, l, store, id, 0, batch.None, base, []kv{{key: "a", value: "1"}, {key: "b", tombstone: true}})
		for _, at := range []int64{base + 100, base + 1e12} {
			if _, err := r.Clean(ctx, time.UnixMilli(at)); err != nil {
				t.Fatal(err)
			}
		}
		if got := readKeyed(t, l, store, id); len(got) != 2 || !got[1].tombstone {
			t.Fatalf("records %v, want both, the tombstone kept", got)
		}
	})
	t.Run("a producer's delete horizon bit is not believed", func(t *testing.T) {
		l, store, id, r := open(t, map[string]string{"delete.retention.ms": "1000"})
		produceFlagged(t, l, store, id, base)
		if _, err := r.Clean(ctx, time.UnixMilli(base+100)); err != nil {
			t.Fatal(err)
		}
		got := readKeyed(t, l, store, id)
		if len(got) != 1 || !got[0].tombstone || got[0].ts != base {
			t.Fatalf("records %v, want the tombstone at %d kept for delete.retention.ms", got, base)
		}
		if _, err := r.Clean(ctx, time.UnixMilli(base+1101)); err != nil {
			t.Fatal(err)
		}
		if got := readKeyed(t, l, store, id); len(got) != 0 {
			t.Fatalf("records %v after delete.retention.ms, want none", got)
		}
	})
	t.Run("a clean chunk from the future does not hold the dirty head back", func(t *testing.T) {
		l, store, id, r := open(t, map[string]string{"min.cleanable.dirty.ratio": "0"})
		produceKeyed(t, l, store, id, 0, batch.None, base+1e9, []kv{{key: "a", value: "future"}})
		if n, err := r.Clean(ctx, time.UnixMilli(base)); err != nil || n != 1 {
			t.Fatalf("first pass: %d, %v", n, err)
		}
		if _, err := l.Append(ctx, meta.SetTopicConfigs{Topic: id, Configs: map[string]string{
			"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0", "min.compaction.lag.ms": "1000"}}); err != nil {
			t.Fatal(err)
		}
		produceKeyed(t, l, store, id, 1, batch.None, base+100, []kv{{key: "a", value: "now"}})
		if n, err := r.Clean(ctx, time.UnixMilli(base+2000)); err != nil || n != 1 {
			t.Fatalf("second pass: %d, %v", n, err)
		}
		if got := readKeyed(t, l, store, id); len(got) != 1 || got[1].value != "now" {
			t.Fatalf("records %v, want only the newer a", got)
		}
	})
	t.Run("cleaned chunks carry the newest kept timestamp", func(t *testing.T) {
		l, store, id, r := open(t, map[string]string{"min.cleanable.dirty.ratio": "0"})
		produceKeyed(t, l, store, id, 0, batch.None, base, []kv{{key: "a", value: "1"}, {key: "b", value: "1"}})
		produceKeyed(t, l, store, id, 1, batch.None, base+500, []kv{{key: "b", value: "2"}})
		if _, err := r.Clean(ctx, time.UnixMilli(base+1000)); err != nil {
			t.Fatal(err)
		}
		var chunks []meta.Chunk
		l.View(func(st *meta.State) { chunks = st.TopicByID(id).Partition(0).Chunks })
		// The first run kept a (at base) and dropped b (at base+1).
		if len(chunks) == 0 || chunks[0].MaxTimestamp != base {
			t.Fatalf("chunks %+v: the first should end at timestamp %d", chunks, base)
		}
	})
}
