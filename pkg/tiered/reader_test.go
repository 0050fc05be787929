package tiered

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// storedChunk puts an object holding junk, then batches of the given
// record counts as producers send them (base offset 0, leader epoch -1),
// then more junk, and returns the chunk that indexes the batches at base.
func storedChunk(t testing.TB, store objstore.Store, key string, base int64, counts ...int) (meta.Chunk, [][]byte) {
	t.Helper()
	obj := []byte("leading bytes of other partitions")
	pos := int64(len(obj))
	var sent [][]byte
	next := base
	for i, n := range counts {
		b := mkBatch(t, fmt.Sprintf("b%d", i), n, 100)
		obj = append(obj, b.Data...)
		sent = append(sent, b.Data)
		next += int64(n)
	}
	c := meta.Chunk{Object: key, Pos: pos, Len: int64(len(obj)) - pos, BaseOffset: base, NextOffset: next}
	obj = append(obj, "trailing bytes"...)
	if err := store.Put(context.Background(), key, obj); err != nil {
		t.Fatal(err)
	}
	return c, sent
}

// storedSegment puts a segment of n one-batch chunks, as n partitions'
// parts of one flush, and returns its key and the chunks.
func storedSegment(t testing.TB, store objstore.Store, key string, n int) (string, []meta.Chunk) {
	t.Helper()
	var obj []byte
	var chunks []meta.Chunk
	for i := range n {
		b := mkBatch(t, fmt.Sprintf("p%d", i), 2, 0).Data
		chunks = append(chunks, meta.Chunk{Object: key, Pos: int64(len(obj)), Len: int64(len(b)), BaseOffset: 0, NextOffset: 2})
		obj = append(obj, b...)
	}
	if err := store.Put(context.Background(), key, obj); err != nil {
		t.Fatal(err)
	}
	return key, chunks
}

func newCache(t testing.TB) *cache.Cache {
	t.Helper()
	c, err := cache.New(4<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestReaderChunkPatchesOffsets(t *testing.T) {
	mem := objstore.NewMemory()
	c, sent := storedChunk(t, mem, "seg/a", 1000, 3, 1, 5)
	rd := NewReader(mem, newCache(t))
	got, err := rd.Chunk(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	bs := decodeBatches(t, got) // CRCs still hold: the patched fields are outside them
	wantBase := []int64{1000, 1003, 1004}
	if len(bs) != 3 {
		t.Fatalf("read %v", bs)
	}
	for i, b := range bs {
		if b.h.BaseOffset != wantBase[i] || b.h.PartitionLeaderEpoch != 0 {
			t.Errorf("batch %d: base %d epoch %d, want %d and 0", i, b.h.BaseOffset, b.h.PartitionLeaderEpoch, wantBase[i])
		}
		if b.values[0] != fmt.Sprintf("b%d/0", i) {
			t.Errorf("batch %d holds %v", i, b.values)
		}
	}
	if len(got) != cap(got) {
		t.Errorf("returned slice has spare capacity %d: appending would write into the cache", cap(got)-len(got))
	}
	// Only the patched fields changed.
	for i, off := 0, 0; i < len(sent); i++ {
		b := got[off : off+len(sent[i])]
		if !bytes.Equal(b[8:12], sent[i][8:12]) || !bytes.Equal(b[16:], sent[i][16:]) {
			t.Errorf("batch %d: bytes other than base offset and leader epoch changed", i)
		}
		off += len(sent[i])
	}
	// The bucket keeps the batches as sent.
	stored, err := mem.GetRange(context.Background(), c.Object, c.Pos, c.Len)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, slices.Concat(sent...)) {
		t.Errorf("the stored object was modified")
	}
}

func TestReaderChunkCorrupt(t *testing.T) {
	mem := objstore.NewMemory()
	good, _ := storedChunk(t, mem, "seg/good", 10, 2, 2)

	put := func(key string, b []byte) meta.Chunk {
		if err := mem.Put(context.Background(), key, b); err != nil {
			t.Fatal(err)
		}
		return meta.Chunk{Object: key, Pos: 0, Len: int64(len(b)), BaseOffset: 0, NextOffset: 1}
	}
	one := mkBatch(t, "x", 1, 0).Data
	withLength := func(n int32) []byte {
		b := bytes.Clone(one)
		binary.BigEndian.PutUint32(b[8:], uint32(n))
		return b
	}

	for _, tc := range []struct {
		name string
		c    meta.Chunk
	}{
		{"ends before NextOffset", func() meta.Chunk { c := good; c.NextOffset++; return c }()},
		{"ends after NextOffset", func() meta.Chunk { c := good; c.NextOffset--; return c }()},
		{"range cut mid-batch", func() meta.Chunk { c := good; c.Len -= 10; return c }()},
		{"range past the object's end", func() meta.Chunk { c := good; c.Len += 100; return c }()},
		{"range starts mid-batch", func() meta.Chunk { c := good; c.Pos += 3; c.Len -= 3; return c }()},
		{"shorter than a batch header", put("seg/short", one[:batch.HeaderSize-1])},
		{"batch length past the range", put("seg/long", withLength(int32(len(one))))},
		{"batch length zero", put("seg/zero", withLength(0))},
		{"batch length makes size zero", put("seg/size0", withLength(-12))},
		{"batch length negative", put("seg/neg", withLength(-100))},
		{"batch length below a header", put("seg/small", withLength(batch.HeaderSize-13))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := NewReader(mem, newCache(t))
			b, err := rd.Chunk(context.Background(), tc.c)
			if !errors.Is(err, ErrCorruptSegment) {
				t.Errorf("Chunk = %d bytes, %v; want ErrCorruptSegment", len(b), err)
			}
		})
	}

	t.Run("missing object", func(t *testing.T) {
		c := good
		c.Object = "seg/missing"
		if _, err := NewReader(mem, newCache(t)).Chunk(context.Background(), c); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("err %v, want ErrNotFound", err)
		}
	})
}

