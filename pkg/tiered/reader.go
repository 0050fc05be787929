package tiered

import (
	"context"
	"fmt"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// Reader reads committed chunks through the cache.
type Reader struct {
	store objstore.Store
	cache *cache.Cache
}

// NewReader returns a Reader over store and c.
func NewReader(store objstore.Store, c *cache.Cache) *Reader { return &Reader{store: store, cache: c} }

// Chunk returns the chunk's batches with their final base offsets. The
// slice is shared with the cache and must not be modified.
func (r *Reader) Chunk(ctx context.Context, c meta.Chunk) ([]byte, error) {
	return r.cache.Range(ctx, c.Object, c.Pos, c.Len, func(ctx context.Context) ([]byte, error) {
		b, err := r.store.GetRange(ctx, c.Object, c.Pos, c.Len)
		if err != nil {
			return nil, fmt.Errorf("tiered: read %s: %w", c.Object, err)
		}
		if int64(len(b)) != c.Len {
			return nil, fmt.Errorf("%w: %s: short range read", ErrCorruptSegment, c.Object)
		}
		if err := patchOffsets(b, c.BaseOffset, c.NextOffset); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Object, err)
		}
		return b, nil
	})
}

// patchOffsets writes each batch's base offset and leader epoch, starting
// at base, and checks that the batches end exactly at next.
func patchOffsets(b []byte, base, next int64) error {
	off := base
	for len(b) > 0 {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() < batch.HeaderSize || h.Size() > len(b) {
			return fmt.Errorf("%w: batch at offset %d", ErrCorruptSegment, off)
		}
		batch.SetBaseOffset(b, off)
		batch.SetPartitionLeaderEpoch(b, 0)
		off += int64(h.LastOffsetDelta) + 1
		b = b[h.Size():]
	}
	if off != next {
		return fmt.Errorf("%w: chunk ends at offset %d, index says %d", ErrCorruptSegment, off, next)
	}
	return nil
}

// FromOffset returns the whole batches of a patched chunk starting with the
// one that holds offset, up to maxBytes. When atLeastOne, the first batch is
// returned even if it alone exceeds maxBytes (Kafka's KIP-74 rule). It also
// returns the offset after the last batch returned.
func FromOffset(chunk []byte, offset, maxBytes int64, atLeastOne bool) ([]byte, int64) {
	start, end := -1, 0
	next := int64(-1)
	for pos := 0; pos+batch.HeaderSize <= len(chunk); {
		h, err := batch.ParseHeader(chunk[pos:])
		if err != nil || h.Size() < batch.HeaderSize || h.Size() > len(chunk)-pos {
			break
		}
		size := h.Size()
		if h.NextOffset() <= offset {
			pos += size
			continue
		}
		if start < 0 {
			start = pos
			if int64(size) > maxBytes && !atLeastOne {
				return nil, offset
			}
		} else if int64(pos+size-start) > maxBytes {
			break
		}
		pos += size
		end = pos
		next = h.NextOffset()
	}
	if start < 0 {
		return nil, offset
	}
	return chunk[start:end:end], next
}
