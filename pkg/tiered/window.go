package tiered

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
)

// RangeWindow is the most of a chunk one ranged read brings in for a
// fetch. A chunk read by range is read whole only up to this length;
// longer ones (a compacted partition's cmp/ and cln/ chunks grow to
// jobs.DefaultCompactionTarget, 64 MiB) are read a window of whole batches
// at a time from the one holding the fetch offset. Reading those whole
// cost one GET of the chunk for every fetch of a consumer reading it
// (the cache's share for ranges holds few, or none, of them) and a
// chunk-sized buffer per partition per fetch. It matches Kafka's
// max.partition.fetch.bytes default, so one fetch of a partition reads
// about one window, and a fetch's windows add up to about its answer.
const RangeWindow = 1 << 20

// maxMarks bounds the window ends remembered (16 bytes each and a key per
// chunk): about 64 GiB of long chunks being read at once. Past it they are
// forgotten, and a fetch finds its window again from its chunk's start.
const maxMarks = 1 << 16

// windowMarks remembers where in long chunks read windows end, by the
// offset after their last batch, so that a consumer reading on starts its
// next window there instead of walking the chunk from its start. Windows
// always start at the chunk's start or at a mark, so the windows of one
// chunk are the same for every consumer and the cache serves them again.
type windowMarks struct {
	mu sync.Mutex
	m  map[chunkAt][]mark // each sorted by offset
	n  int
}

// chunkAt names a chunk: objects are never rewritten, so its object and
// position identify its bytes.
type chunkAt struct {
	object string
	pos    int64
}

// mark is a batch boundary in a chunk: no batch before pos ends after
// offset.
type mark struct{ offset, pos int64 }

// before returns the last mark of c at or before offset, or c's start.
func (w *windowMarks) before(c meta.Chunk, offset int64) mark {
	w.mu.Lock()
	defer w.mu.Unlock()
	ms := w.m[chunkAt{c.Object, c.Pos}]
	i, _ := slices.BinarySearchFunc(ms, offset, func(m mark, off int64) int {
		return cmp.Compare(m.offset, off+1) // first mark past offset
	})
	if i == 0 {
		return mark{c.BaseOffset, c.Pos}
	}
	return ms[i-1]
}

func (w *windowMarks) add(c meta.Chunk, m mark) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil || w.n >= maxMarks {
		w.m, w.n = map[chunkAt][]mark{}, 0
	}
	k := chunkAt{c.Object, c.Pos}
	ms := w.m[k]
	i, found := slices.BinarySearchFunc(ms, m.offset, func(m mark, off int64) int { return cmp.Compare(m.offset, off) })
	if found {
		return
	}
	w.m[k] = slices.Insert(ms, i, m)
	w.n++
}

// ChunkAt returns the batches of c, with their final base offsets, that a
// fetch at offset reads from, and the offset after the last of them: all
// of c and c.NextOffset, or, for a compacted chunk (cmp/, cln/) longer
// than RangeWindow, a window of whole batches (at least one) holding the
// first batch that ends after offset, and the offset after it
// (c.NextOffset for the chunk's last window). A fetch reading on asks
// again at that offset.
func (r *Reader) ChunkAt(ctx context.Context, c meta.Chunk, offset int64, pins Pinned) ([]byte, int64, error) {
	if c.Len <= RangeWindow || !(strings.HasPrefix(c.Object, meta.CompactedPrefix) || strings.HasPrefix(c.Object, meta.CleanedPrefix)) {
		b, err := r.ChunkPinned(ctx, c, pins)
		return b, c.NextOffset, err
	}
	end := c.Pos + c.Len
	m := r.marks.before(c, offset)
	for {
		b, err := r.window(ctx, c, m)
		if err != nil {
			return nil, 0, fmt.Errorf("tiered: read %s: %w", c.Object, err)
		}
		pos := m.pos + int64(len(b))
		if pos >= end {
			return b, c.NextOffset, nil
		}
		_, next := wholeBatches(b)
		r.marks.add(c, mark{next, pos})
		if next > offset {
			return b, next, nil
		}
		m = mark{next, pos}
	}
}

// window returns the whole batches of c from m on, RangeWindow bytes of
// them or the one batch there if it is longer, finished as FinishChunk
// finishes a chunk, from m.offset. Windows are held with the objects read
// whole (cache.Whole), which leave oldest first: a consumer reading a
// chunk on finds its window there at its next fetch, where the cache's
// share for ranges would keep the windows read most often, long read.
func (r *Reader) window(ctx context.Context, c meta.Chunk, m mark) ([]byte, error) {
	end := c.Pos + c.Len
	n := min(RangeWindow, end-m.pos)
	key := c.Object + "@" + strconv.FormatInt(m.pos, 10) + "+" + strconv.FormatInt(n, 10)
	w, err := r.cache.Whole(ctx, key, func(ctx context.Context) ([]byte, cache.Parts, error) {
		r.rangeReads.Inc()
		b, err := r.store.GetRange(ctx, c.Object, m.pos, n)
		if err == nil && int64(len(b)) != n {
			err = fmt.Errorf("%w: %s: short range read", ErrCorruptSegment, c.Object)
		}
		if err != nil {
			return nil, cache.Parts{}, err
		}
		w, _ := wholeBatches(b)
		if w == 0 {
			// One batch longer than the window: read it alone.
			h, err := batch.ParseHeader(b)
			if err != nil || h.Size() < batch.HeaderSize || int64(h.Size()) > end-m.pos {
				return nil, cache.Parts{}, fmt.Errorf("%w: %s: batch at offset %d", ErrCorruptSegment, c.Object, m.offset)
			}
			r.rangeReads.Inc()
			if b, err = r.store.GetRange(ctx, c.Object, m.pos, int64(h.Size())); err == nil && len(b) != h.Size() {
				err = fmt.Errorf("%w: %s: short range read", ErrCorruptSegment, c.Object)
			}
			if err != nil {
				return nil, cache.Parts{}, err
			}
			w = len(b)
		}
		return b[:w:w], cache.Parts{N: 1}, nil
	})
	if err != nil {
		return nil, err
	}
	// The window's one part, prepared here, makes it read through: it
	// leaves before segments not yet read through, and does not hold
	// read-ahead back (cache.RoomAhead).
	return w.Prepare(0, int64(len(w.Data)), func(b []byte) error {
		if strings.HasPrefix(c.Object, meta.CleanedPrefix) {
			return checkOffsets(b, m.offset, c.NextOffset)
		}
		next, err := patchFrom(b, m.offset)
		if err == nil && m.pos+int64(len(b)) == end && next != c.NextOffset {
			err = fmt.Errorf("%w: chunk ends at offset %d, index says %d", ErrCorruptSegment, next, c.NextOffset)
		}
		return err
	})
}

// wholeBatches returns the length of the whole batches at the start of b
// and the offset after the last of them, by their headers.
func wholeBatches(b []byte) (int, int64) {
	pos, next := 0, int64(-1)
	for pos+batch.HeaderSize <= len(b) {
		h, err := batch.ParseHeader(b[pos:])
		if err != nil || h.Size() < batch.HeaderSize || h.Size() > len(b)-pos {
			break
		}
		pos += h.Size()
		next = h.NextOffset()
	}
	return pos, next
}