// Failed reads are not cached: once the bucket answers, the read succeeds.
func TestReaderErrorNotCached(t *testing.T) {
	f := objstore.NewFaulty(objstore.NewMemory())
	c, _ := storedChunk(t, f, "seg/a", 0, 1)
	rd := NewReader(f, newCache(t))
	f.FailNth(objstore.OpGetRange, 1)
	if _, err := rd.Chunk(context.Background(), c); !errors.Is(err, objstore.ErrInjected) {
		t.Fatalf("err %v, want the injected fault", err)
	}
	if _, err := rd.Chunk(context.Background(), c); err != nil {
		t.Fatalf("after the fault: %v", err)
	}
	if n := f.Calls(objstore.OpGetRange); n != 2 {
		t.Errorf("%d GETs, want 2", n)
	}
}

// Concurrent reads of a missing chunk make one GET, and later reads none.
func TestReaderSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := objstore.NewMemory()
		c, _ := storedChunk(t, mem, "seg/a", 50, 2, 3)
		gate := newGateStore(mem, false, true)
		f := objstore.NewFaulty(gate)
		rd := NewReader(f, newCache(t))

		const readers = 20
		results := make([][]byte, readers)
		var wg sync.WaitGroup
		for i := range readers {
			wg.Go(func() {
				b, err := rd.Chunk(context.Background(), c)
				if err != nil {
					t.Error(err)
				}
				results[i] = b
			})
		}
		synctest.Wait() // every reader is waiting on the one held GET
		if n := f.Calls(objstore.OpGetRange); n != 1 {
			t.Errorf("%d GETs started for %d concurrent readers, want 1", n, readers)
		}
		gate.Open()
		wg.Wait()
		for i, b := range results {
			if bs := decodeBatches(t, b); len(bs) != 2 || bs[0].h.BaseOffset != 50 || bs[1].h.BaseOffset != 52 {
				t.Errorf("reader %d got %v", i, bs)
			}
		}

		synctest.Wait() // the cache has taken the range in
		for range 3 {
			if _, err := rd.Chunk(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.Calls(objstore.OpGetRange); n != 1 {
			t.Errorf("%d GETs after the range was cached, want 1", n)
		}
	})
}

