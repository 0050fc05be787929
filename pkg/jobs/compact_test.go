package jobs

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
	"github.com/bargehq/barge/pkg/tiered"
)

func mkBatch(t *testing.T, tag string, n int) []byte {
	t.Helper()
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("%s/%d", tag, i)
	}
	return valuesBatch(t, values)
}

// valuesBatch returns a batch holding values, as a producer sends it.
func valuesBatch(t *testing.T, values []string) []byte {
	t.Helper()
	recs := make([]batch.Record, len(values))
	for i, v := range values {
		recs[i] = batch.Record{OffsetDelta: int32(i), Value: []byte(v)}
	}
	b, err := batch.Build(batch.Header{PartitionLeaderEpoch: -1, FirstTimestamp: 1, MaxTimestamp: 1,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, batch.None, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll reads partition p's chunks through a cold reader.
func readAll(t *testing.T, l *meta.Log, store objstore.Store, id meta.TopicID, p int32) ([]byte, []string) {
	t.Helper()
	c, err := cache.New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := tiered.NewReader(store, c)
	var chunks []meta.Chunk
	l.View(func(st *meta.State) { chunks = append(chunks, st.TopicByID(id).Partition(p).Chunks...) })
	var out []byte
	var objs []string
	for _, ch := range chunks {
		b, err := rd.Chunk(context.Background(), ch)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
		objs = append(objs, ch.Object)
	}
	return out, objs
}

func TestCompactMergesSmallChunks(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	l := openLog(t, store)
	id := meta.TopicID{1}
	if _, err := l.Append(ctx, meta.CreateTopic{Name: "t", ID: id, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	// Five ingestion objects, each with a batch of both partitions.
	for i := range 5 {
		b0, b1 := mkBatch(t, fmt.Sprintf("p0-%d", i), i+1), mkBatch(t, fmt.Sprintf("p1-%d", i), 2)
		obj := append(append(make([]byte, 8), b0...), b1...)
		key := fmt.Sprintf("seg/%d", i)
		if err := store.Put(ctx, key, obj); err != nil {
			t.Fatal(err)
		}
		cb := func(pos int64, b []byte, n int32) []meta.CommitBatch {
			return []meta.CommitBatch{{Pos: pos, Len: int64(len(b)), Records: n, MaxTimestamp: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}}
		}
		if _, err := l.Append(ctx, meta.Commit{Object: key, Size: int64(len(obj)), Parts: []meta.CommitPart{
			{Topic: id, Partition: 0, Batches: cb(8, b0, int32(i+1))},
			{Topic: id, Partition: 1, Batches: cb(8+int64(len(b0)), b1, 2)}}}); err != nil {
			t.Fatal(err)
		}
	}
	before0, _ := readAll(t, l, store, id, 0)
	before1, _ := readAll(t, l, store, id, 1)
	r := New(Config{Grace: 0, CompactionTarget: 1 << 20, WriterID: "w",
		Owns: func(job string) bool { return job == "compact/t" || job == "collect" }}, l, store, nil)
	n, err := r.Compact(ctx)
	if err != nil || n != 10 {
		t.Fatalf("compact: %d chunks, %v; want 10", n, err)
	}
	for p, want := range [][]byte{before0, before1} {
		got, objs := readAll(t, l, store, id, int32(p))
		if !bytes.Equal(got, want) {
			t.Fatalf("partition %d reads differently after compaction", p)
		}
		if len(objs) != 1 || !strings.HasPrefix(objs[0], "cmp/") {
			t.Fatalf("partition %d in %v", p, objs)
		}
	}
	// Every ingestion object is released and collected.
	if n, err := r.Collect(ctx, time.Now().Add(time.Second)); err != nil || n != 5 {
		t.Fatalf("collected %d, %v", n, err)
	}
	if ks := keys(t, store); len(ks) != 0 {
		t.Fatalf("seg/ left: %v", ks)
	}
	// A second pass has nothing to do.
	if n, err := r.Compact(ctx); err != nil || n != 0 {
		t.Fatalf("second pass: %d, %v", n, err)
	}
}

func TestCompactableRuns(t *testing.T) {
	// Target 6400: chunks from 800 bytes are left alone; level 1 is
	// [100, 800), level 2 [12, 100).
	c := func(obj string, n int64) meta.Chunk { return meta.Chunk{Object: obj, Len: n} }
	cmps := func(n int, size int64) []meta.Chunk {
		var cs []meta.Chunk
		for i := range n {
			cs = append(cs, c(fmt.Sprintf("cmp/%d", i), size))
		}
		return cs
	}
	for _, tc := range []struct {
		name   string
		chunks []meta.Chunk
		want   string
	}{
		{"ingestion runs first, whatever their sizes",
			[]meta.Chunk{c("seg/a", 10), c("seg/b", 500), c("cmp/c", 50), c("seg/d", 10), c("cmp/e", 50), c("seg/f", 20), c("seg/g", 30)},
			"seg/a,seg/b|seg/f,seg/g"},
		{"a stretch closed by a chunk left alone merges whole",
			[]meta.Chunk{c("cmp/a", 50), c("seg/b", 300), c("cmp/c", 20), c("cmp/big", 800), c("cmp/d", 50), c("cmp/e", 50)},
			"cmp/a,seg/b,cmp/c"},
		{"and so does one closed by key compaction's output",
			[]meta.Chunk{c("cmp/a", 50), c("cmp/b", 50), c("cln/c", 10), c("cmp/d", 50)},
			"cmp/a,cmp/b"},
		{"a larger chunk absorbs the smaller ones before it",
			[]meta.Chunk{c("cmp/a", 300), c("cmp/b", 50), c("cmp/c", 20), c("cmp/d", 200), c("cmp/e", 50)},
			"cmp/b,cmp/c,cmp/d"},
		{"fewer than eight of a level wait", cmps(7, 50), ""},
		{"the oldest eight of a level merge", append(cmps(9, 50), c("cmp/x", 20)), "cmp/0,cmp/1,cmp/2,cmp/3,cmp/4,cmp/5,cmp/6,cmp/7"},
		{"chunks left alone are left alone", []meta.Chunk{c("seg/a", 800), c("seg/b", 900), c("cmp/c", 6400)}, ""},
	} {
		var got []string
		for _, r := range compactable(tc.chunks, 6400) {
			var names []string
			for _, c := range r {
				names = append(names, c.Object)
			}
			got = append(got, strings.Join(names, ","))
		}
		if g := strings.Join(got, "|"); g != tc.want {
			t.Errorf("%s: runs %q, want %q", tc.name, g, tc.want)
		}
	}
	// A run of ingestion chunks stops at the target: 8 × 790 then 2 × 790.
	var many []meta.Chunk
	for range 10 {
		many = append(many, c("seg/x", 790))
	}
	if runs := compactable(many, 6400); len(runs) != 2 || len(runs[0]) != 8 || len(runs[1]) != 2 {
		t.Fatalf("capped runs: %d", len(runs))
	}
}

func TestChunkLevel(t *testing.T) {
	for _, tc := range []struct {
		n, target int64
		want      int
	}{
		{8 << 20, 64 << 20, 0}, {8<<20 - 1, 64 << 20, 1}, {1 << 20, 64 << 20, 1}, {1<<20 - 1, 64 << 20, 2},
		{batch.HeaderSize, 64 << 20, 6}, {batch.HeaderSize, 64 << 10, 3}, {5, 16, 0}, {1, 16, 1},
	} {
		if got := chunkLevel(tc.n, tc.target); got != tc.want {
			t.Errorf("chunkLevel(%d, %d) = %d, want %d", tc.n, tc.target, got, tc.want)
		}
	}
}
