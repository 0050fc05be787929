package cache

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Cache holds segment bytes. The zero value is not usable; call New.
type Cache struct {
	lru *ristretto.Cache[string, []byte]
	sf  singleflight.Group
	// closed ends with Close; shared loads, which no caller can cancel,
	// give up then.
	closed context.Context
	close  context.CancelFunc

	budget int64 // the bytes New was given, at least 2 MiB

	mu       sync.Mutex
	recent   fifo                     // the newest objects (PutObject)
	expected map[string]chan struct{} // objects being committed: closed by PutObject or Abandon

	// Whole objects read from the bucket (Whole), apart from the newest
	// objects so that catch-up reads never push those out.
	whole fifo

	hits, misses, loads prometheus.Counter
}

// New returns a cache bounded by maxBytes: half of it for the newest
// objects, a quarter for read-through ranges and a quarter for whole
// objects read through (Whole), which may also use what the newest leave
// of their half unused.
func New(maxBytes int64, reg prometheus.Registerer) (*Cache, error) {
	maxBytes = max(maxBytes, 2<<20)
	lru, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: max(maxBytes/4096, 1000), // ~10x the ranges we expect to hold
		MaxCost:     maxBytes / 4,
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	closed, closeFn := context.WithCancel(context.Background())
	c := &Cache{
		closed:   closed,
		close:    closeFn,
		budget:   maxBytes,
		lru:      lru,
		recent:   newFIFO(maxBytes / 2),
		expected: map[string]chan struct{}{},
		whole:    newFIFO(maxBytes / 4),
		hits:     prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_cache_hits_total", Help: "Segment range reads served from memory."}),
		misses:   prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_cache_misses_total", Help: "Segment range reads that had to load from the bucket."}),
		loads:    prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_cache_loads_total", Help: "Bucket reads made for misses (after single-flight)."}),
	}
	if reg != nil {
		reg.MustRegister(c.hits, c.misses, c.loads)
	}
	return c, nil
}

// FavourWhole gives objects read whole three eighths of the budget and
// read-through ranges one eighth, for a reader that reads ingestion
// segments whole (tiered.Reader.ReadWholeSegments) and so ranges only of
// other objects. A consumer far behind then keeps the segments its
// partitions are spread over and those read ahead of it.
func (c *Cache) FavourWhole() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.UpdateMaxCost(c.budget / 8)
	c.whole.max = c.budget * 3 / 8
}

// Close releases the Ristretto goroutines and abandons the bucket reads
// still loading for callers (a reader's GET returns its context's error).
func (c *Cache) Close() {
	c.close()
	c.lru.Close()
}

// PutObject holds a newly committed object whole. The caller must not
// modify data afterwards. The oldest objects leave when the budget is full.
func (c *Cache) PutObject(key string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(key)
	c.recent.add(key, &Whole{Data: data, ready: true}, c.recent.max)
	// Give back what the objects read whole borrowed: the newest first,
	// read ahead and not yet asked for, rather than the oldest, which
	// consumers are reading now.
	c.whole.shrink(c.wholeMaxLocked(), "", true)
}

// wholeMaxLocked is the most the objects read whole may hold now: their
// share, and what the newest objects leave of theirs unused. An agent
// that few produce to but many read from far behind (one started to
// serve a catch-up, or a replica in another zone) then holds as many
// segments as its budget allows, and the newest objects take their room
// back as they arrive, so the two together never exceed their shares.
func (c *Cache) wholeMaxLocked() int64 {
	return c.whole.max + max(c.recent.max-c.recent.bytes, 0)
}

// Expect announces that PutObject(key, ...) will follow: the object is
// being committed by this process. Readers learn of a commit as soon as it
// is applied, a moment before its writer can hand the object over; until
// PutObject or Abandon, Range on key waits for the object instead of
// reading the bucket, so tail reads never GET.
func (c *Cache) Expect(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.expected[key]; !ok {
		c.expected[key] = make(chan struct{})
	}
}

// Abandon withdraws Expect(key) without an object (the commit failed).
func (c *Cache) Abandon(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(key)
}

func (c *Cache) releaseLocked(key string) {
	if ch, ok := c.expected[key]; ok {
		close(ch)
		delete(c.expected, key)
	}
}

// held returns object key if it is among the newest objects, or among
// those read whole when whole is set, first waiting for it if this process
// is committing it (Expect).
func (c *Cache) held(ctx context.Context, key string, whole bool) (*Whole, bool, error) {
	c.mu.Lock()
	w, ok := c.recent.m[key]
	if !ok && whole {
		w, ok = c.whole.m[key]
	}
	wait := c.expected[key]
	c.mu.Unlock()
	if !ok && wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		c.mu.Lock()
		w, ok = c.recent.m[key]
		c.mu.Unlock()
	}
	return w, ok, nil
}

// loadTimeout bounds a shared load, which no single caller can cancel.
const loadTimeout = 2 * time.Minute