// A chunk of an object Ingest just committed is served from memory,
// already patched, with no GET at all.
func TestReaderServesPublishedObject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{}, meta.Options{}, nil)
		id := r.createTopic("t", 1)
		for i := range 3 {
			tk, err := r.in.Append(TopicPartition{id, 0}, []Batch{mkBatch(t, fmt.Sprint(i), 2, 0)}, false)
			if err != nil {
				t.Fatal(err)
			}
			wait(t, tk)
		}
		rd := NewReader(r.faulty, r.cache)
		got := r.readPartition(rd, id, 0)
		if len(got) != 3 || got[0].h.BaseOffset != 0 || got[1].h.BaseOffset != 2 || got[2].h.BaseOffset != 4 {
			t.Errorf("read %v", got)
		}
		if n := r.faulty.Calls(objstore.OpGetRange); n != 0 {
			t.Errorf("%d GETs for freshly committed chunks, want 0", n)
		}
	})
}

func TestFromOffset(t *testing.T) {
	// Three patched batches: [10,13) [13,14) [14,20).
	counts := []int{3, 1, 6}
	var chunk []byte
	var sizes []int64
	base := int64(10)
	for i, n := range counts {
		b := mkBatch(t, fmt.Sprint(i), n, 0).Data
		batch.SetBaseOffset(b, base)
		base += int64(n)
		chunk = append(chunk, b...)
		sizes = append(sizes, int64(len(b)))
	}
	s0, s1, s2 := sizes[0], sizes[1], sizes[2]
	all := s0 + s1 + s2
	// As key compaction leaves it: [10,13), a gap where [13,14) was, [14,20).
	gapped := append(bytes.Clone(chunk[:s0]), chunk[s0+s1:]...)
	span := func(from, to int) []byte { // batches [from, to)
		start := int64(0)
		for _, s := range sizes[:from] {
			start += s
		}
		end := start
		for _, s := range sizes[from:to] {
			end += s
		}
		return chunk[start:end]
	}

	for _, tc := range []struct {
		name       string
		chunk      []byte
		offset     int64
		maxBytes   int64
		atLeastOne bool
		want       []byte
		wantNext   int64
	}{
		{"from the first offset", chunk, 10, all, false, chunk, 20},
		{"before the chunk", chunk, 0, all, false, chunk, 20},
		{"inside the first batch returns it whole", chunk, 12, all, false, chunk, 20},
		{"at the second batch", chunk, 13, all, false, span(1, 3), 20},
		{"inside the last batch", chunk, 15, all, true, span(2, 3), 20},
		{"last offset", chunk, 19, all, false, span(2, 3), 20},
		{"at the end", chunk, 20, all, true, nil, -1},
		{"past the end", chunk, 25, all, true, nil, -1},
		{"in a cleaned gap returns the batch after it", gapped, 13, all, false, span(2, 3), 20},
		{"maxBytes fits two batches exactly", chunk, 10, s0 + s1, false, span(0, 2), 14},
		{"maxBytes one short of two batches", chunk, 10, s0 + s1 - 1, false, span(0, 1), 13},
		{"maxBytes one short of all", chunk, 11, all - 1, true, span(0, 2), 14},
		{"maxBytes from the middle", chunk, 13, s1 + s2, false, span(1, 3), 20},
		{"oversize first batch with atLeastOne", chunk, 10, s0 - 1, true, span(0, 1), 13},
		{"oversize first batch without atLeastOne", chunk, 10, s0 - 1, false, nil, 10},
		{"zero maxBytes with atLeastOne", chunk, 14, 0, true, span(2, 3), 20},
		{"zero maxBytes without atLeastOne", chunk, 14, 0, false, nil, 14},
		{"empty chunk", nil, 0, all, true, nil, -1},
		{"trailing partial batch ignored", append(bytes.Clone(chunk), chunk[:s0-1]...), 10, 2 * all, false, chunk, 20},
		{"trailing partial header ignored", append(bytes.Clone(chunk), 1, 2, 3), 13, 2 * all, false, span(1, 3), 20},
		{"corrupt batch length stops the walk", append(bytes.Clone(span(0, 1)), negativeLength(span(1, 2))...), 10, all, false, span(0, 1), 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next := FromOffset(tc.chunk, tc.offset, tc.maxBytes, tc.atLeastOne)
			if !bytes.Equal(got, tc.want) || next != tc.wantNext {
				t.Errorf("FromOffset(%d, %d, %v) = %d bytes, next %d; want %d bytes, next %d",
					tc.offset, tc.maxBytes, tc.atLeastOne, len(got), next, len(tc.want), tc.wantNext)
			}
			if len(got) != cap(got) {
				t.Errorf("result has spare capacity")
			}
		})
	}
}

