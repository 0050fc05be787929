package tiered

import (
	"context"
	"fmt"
	"strings"
	"sync"

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
	// ahead, once ReadWholeSegments is set, queues ingestion segments to
	// read whole in the background (ReadAhead); nil before.
	ahead     chan string
	aheadMost int // the most segments one ReadAhead queues
	// queued is the segments in ahead or being read from it: a fetch
	// asking again for one not yet held does not queue it twice, which
	// would leave workers waiting on one another's GET.
	aheadMu sync.Mutex
	queued  map[string]bool
	closed  bool // by Close: ReadAhead queues nothing
	// stop ends the read-ahead workers, which workers tracks (Close).
	stop    context.CancelFunc
	workers sync.WaitGroup
	// reads counts the bucket reads made for chunks missing from the
	// cache, by kind: "range" (a ranged GET of one chunk) or "whole" (a
	// GET of a whole ingestion segment). Unlike the store's own request
	// counts, it leaves out metadata-log reads, so that tail consumers'
	// zero is visible as a zero.
	reads                  *prometheus.CounterVec
	rangeReads, wholeReads prometheus.Counter // its two series, resolved once
	marks                  windowMarks        // where windows of long chunks end (ChunkAt)
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

// readAheadGets is how many ingestion segments the background read-ahead
// GETs at once, agent-wide, and one fetch's Load: as many as the bucket
// needs in flight to give its bandwidth (cmd/bench measures raw GETs with
// four).
const readAheadGets = 4

// ReadWholeSegments makes r read a missing chunk of an ingestion segment
// (the objects Ingest writes, at most about FlushBytes) by fetching the
// whole object once, through the cache, and serving the chunk from it in
// place. A consumer catching up on many partitions then makes one GET per
// segment instead of one per partition and segment; one reading a single
// partition reads more bytes for the same number of GETs. ahead is the
// most segments one ReadAhead may queue: fewer than the cache's share for
// objects read whole holds, and a segment is read ahead only while the
// cache has room for it beside those not yet read through
// (cache.RoomAhead), so that reading ahead does not push out what is being
// read, by this consumer or another.
func (r *Reader) ReadWholeSegments(ahead int) *Reader {
	r.aheadMost = max(ahead, 1)
	r.ahead = make(chan string, readAheadGets*r.aheadMost)
	r.queued = map[string]bool{}
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	for range readAheadGets {
		r.workers.Go(func() { r.readAhead(ctx) })
	}
	return r
}

// readAhead is one read-ahead worker: it reads the queued segments whole
// until ctx ends.
func (r *Reader) readAhead(ctx context.Context) {
	for {
		var key string
		select {
		case <-ctx.Done():
			return
		case key = <-r.ahead:
		}
		// Room for every worker's object: they load at once. A GET started
		// just as Close is called would outlive it.
		if ctx.Err() == nil && !r.cache.Holds(key) && r.cache.RoomAhead(readAheadGets) {
			r.cache.Whole(ctx, key, r.loadWhole(key)) // an error: the fetch reads it again
		}
		r.aheadMu.Lock()
		delete(r.queued, key)
		r.aheadMu.Unlock()
	}
}

// ReadAhead queues the first segments of keys (sorted, oldest first, the
// ones a consumer far behind reads next), as many as ReadWholeSegments
// allows, to be read whole in the background, readAheadGets at a time,
// unless the cache holds them: the consumer then finds them in memory
// instead of waiting for one GET after another. It never blocks: a full
// queue drops the rest, which a later fetch asks for again.
func (r *Reader) ReadAhead(keys []string) {
	if r.ahead == nil {
		return
	}
	r.aheadMu.Lock()
	defer r.aheadMu.Unlock()
	if r.closed {
		return
	}
	for i, k := range keys {
		if i == r.aheadMost {
			return
		}
		if !strings.HasPrefix(k, meta.SegmentPrefix) || r.queued[k] || r.cache.Holds(k) {
			continue
		}
		select {
		case r.ahead <- k:
			r.queued[k] = true
		default:
			return
		}
	}
}

// Pinned is the segments one answer reads, held by it while it is built:
// reading the next partition's chunk of a segment another fetch's load
// has pushed out of the cache meanwhile costs no second GET, and one that
// could not be read is not tried again.
type Pinned struct {
	wholes map[string]*cache.Whole
	errs   map[string]error
	// loaded is the segments pinned through cache.Whole, which counted
	// the read of their first chunk (a miss, or a hit); the others count
	// a hit for every chunk.
	loaded map[string]bool
}

// Load reads whole, readAheadGets at a time, the ingestion segments among
// keys that the cache does not hold, and returns them and those it does:
// a fetch that needs several segments then waits for its slowest GET
// instead of the sum of them, one after another. Nothing is read once ctx
// has ended (the client has gone).
func (r *Reader) Load(ctx context.Context, keys []string) Pinned {
	var pins Pinned // its maps are made only when needed: most fetches are at the tail
	if r.ahead == nil || len(keys) == 0 {
		return pins
	}
	pins.wholes = make(map[string]*cache.Whole, len(keys))
	var missing []string
	for _, k := range keys {
		if !strings.HasPrefix(k, meta.SegmentPrefix) {
			continue
		}
		if w := r.cache.Held(k); w != nil {
			pins.wholes[k] = w
		} else {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return pins
	}
	pins.errs, pins.loaded = map[string]error{}, map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan string)
	for range min(readAheadGets, len(missing)) {
		wg.Go(func() {
			for k := range next {
				// A load runs detached from ctx (cache.Whole), so a fetch
				// whose client has gone must not start one.
				err := ctx.Err()
				var w *cache.Whole
				if err == nil {
					w, err = r.cache.Whole(ctx, k, r.loadWhole(k))
				}
				mu.Lock()
				if err != nil {
					pins.errs[k] = err
				} else {
					pins.wholes[k], pins.loaded[k] = w, true
				}
				mu.Unlock()
			}
		})
	}
	for _, k := range missing {
		next <- k
	}
	close(next)
	wg.Wait()
	return pins
}

// ChunkPinned is Chunk, served from pins when its segment is there, or
// failed with the error that reading the segment met.
func (r *Reader) ChunkPinned(ctx context.Context, c meta.Chunk, pins Pinned) ([]byte, error) {
	if err := pins.errs[c.Object]; err != nil {
		return nil, fmt.Errorf("tiered: read %s: %w", c.Object, err)
	}
	w := pins.wholes[c.Object]
	if w == nil {
		return r.Chunk(ctx, c)
	}
	if pins.loaded[c.Object] {
		delete(pins.loaded, c.Object)
	} else {
		r.cache.Hit()
	}
	return prepareChunk(w, c)
}

// Chunk returns the chunk's batches with their final base offsets. The
// slice is shared with the cache and must not be modified.
func (r *Reader) Chunk(ctx context.Context, c meta.Chunk) ([]byte, error) {
	if r.ahead != nil && strings.HasPrefix(c.Object, meta.SegmentPrefix) {
		return r.wholeChunk(ctx, c)
	}
	return r.cache.Range(ctx, c.Object, c.Pos, c.Len, func(ctx context.Context) ([]byte, error) {
		r.rangeReads.Inc()
		b, err := r.store.GetRange(ctx, c.Object, c.Pos, c.Len)
		if err != nil {
			return nil, fmt.Errorf("tiered: read %s: %w", c.Object, err)
		}
		if err := FinishChunk(b, c); err != nil {
			return nil, err
		}
		return b, nil
	})
}

// wholeChunk serves c from its segment read whole, finishing it in place
// the first time it is read.
func (r *Reader) wholeChunk(ctx context.Context, c meta.Chunk) ([]byte, error) {
	w, err := r.cache.Whole(ctx, c.Object, r.loadWhole(c.Object))
	if err != nil {
		return nil, fmt.Errorf("tiered: read %s: %w", c.Object, err)
	}
	return prepareChunk(w, c)
}

// prepareChunk returns c from its segment w, finishing it in place the
// first time it is read.
func prepareChunk(w *cache.Whole, c meta.Chunk) ([]byte, error) {
	if c.Pos < 0 || c.Len < 0 || c.Pos > int64(len(w.Data))-c.Len {
		return nil, fmt.Errorf("%w: %s: short range read", ErrCorruptSegment, c.Object)
	}
	return w.Prepare(c.Pos, c.Len, func(b []byte) error { return FinishChunk(b, c) })
}

// loadWhole GETs segment key and counts its parts, the chunks readers
// will ask for.
func (r *Reader) loadWhole(key string) func(context.Context) ([]byte, cache.Parts, error) {
	return func(ctx context.Context) ([]byte, cache.Parts, error) {
		r.wholeReads.Inc()
		b, err := r.store.Get(ctx, key)
		return b, segmentRanges(b), err
	}
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

// patchOffsets writes each batch's base offset and leader epoch, starting
// at base, and checks that the batches end exactly at next.
func patchOffsets(b []byte, base, next int64) error {
	off, err := patchFrom(b, base)
	if err == nil && off != next {
		return fmt.Errorf("%w: chunk ends at offset %d, index says %d", ErrCorruptSegment, off, next)
	}
	return err
}

// patchFrom writes each batch's base offset and leader epoch, starting at
// base, and returns the offset after the last.
func patchFrom(b []byte, base int64) (int64, error) {
	off := base
	for len(b) > 0 {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() < batch.HeaderSize || h.Size() > len(b) {
			return off, fmt.Errorf("%w: batch at offset %d", ErrCorruptSegment, off)
		}
		batch.SetBaseOffset(b, off)
		batch.SetPartitionLeaderEpoch(b, 0)
		off += int64(h.LastOffsetDelta) + 1
		b = b[h.Size():]
	}
	return off, nil
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

// Close stops the background read-ahead started by ReadWholeSegments and
// waits for its workers: those waiting on a GET give it up (the cache's
// own Close abandons the GET itself), the segments still queued are
// dropped, and ReadAhead queues nothing afterwards. Safe to call twice.
func (r *Reader) Close() {
	if r.ahead == nil {
		return
	}
	r.aheadMu.Lock()
	r.closed = true
	r.aheadMu.Unlock()
	r.stop()
	r.workers.Wait()
}
