package tiered

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// Reader reads committed chunks through the cache.
type Reader struct {
	store objstore.Store
	cache *cache.Cache
	whole bool
	// reads counts the bucket reads made for chunks missing from the
	// cache, by kind: "range" (a ranged GET of one chunk) or "whole" (a
	// GET of a whole ingestion segment). Unlike the store's own request
	// counts, it leaves out metadata-log reads, so that tail consumers'
	// zero is visible as a zero.
	reads                  *prometheus.CounterVec
	rangeReads, wholeReads prometheus.Counter // its two series, resolved once
}

// NewReader returns a Reader over store and c that reads each missing
// chunk with a ranged GET.
func NewReader(store objstore.Store, c *cache.Cache) *Reader {
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "barge_segment_reads_total",
		Help: "Bucket reads of segment data for chunks missing from the cache, by kind: range (a ranged GET of one chunk) or whole (a GET of a whole ingestion segment).",
	}, []string{"kind"})
	return &Reader{store: store, cache: c, reads: reads,
		rangeReads: reads.WithLabelValues("range"), wholeReads: reads.WithLabelValues("whole")}
}

// Register adds r's metrics to reg and returns r.
func (r *Reader) Register(reg prometheus.Registerer) *Reader {
	reg.MustRegister(r.reads) // both series exist from the start, at 0
	return r
}

// ReadWholeSegments makes r read a missing chunk of an ingestion segment
// (the objects Ingest writes, at most about FlushBytes) by fetching the
// whole object once, through the cache, and cutting the chunk from it. A
// consumer catching up on many partitions then makes one GET per segment
// instead of one per partition and segment; one reading a single partition
// reads more bytes for the same number of GETs.
func (r *Reader) ReadWholeSegments() *Reader {
	r.whole = true
	return r
}

// Chunk returns the chunk's batches with their final base offsets. The
// slice is shared with the cache and must not be modified.
func (r *Reader) Chunk(ctx context.Context, c meta.Chunk) ([]byte, error) {
	return r.cache.Range(ctx, c.Object, c.Pos, c.Len, func(ctx context.Context) ([]byte, error) {
		b, err := r.load(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("tiered: read %s: %w", c.Object, err)
		}
		if err := FinishChunk(b, c); err != nil {
			return nil, err
		}
		return b, nil
	})
}

// FinishChunk checks the bytes read for chunk c and gives its batches their
// final base offsets and leader epoch, in place.
func FinishChunk(b []byte, c meta.Chunk) error {
	if int64(len(b)) != c.Len {
		return fmt.Errorf("%w: %s: short range read", ErrCorruptSegment, c.Object)
	}
	var err error
	if strings.HasPrefix(c.Object, meta.CleanedPrefix) {
		err = checkOffsets(b, c.BaseOffset, c.NextOffset)
	} else {
		err = patchOffsets(b, c.BaseOffset, c.NextOffset)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.Object, err)
	}
	return nil
}

// checkOffsets checks that the batches of a cleaned chunk ascend within
// [base, next) and resets their leader epoch.
func checkOffsets(b []byte, base, next int64) error {
	off := base
	for len(b) > 0 {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() < batch.HeaderSize || h.Size() > len(b) || h.BaseOffset < off || h.LastOffsetDelta < 0 || h.NextOffset() > next {
			return fmt.Errorf("%w: cleaned batch at offset %d", ErrCorruptSegment, off)
		}
		batch.SetPartitionLeaderEpoch(b, 0)
		off = h.NextOffset()
		b = b[h.Size():]
	}
	return nil
}

// load returns a private copy of the chunk's bytes, unpatched.
func (r *Reader) load(ctx context.Context, c meta.Chunk) ([]byte, error) {
	if !r.whole || !strings.HasPrefix(c.Object, meta.SegmentPrefix) {
		r.rangeReads.Inc()
		return r.store.GetRange(ctx, c.Object, c.Pos, c.Len)
	}
	obj, err := r.cache.Object(ctx, c.Object, func(ctx context.Context) ([]byte, error) {
		r.wholeReads.Inc()
		return r.store.Get(ctx, c.Object)
	})
	if err != nil {
		return nil, err
	}
	if c.Pos < 0 || c.Len < 0 || c.Pos > int64(len(obj)) {
		return nil, nil // the length check reports the short read
	}
	return bytes.Clone(obj[c.Pos:min(c.Pos+c.Len, int64(len(obj)))]), nil
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
// first that ends after offset, up to maxBytes. When atLeastOne, the first
// batch is returned even if it alone exceeds maxBytes (Kafka's KIP-74 rule).
// It also returns the offset after the last batch returned: offset itself
// when maxBytes stopped the first batch, and -1 when no batch ends after
// offset (a cleaned chunk's tail).
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
		return nil, -1
	}
	return chunk[start:end:end], next
}

// Before returns the whole batches at the start of b (as FromOffset
// returns them) that begin before offset end, and the offset after the
// last of them: a read_committed fetch stops at the last stable offset.
func Before(b []byte, end int64) ([]byte, int64) {
	next := int64(-1)
	pos := 0
	for pos+batch.HeaderSize <= len(b) {
		h, err := batch.ParseHeader(b[pos:])
		if err != nil || h.Size() < batch.HeaderSize || h.Size() > len(b)-pos || h.BaseOffset >= end {
			break
		}
		pos += h.Size()
		next = h.NextOffset()
	}
	return b[:pos:pos], next
}