// negativeLength returns b with its batchLength field set so that the
// batch would claim a size below zero.
func negativeLength(b []byte) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint32(b[8:], uint32(0xFFFFFF00))
	return b
}

// A fetch woken by a commit reads the new chunk at once, possibly before
// Ingest has handed the object to the cache (whether a round lands in that
// window is up to the scheduler; cache's TestRangeWaitsForExpectedObject
// covers the wait itself): it waits for the object, it does not GET.
func TestReaderWokenByCommitMakesNoGet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{}, meta.Options{}, nil)
		id := r.createTopic("t", 1)
		rd := NewReader(r.faulty, r.cache)
		for i := range 20 {
			changed := r.log.Changed()
			tk, err := r.in.Append(TopicPartition{id, 0}, []Batch{mkBatch(t, fmt.Sprint(i), 1, 0)}, false)
			if err != nil {
				t.Fatal(err)
			}
			for {
				<-changed // the commit applies; read as a long-polling fetch would
				changed = r.log.Changed()
				if cs, _ := r.chunks(id, 0); len(cs) == i+1 {
					b, err := rd.Chunk(context.Background(), cs[i])
					if err != nil {
						t.Fatal(err)
					}
					if bs := decodeBatches(t, b); len(bs) != 1 || bs[0].h.BaseOffset != int64(i) {
						t.Fatalf("read %v, want one batch at %d", bs, i)
					}
					break
				}
			}
			wait(t, tk)
		}
		if n := r.faulty.Calls(objstore.OpGetRange); n != 0 {
			t.Errorf("%d GETs for chunks read as their commits applied, want 0", n)
		}
	})
}