// shared runs fn once for all callers asking for key at the same time. fn
// runs detached from any one caller's context (bounded by loadTimeout and
// by Close), so
// that one consumer giving up does not fail the others waiting on the same
// read; each caller still returns as soon as its own ctx ends.
func (c *Cache) shared(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	ch := c.sf.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		defer context.AfterFunc(c.closed, cancel)()
		return fn(lctx)
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Range returns n bytes at off of object key, calling load on a miss. The
// returned slice is shared: callers must not modify it. load's result is
// what gets cached, so it must already be in the form readers want.
func (c *Cache) Range(ctx context.Context, key string, off, n int64, load func(context.Context) ([]byte, error)) ([]byte, error) {
	obj, ok, err := c.held(ctx, key, false)
	if err != nil {
		return nil, err
	}
	if ok && off+n <= int64(len(obj.Data)) {
		c.hits.Inc()
		return obj.Data[off : off+n : off+n], nil
	}
	rk := key + "@" + strconv.FormatInt(off, 10) + "+" + strconv.FormatInt(n, 10)
	if b, ok := c.lru.Get(rk); ok {
		c.hits.Inc()
		return b, nil
	}
	c.misses.Inc()
	v, err := c.shared(ctx, rk, func(ctx context.Context) (any, error) {
		c.loads.Inc()
		b, err := load(ctx)
		if err != nil {
			return nil, err
		}
		c.lru.Set(rk, b, int64(len(b)))
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// Whole is an object held whole (Cache.Whole), shared by every reader.
// Its ranges are made ready in place, each once, before they are read
// (Prepare): a reader never copies a range out of it.
type Whole struct {
	Data  []byte
	ready bool  // every range is ready as held (PutObject)
	parts Parts // the ranges readers will ask for

	mu       sync.Mutex
	prepared map[int64]error // by the offset of each range prepared
	// seen marks the parts a range was prepared in; done counts them by
	// group, of totals; touched is how many groups have had one, pending
	// how many of those still lack some.
	seen             []bool
	done, totals     []int
	touched, pending int
	// read is set once every range has been asked for, or every range of
	// each group any was asked for: the consumers catching up that read
	// the object have read all they will, and it leaves the cache before
	// those still being read.
	read atomic.Bool
}

// ReadThrough reports whether readers have asked for every range of w
// they will (Whole.read): it is among the first to leave the cache.
func (w *Whole) ReadThrough() bool { return w.read.Load() }

// Parts describes the ranges readers will Prepare in an object read
// whole (Cache.Whole): how many (0: not known) and, when Pos is set, each
// part's extent (Pos ascending, Len) and the group it belongs to (Group,
// numbered from 0). A segment's parts are its partitions and its groups
// its topics: a consumer of one topic reads a segment through once it has
// read that topic's partitions, though the others' are never read. A
// range prepared counts for the part it starts in (a partition's chunk
// may start after its part does, when its first batches were refused).
type Parts struct {
	N     int
	Pos   []int64
	Len   []int64
	Group []int32
}

// grouped reports whether p's parts and groups are usable: as many of
// each, ascending, groups numbered within the parts.
func (p *Parts) grouped() bool {
	n := len(p.Pos)
	if n == 0 || len(p.Len) != n || len(p.Group) != n {
		return false
	}
	for i := range n {
		if p.Group[i] < 0 || int(p.Group[i]) >= n || (i > 0 && p.Pos[i] < p.Pos[i-1]) {
			return false
		}
	}
	return true
}

// part is the index of the part holding off, or -1.
func (p *Parts) part(off int64) int {
	i, found := slices.BinarySearch(p.Pos, off)
	if !found {
		i-- // the last part starting before off
	}
	if i < 0 || off >= p.Pos[i]+p.Len[i] {
		return -1
	}
	return i
}

// counted counts the range at off, prepared for the first time, and
// reports whether the object is read through now (Whole.read): every
// range asked for, or every part of each group any range was read from.
// A reader of another group starting on an object read through makes it
// unread again.
func (w *Whole) counted(off int64) bool {
	if w.parts.N > 0 && len(w.prepared) >= w.parts.N {
		return true
	}
	if w.done == nil {
		if !w.parts.grouped() {
			return false
		}
		w.seen = make([]bool, len(w.parts.Pos))
		w.done, w.totals = make([]int, len(w.parts.Pos)), make([]int, len(w.parts.Pos))
		for _, g := range w.parts.Group {
			w.totals[g]++
		}
	}
	i := w.parts.part(off)
	if i < 0 || w.seen[i] {
		return w.touched > 0 && w.pending == 0
	}
	w.seen[i] = true
	g := w.parts.Group[i]
	w.done[g]++
	if w.done[g] == 1 {
		w.touched++
		if w.totals[g] > 1 {
			w.pending++
		}
	} else if w.done[g] == w.totals[g] {
		w.pending--
	}
	return w.touched > 0 && w.pending == 0
}

// Prepare returns the n bytes at off, calling prepare on them in place the
// first time any caller asks for the range at off (a later caller gets
// the first one's error). Ranges asked for must not overlap unless they
// are the same; the bytes must not be modified otherwise.
func (w *Whole) Prepare(off, n int64, prepare func([]byte) error) ([]byte, error) {
	b := w.Data[off : off+n : off+n]
	if w.ready {
		return b, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	err, ok := w.prepared[off]
	if !ok {
		err = prepare(b)
		if w.prepared == nil {
			w.prepared = map[int64]error{}
		}
		w.prepared[off] = err
		w.read.Store(w.counted(off))
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Whole returns object key whole, calling load (single-flight) when it is
// neither among the newest objects nor among those read whole lately; like
// Range, it waits for an object this process is committing (Expect).
// Reading a multi-partition object whole costs one GET where reading it
// partition by partition costs one per partition. load returns the object
// and the ranges of it readers will Prepare (Parts): once all have been,
// or all of each group read from, the object is the first to leave.
func (c *Cache) Whole(ctx context.Context, key string, load func(context.Context) ([]byte, Parts, error)) (*Whole, error) {
	w, ok, err := c.held(ctx, key, true)
	if err != nil {
		return nil, err
	}
	if ok {
		c.hits.Inc()
		return w, nil
	}
	c.misses.Inc()
	v, err := c.shared(ctx, "object:"+key, func(ctx context.Context) (any, error) {
		c.loads.Inc()
		b, parts, err := load(ctx)
		if err != nil {
			return nil, err
		}
		w := &Whole{Data: b, parts: parts}
		c.mu.Lock()
		defer c.mu.Unlock()
		if held, ok := c.whole.m[key]; ok {
			return held, nil
		}
		c.whole.add(key, w, c.wholeMaxLocked())
		return w, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Whole), nil
}

// Held returns object key if it is held whole, or nil, without waiting
// or loading; reads of it count their hits (Hit).
func (c *Cache) Held(key string) *Whole {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.recent.m[key]; ok {
		return w
	}
	return c.whole.m[key]
}

// Hit counts a read served from an object a reader already holds.
func (c *Cache) Hit() { c.hits.Inc() }

// Holds reports whether Whole(key) would be served without a load: the
// object is held, or this process is committing it.
func (c *Cache) Holds(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, recent := c.recent.m[key]
	_, whole := c.whole.m[key]
	_, expected := c.expected[key]
	return recent || whole || expected
}

// RoomAhead reports whether k more objects read whole, each of the mean
// size of those held, fit without pushing out one not yet read through.
// Reading ahead past that would evict what a consumer is about to read:
// with several consumers behind, at different places, their read-ahead
// would push out one another's segments and every segment be read again.
// Room borrowed from the newest objects counts: when they take it back,
// the objects read whole last leave first (PutObject), those read ahead
// rather than those being read.
func (c *Cache) RoomAhead(k int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := &c.whole
	if len(f.m) == 0 {
		return true
	}
	var unread int64
	for _, w := range f.m {
		if !w.read.Load() {
			unread += int64(len(w.Data))
		}
	}
	return unread+int64(k)*f.bytes/int64(len(f.m)) <= c.wholeMaxLocked()
}

// fifo holds objects up to a byte bound, dropping those read through
// first (Whole.read), then the oldest.
type fifo struct {
	m          map[string]*Whole
	order      []string
	bytes, max int64
}

func newFIFO(max int64) fifo { return fifo{m: map[string]*Whole{}, max: max} }

// add holds w under key, within bound bytes, unless it is held already
// or alone exceeds the bound.
func (f *fifo) add(key string, w *Whole, bound int64) {
	if _, ok := f.m[key]; ok || int64(len(w.Data)) > bound {
		return
	}
	f.m[key] = w
	f.order = append(f.order, key)
	f.bytes += int64(len(w.Data))
	f.shrink(bound, key, false)
}

// shrink drops objects until f holds at most bound bytes: those read
// through first (Whole.read), then the oldest, or the newest, never keep.
func (f *fifo) shrink(bound int64, keep string, newest bool) {
	if f.bytes <= bound {
		return
	}
	kept := f.order[:0]
	for _, k := range f.order {
		if o := f.m[k]; f.bytes > bound && k != keep && o.read.Load() {
			f.drop(k)
			continue
		}
		kept = append(kept, k)
	}
	clear(f.order[len(kept):])
	f.order = kept
	for newest && f.bytes > bound && len(f.order) > 0 {
		last := len(f.order) - 1
		f.drop(f.order[last])
		f.order[last] = ""
		f.order = f.order[:last]
	}
	for f.bytes > bound && len(f.order) > 0 {
		old := f.order[0]
		if old == keep {
			break // it fits alone (add checked)
		}
		f.order[0] = ""
		f.order = f.order[1:]
		f.drop(old)
	}
}

func (f *fifo) drop(key string) {
	f.bytes -= int64(len(f.m[key].Data))
	delete(f.m, key)
}
