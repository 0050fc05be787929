package tiered

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// countingStore counts the bytes ranged GETs return.
type countingStore struct {
	objstore.Store
	got atomic.Int64
}

func (s *countingStore) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	b, err := s.Store.GetRange(ctx, key, off, n)
	s.got.Add(int64(len(b)))
	return b, err
}

// longBatch is a batch of n records of size bytes each, as a producer
// sends it (base offset 0), or with base offset base when final (a
// cleaned chunk's).
func longBatch(t testing.TB, n, size int, base int64) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{OffsetDelta: int32(i), Value: bytes.Repeat([]byte{byte('a' + i%26)}, size)}
	}
	b, err := batch.Build(batch.Header{BaseOffset: base, PartitionLeaderEpoch: -1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, batch.None, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storedLong puts an object whose one chunk, between other bytes, is the
// given batches, and returns the chunk.
func storedLong(t testing.TB, store objstore.Store, key string, base, next int64, batches [][]byte) meta.Chunk {
	t.Helper()
	obj := []byte("another partition's chunk")
	pos := int64(len(obj))
	for _, b := range batches {
		obj = append(obj, b...)
	}
	c := meta.Chunk{Object: key, Pos: pos, Len: int64(len(obj)) - pos, BaseOffset: base, NextOffset: next}
	obj = append(obj, "and another's"...)
	if err := store.Put(context.Background(), key, obj); err != nil {
		t.Fatal(err)
	}
	return c
}

// readOn reads c as a consumer reading on does, limit bytes per fetch
// from offset, and returns each batch's base offset and how many fetches
// it took.
func readOn(t *testing.T, rd *Reader, c meta.Chunk, offset, limit int64) ([]int64, int) {
	t.Helper()
	var bases []int64
	fetches := 0
	for offset < c.NextOffset {
		fetches++
		if fetches > 1000 {
			t.Fatalf("no progress at offset %d", offset)
		}
		size := int64(0)
		for offset < c.NextOffset { // one fetch: windows until its limit
			data, end, err := rd.ChunkAt(context.Background(), c, offset, Pinned{})
			if err != nil {
				t.Fatal(err)
			}
			got, next := FromOffset(data, offset, limit-size, size == 0)
			if len(got) == 0 {
				if next < 0 {
					offset = max(offset, end)
					continue
				}
				break
			}
			for b := got; len(b) > 0; {
				h, err := batch.ParseHeader(b)
				if err != nil {
					t.Fatal(err)
				}
				if h.PartitionLeaderEpoch != 0 {
					t.Fatalf("batch at %d has leader epoch %d", h.BaseOffset, h.PartitionLeaderEpoch)
				}
				bases = append(bases, h.BaseOffset)
				b = b[h.Size():]
			}
			size += int64(len(got))
			offset = next
			if next < end {
				break
			}
		}
	}
	return bases, fetches
}

// A chunk longer than RangeWindow (a compacted partition's) is read a
// window at a time: a consumer reading it on in small fetches gets every
// batch once, in order, with its offsets, and the agent GETs about the
// chunk once, not once per fetch. The cache's share for ranges (a quarter
// of 16 MiB) cannot hold the chunk, so reading it whole for every fetch
// would GET it again each time. A batch longer than the window is read
// whole.
func TestChunkAtReadsLongChunkByWindow(t *testing.T) {
	store := &countingStore{Store: objstore.NewMemory()}
	var batches [][]byte
	var want []int64
	next := int64(1000)
	for i := range 90 {
		n, size := 16, 4<<10
		if i == 40 {
			n, size = 3, 600<<10 // 1.8 MiB: longer than a window
		}
		batches = append(batches, longBatch(t, n, size, 0))
		want = append(want, next)
		next += int64(n)
	}
	c := storedLong(t, store, meta.CompactedPrefix+"long", 1000, next, batches)
	if c.Len < 5*RangeWindow {
		t.Fatalf("chunk of %d bytes; want over five windows", c.Len)
	}
	ch, err := cache.New(16<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.Close)
	rd := NewReader(store, ch)
	got, fetches := readOn(t, rd, c, 1000, 256<<10)
	if !slices.Equal(got, want) {
		t.Fatalf("read batches at %v\nwant %v", got, want)
	}
	if fetches < 20 {
		t.Fatalf("%d fetches; the test wants many small ones", fetches)
	}
	if n := store.got.Load(); n > 2*c.Len {
		t.Errorf("read %d bytes of the bucket for a chunk of %d in %d fetches; want at most twice the chunk", n, c.Len, fetches)
	}

	// A consumer starting in the middle, and one starting over, read the
	// same batches from there, from the windows already read.
	before := store.got.Load()
	got, _ = readOn(t, rd, c, want[60]+3, 1<<20)
	if !slices.Equal(got, want[60:]) {
		t.Errorf("from the middle read batches at %v\nwant %v", got, want[60:])
	}
	got, _ = readOn(t, rd, c, 0, 1<<20)
	if !slices.Equal(got, want) {
		t.Errorf("from the start read batches at %v\nwant %v", got, want)
	}
	if n := store.got.Load() - before; n > c.Len {
		t.Errorf("read %d more bytes for two more reads of a chunk of %d", n, c.Len)
	}
}

// A cleaned chunk's batches keep their own offsets, with gaps where key
// compaction dropped records, and a fetch at an offset in a gap gets the
// batch after it.
func TestChunkAtCleanedChunkGaps(t *testing.T) {
	store := objstore.NewMemory()
	var batches [][]byte
	var want []int64
	off := int64(0)
	for range 40 {
		batches = append(batches, longBatch(t, 8, 8<<10, off))
		want = append(want, off)
		off += 8 + 5 // five offsets compacted away after each batch
	}
	c := storedLong(t, store, meta.CleanedPrefix+"long", 0, off+100, batches)
	rd := NewReader(store, newCache(t))
	got, _ := readOn(t, rd, c, 0, 100<<10)
	if !slices.Equal(got, want) {
		t.Fatalf("read batches at %v\nwant %v", got, want)
	}
	got, _ = readOn(t, rd, c, want[30]-2, 100<<10) // in the gap before batch 30
	if !slices.Equal(got, want[30:]) {
		t.Errorf("from a gap read batches at %v\nwant %v", got, want[30:])
	}
}

// A long chunk whose bytes do not hold its batches is reported corrupt,
// not served.
func TestChunkAtCorrupt(t *testing.T) {
	store := objstore.NewMemory()
	var batches [][]byte
	for range 20 {
		batches = append(batches, longBatch(t, 16, 8<<10, 0))
	}
	good := storedLong(t, store, meta.CompactedPrefix+"long", 0, 20*16, batches)
	for name, c := range map[string]meta.Chunk{
		"ends short of its index": {Object: good.Object, Pos: good.Pos, Len: good.Len, BaseOffset: 0, NextOffset: 20*16 + 1},
		"starts mid-batch":        {Object: good.Object, Pos: good.Pos + 7, Len: good.Len - 7, BaseOffset: 0, NextOffset: 20 * 16},
	} {
		rd := NewReader(store, newCache(t))
		var err error
		for off := int64(0); err == nil && off < c.NextOffset; {
			_, off, err = rd.ChunkAt(context.Background(), c, off, Pinned{})
		}
		if !errors.Is(err, ErrCorruptSegment) {
			t.Errorf("%s: %v, want ErrCorruptSegment", name, err)
		}
	}
}