// With ReadWholeSegments, chunks of several partitions in one segment cost
// one GET of the whole object between them, and come out patched as with
// ranged reads; a range past the object's end is still corrupt.
func TestReaderWholeSegments(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFaulty(mem)
	a, _ := storedChunk(t, mem, "seg/multi", 7, 2, 1)
	// Two more "partitions" in the same object, after a's bytes.
	obj, err := mem.Get(context.Background(), "seg/multi")
	if err != nil {
		t.Fatal(err)
	}
	b1 := mkBatch(t, "p1", 3, 0).Data
	b2 := mkBatch(t, "p2", 1, 0).Data
	c1 := meta.Chunk{Object: "seg/multi", Pos: int64(len(obj)), Len: int64(len(b1)), BaseOffset: 40, NextOffset: 43}
	c2 := meta.Chunk{Object: "seg/multi", Pos: c1.Pos + c1.Len, Len: int64(len(b2)), BaseOffset: 0, NextOffset: 1}
	obj = append(append(obj, b1...), b2...)
	if err := mem.Put(context.Background(), "seg/multi", obj); err != nil {
		t.Fatal(err)
	}

	rd := NewReader(f, newCache(t)).ReadWholeSegments(2)
	t.Cleanup(rd.Close)
	for _, c := range []meta.Chunk{a, c1, c2} {
		got, err := rd.Chunk(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		bs := decodeBatches(t, got)
		if len(bs) == 0 || bs[0].h.BaseOffset != c.BaseOffset {
			t.Errorf("chunk at %d: read %v", c.BaseOffset, bs)
		}
	}
	if g, gr := f.Calls(objstore.OpGet), f.Calls(objstore.OpGetRange); g != 1 || gr != 0 {
		t.Errorf("%d GETs and %d ranged GETs for three chunks of one segment, want 1 and 0", g, gr)
	}
	// A chunk is finished in place, in the cache's copy: another cache's
	// reader of the same bytes at other offsets sees its own offsets.
	other := c1
	other.BaseOffset, other.NextOffset = 1000, 1003
	got, err := NewReader(f, newCache(t)).ReadWholeSegments(2).Chunk(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	if bs := decodeBatches(t, got); bs[0].h.BaseOffset != 1000 {
		t.Errorf("read %v, want base 1000", bs)
	}

	past := c2
	past.Len += 100
	if _, err := NewReader(f, newCache(t)).ReadWholeSegments(2).Chunk(context.Background(), past); !errors.Is(err, ErrCorruptSegment) {
		t.Errorf("range past the end: %v, want ErrCorruptSegment", err)
	}
	// Objects Ingest did not write are read by range as before.
	plain, _ := storedChunk(t, mem, "other/x", 0, 1)
	before := f.Calls(objstore.OpGetRange)
	if _, err := rd.Chunk(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	if n := f.Calls(objstore.OpGetRange) - before; n != 1 {
		t.Errorf("%d ranged GETs for a non-segment object, want 1", n)
	}
}

func TestFinishCleanedChunk(t *testing.T) {
	// A cleaned chunk [10,30): batches at 10 (3 offsets) and 20 (2).
	b0, b1 := mkBatch(t, "a", 3, 0).Data, mkBatch(t, "b", 2, 0).Data
	batch.SetBaseOffset(b0, 10)
	batch.SetBaseOffset(b1, 20)
	batch.SetPartitionLeaderEpoch(b1, 7)
	chunk := append(bytes.Clone(b0), b1...)
	c := meta.Chunk{Object: meta.CleanedPrefix + "x", Len: int64(len(chunk)), BaseOffset: 10, NextOffset: 30}
	got := bytes.Clone(chunk)
	if err := FinishChunk(got, c); err != nil {
		t.Fatal(err)
	}
	if h, _ := batch.ParseHeader(got[len(b0):]); h.BaseOffset != 20 || h.PartitionLeaderEpoch != 0 {
		t.Fatalf("second batch at %d, epoch %d: offsets must be kept, the epoch reset", h.BaseOffset, h.PartitionLeaderEpoch)
	}
	for _, bad := range []meta.Chunk{
		{Object: c.Object, Len: c.Len, BaseOffset: 11, NextOffset: 30}, // a batch before the chunk
		{Object: c.Object, Len: c.Len, BaseOffset: 10, NextOffset: 21}, // a batch past its end
		{Object: c.Object, Len: c.Len - 1, BaseOffset: 10, NextOffset: 30},
	} {
		if err := FinishChunk(bytes.Clone(chunk)[:min(len(chunk), int(bad.Len))], bad); !errors.Is(err, ErrCorruptSegment) {
			t.Errorf("chunk %+v: err %v, want ErrCorruptSegment", bad, err)
		}
	}
	overlap := append(bytes.Clone(b1), b0...) // descending offsets
	if err := FinishChunk(overlap, meta.Chunk{Object: c.Object, Len: int64(len(overlap)), BaseOffset: 10, NextOffset: 30}); !errors.Is(err, ErrCorruptSegment) {
		t.Errorf("descending batches: err %v, want ErrCorruptSegment", err)
	}
	// An ingestion chunk's offsets still come from the chunk's base.
	plain := bytes.Clone(chunk)
	if err := FinishChunk(plain, meta.Chunk{Object: "seg/x", Len: int64(len(plain)), BaseOffset: 100, NextOffset: 105}); err != nil {
		t.Fatal(err)
	}
	if h, _ := batch.ParseHeader(plain[len(b0):]); h.BaseOffset != 103 {
		t.Fatalf("ingestion batch patched to %d, want 103", h.BaseOffset)
	}
}

// ReadAhead reads the segments it is given whole in the background, so that
// a fetch finds them in memory; ones held already, or not segments, are
// not read.
func TestReaderReadAhead(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFaulty(mem)
	a, _ := storedChunk(t, mem, "seg/a", 0, 2)
	b, _ := storedChunk(t, mem, "seg/b", 0, 2)
	plain, _ := storedChunk(t, mem, "other/x", 0, 1)
	c := newCache(t)
	rd := NewReader(f, c).ReadWholeSegments(4)
	t.Cleanup(rd.Close)
	rd.ReadAhead([]string{a.Object, b.Object, plain.Object})
	deadline := time.Now().Add(10 * time.Second)
	for !c.Holds(a.Object) || !c.Holds(b.Object) {
		if time.Now().After(deadline) {
			t.Fatalf("read-ahead did not load the segments (a %v, b %v)", c.Holds(a.Object), c.Holds(b.Object))
		}
		time.Sleep(time.Millisecond)
	}
	if c.Holds(plain.Object) {
		t.Error("read-ahead loaded an object that is not an ingestion segment")
	}
	gets := f.Calls(objstore.OpGet)
	rd.ReadAhead([]string{a.Object, b.Object})
	for _, ch := range []meta.Chunk{a, b} {
		if _, err := rd.Chunk(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.Calls(objstore.OpGet) - gets; n != 0 || gets != 2 {
		t.Errorf("%d GETs to read ahead two segments, %d more after; want 2 and 0", gets, n)
	}
}

// A segment asked for again while it is still being read ahead is not
// queued twice: the workers stay free for the next segment instead of
// waiting on one another's GET.
func TestReaderReadAheadQueuesOnce(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFaulty(mem)
	a, _ := storedChunk(t, mem, "seg/a", 0, 2)
	b, _ := storedChunk(t, mem, "seg/b", 0, 2)
	c := newCache(t)
	rd := NewReader(f, c).ReadWholeSegments(4)
	t.Cleanup(rd.Close)
	f.SetDelay(objstore.OpGet, 5*time.Second)
	for range readAheadGets {
		rd.ReadAhead([]string{a.Object})
	}
	rd.ReadAhead([]string{b.Object})
	deadline := time.Now().Add(10 * time.Second)
	for f.Calls(objstore.OpGet) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the second segment was never read")
		}
		time.Sleep(time.Millisecond)
	}
	if c.Holds(a.Object) {
		t.Error("the second segment waited for the first: the first was queued more than once")
	}
}

// Close stops the read-ahead workers, abandoning the GET one is waiting
// on, and read-ahead asked for after it starts nothing. Inside a bubble a
// worker left behind fails the test.
func TestReaderCloseStopsReadAhead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := objstore.NewMemory()
		f := objstore.NewFaulty(mem)
		a, _ := storedChunk(t, mem, "seg/a", 0, 2)
		b, _ := storedChunk(t, mem, "seg/b", 0, 2)
		c := newCache(t)
		rd := NewReader(f, c).ReadWholeSegments(4)
		f.SetDelay(objstore.OpGet, time.Hour)
		rd.ReadAhead([]string{a.Object})
		synctest.Wait()
		if n := f.Calls(objstore.OpGet); n != 1 {
			t.Fatalf("%d GETs started reading ahead one segment, want 1", n)
		}
		rd.Close()
		rd.Close() // twice is harmless, as for the agent's deferred calls
		rd.ReadAhead([]string{b.Object})
		synctest.Wait()
		if n := f.Calls(objstore.OpGet); n != 1 {
			t.Errorf("%d GETs after Close, want still 1", n)
		}
		if c.Holds(a.Object) {
			t.Error("the abandoned GET's segment is in the cache")
		}
	})
}

// Read-ahead does not push out segments not yet read through: with the
// cache's share for whole segments full of them, it reads nothing.
func TestReaderReadAheadKeepsUnread(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFaulty(mem)
	a, _ := storedChunk(t, mem, "seg/a", 0, 2)
	c := newCache(t)                           // 1 MiB for segments read whole
	c.PutObject("filler", make([]byte, 2<<20)) // the newest objects' share, which it would borrow
	for _, k := range []string{"seg/x", "seg/y"} {
		big := func(context.Context) ([]byte, cache.Parts, error) {
			return make([]byte, 300<<10), cache.Parts{N: 2}, nil
		}
		if _, err := c.Whole(context.Background(), k, big); err != nil {
			t.Fatal(err)
		}
	}
	rd := NewReader(f, c).ReadWholeSegments(4)
	t.Cleanup(rd.Close)
	rd.ReadAhead([]string{a.Object})
	deadline := time.Now().Add(10 * time.Second)
	for {
		rd.aheadMu.Lock()
		n := len(rd.queued)
		rd.aheadMu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("read-ahead never finished")
		}
		time.Sleep(time.Millisecond)
	}
	if n := f.Calls(objstore.OpGet); n != 0 || c.Holds(a.Object) || !c.Holds("seg/x") {
		t.Errorf("%d GETs, a held %v, x held %v; want none, false, true", n, c.Holds(a.Object), c.Holds("seg/x"))
	}
}

// meetingStore's GETs each wait until n of them are in flight at once
// (or the test's deadline), so a reader that GETs one after another
// never gets past the first.
type meetingStore struct {
	objstore.Store
	n       int
	mu      sync.Mutex
	started int // GETs begun
	met     chan struct{}
}

func (s *meetingStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	s.started++
	if s.started == s.n {
		close(s.met)
	}
	s.mu.Unlock()
	select {
	case <-s.met:
	case <-time.After(10 * time.Second):
		return nil, errors.New("the other GETs never came: read one after another")
	}
	return s.Store.Get(ctx, key)
}

// Load reads the segments a fetch needs at once, not one after another,
// and leaves those the cache holds and objects that are not ingestion
// segments alone.
func TestReaderLoadReadsSegmentsAtOnce(t *testing.T) {
	mem := objstore.NewMemory()
	a, _ := storedChunk(t, mem, "seg/a", 0, 2)
	b, _ := storedChunk(t, mem, "seg/b", 0, 2)
	held, _ := storedChunk(t, mem, "seg/c", 0, 2)
	plain, _ := storedChunk(t, mem, "other/x", 0, 1)
	store := &meetingStore{Store: mem, n: 2, met: make(chan struct{})}
	c := newCache(t)
	rd := NewReader(store, c).ReadWholeSegments(4)
	t.Cleanup(rd.Close)
	if _, err := c.Whole(context.Background(), held.Object, func(ctx context.Context) ([]byte, cache.Parts, error) {
		b, err := mem.Get(ctx, held.Object)
		return b, cache.Parts{}, err
	}); err != nil {
		t.Fatal(err)
	}
	pins := rd.Load(context.Background(), []string{a.Object, held.Object, plain.Object, b.Object})
	if !c.Holds(a.Object) || !c.Holds(b.Object) {
		t.Fatalf("after Load: a held %v, b %v; want both", c.Holds(a.Object), c.Holds(b.Object))
	}
	if c.Holds(plain.Object) || pins.wholes[plain.Object] != nil {
		t.Error("Load read an object that is not an ingestion segment whole")
	}
	if len(pins.wholes) != 3 || pins.wholes[held.Object] == nil {
		t.Errorf("pinned %d segments, the one held %v; want 3, all but the plain object", len(pins.wholes), pins.wholes[held.Object] != nil)
	}
	// Other reads push a out of the cache; the answer that pinned it
	// still reads it without a GET.
	for _, k := range []string{"seg/x", "seg/y", "seg/z"} {
		big := func(context.Context) ([]byte, cache.Parts, error) { return make([]byte, 1<<20), cache.Parts{}, nil }
		if _, err := c.Whole(context.Background(), k, big); err != nil {
			t.Fatal(err)
		}
	}
	if c.Holds(a.Object) {
		t.Fatal("a still held: the test did not push it out")
	}
	got, err := rd.ChunkPinned(context.Background(), a, pins)
	if err != nil || len(got) != int(a.Len) {
		t.Fatalf("pinned chunk: %d bytes, %v; want %d", len(got), err, a.Len)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.started != 2 {
		t.Errorf("%d GETs; want 2: none of the segment already held, none of the one pinned", store.started)
	}
}

// A fetch whose client has gone starts no GETs for it, and a segment
// Load failed to read is reported by ChunkPinned without a second GET.
func TestReaderLoadCancelledAndFailed(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFaulty(mem)
	a, _ := storedChunk(t, mem, "seg/a", 0, 2)
	b, _ := storedChunk(t, mem, "seg/b", 0, 2)
	rd := NewReader(f, newCache(t)).ReadWholeSegments(4)
	t.Cleanup(rd.Close)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rd.Load(ctx, []string{a.Object, b.Object})
	if n := f.Calls(objstore.OpGet); n != 0 {
		t.Errorf("%d GETs for a cancelled fetch, want 0", n)
	}
	f.FailAll(objstore.OpGet)
	pins := rd.Load(context.Background(), []string{a.Object})
	if _, err := rd.ChunkPinned(context.Background(), a, pins); err == nil {
		t.Error("no error for a segment that could not be read")
	}
	if n := f.Calls(objstore.OpGet); n != 1 {
		t.Errorf("%d GETs for one failed segment, want 1", n)
	}
}

// A segment Load reads counts one miss and a hit for every chunk after
// the first, as reading it chunk by chunk does.
func TestReaderLoadCountsHitsOnce(t *testing.T) {
	mem := objstore.NewMemory()
	seg, chunks := storedSegment(t, mem, "seg/a", 2)
	reg := prometheus.NewRegistry()
	c, err := cache.New(4<<20, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	rd := NewReader(mem, c).ReadWholeSegments(4)
	t.Cleanup(rd.Close)
	pins := rd.Load(context.Background(), []string{seg})
	for _, ch := range chunks {
		if _, err := rd.ChunkPinned(context.Background(), ch, pins); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]float64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0].GetCounter().GetValue()
	}
	if got["barge_cache_misses_total"] != 1 || got["barge_cache_hits_total"] != 1 {
		t.Errorf("misses %v, hits %v for one segment of two chunks read through Load; want 1 and 1", got["barge_cache_misses_total"], got["barge_cache_hits_total"])
	}
}

// A segment holding two topics is read through once a consumer of one of
// them has read all of that topic's partitions, though nobody reads the
// other's: it then leaves the cache first and no longer holds read-ahead
// back (cache.RoomAhead).
func TestReaderSegmentReadThroughByTopic(t *testing.T) {
	r := newRig(t, IngestConfig{FlushInterval: 5 * time.Millisecond}, meta.Options{}, nil)
	a, b := r.createTopic("a", 3), r.createTopic("b", 2)
	var tickets []*Ticket
	for _, tp := range []TopicPartition{{a, 0}, {a, 1}, {a, 2}, {b, 0}, {b, 1}} {
		tk, err := r.in.Append(tp, []Batch{mkBatch(t, "x", 2, 1000)}, false)
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	for _, tk := range tickets {
		wait(t, tk)
	}
	keys := r.segmentKeys()
	if len(keys) != 1 {
		t.Fatalf("segments %v, want one holding both topics", keys)
	}
	rd := r.coldReader().ReadWholeSegments(2)
	t.Cleanup(rd.Close)
	for _, p := range []int32{0, 1} {
		r.readPartition(rd, a, p)
	}
	w := rd.cache.Held(keys[0])
	if w == nil || w.ReadThrough() {
		t.Fatalf("segment held %v, read through after two of topic a's three partitions", w != nil)
	}
	r.readPartition(rd, a, 2)
	if !w.ReadThrough() {
		t.Error("segment not read through once every partition of topic a in it was read")
	}
}
