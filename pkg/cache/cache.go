package cache

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Cache holds segment bytes. The zero value is not usable; call New.
type Cache struct {
	lru *ristretto.Cache[string, []byte]
	sf  singleflight.Group

	mu       sync.Mutex
	recent   fifo                     // the newest objects (PutObject)
	expected map[string]chan struct{} // objects being committed: closed by PutObject or Abandon

	// Whole objects read from the bucket (Object), apart from the newest
	// objects so that catch-up reads never push those out.
	whole fifo

	hits, misses, loads prometheus.Counter
}

// New returns a cache bounded by maxBytes: half of it for the newest
// objects, a quarter for read-through ranges and a quarter for whole
// objects read through (Object).
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
	c := &Cache{
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

// Close releases the Ristretto goroutines.
func (c *Cache) Close() { c.lru.Close() }

// PutObject holds a newly committed object whole. The caller must not
// modify data afterwards. The oldest objects leave when the budget is full.
func (c *Cache) PutObject(key string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(key)
	c.recent.add(key, data)
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

// loadTimeout bounds a shared load, which no single caller can cancel.
const loadTimeout = 2 * time.Minute

// shared runs fn once for all callers asking for key at the same time. fn
// runs detached from any one caller's context (bounded by loadTimeout), so
// that one consumer giving up does not fail the others waiting on the same
// read; each caller still returns as soon as its own ctx ends.
func (c *Cache) shared(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	ch := c.sf.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
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
	c.mu.Lock()
	obj, ok := c.recent.m[key]
	wait := c.expected[key]
	c.mu.Unlock()
	if !ok && wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
		obj, ok = c.recent.m[key]
		c.mu.Unlock()
	}
	if ok && off+n <= int64(len(obj)) {
		c.hits.Inc()
		return obj[off : off+n : off+n], nil
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

// Object returns the whole object key, calling load (single-flight) when it
// is neither among the newest objects nor among those read whole lately.
// The returned slice is shared: callers must not modify it. Reading a small
// multi-partition object whole costs one GET where reading it partition by
// partition costs one per partition.
func (c *Cache) Object(ctx context.Context, key string, load func(context.Context) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	obj, ok := c.recent.m[key]
	if !ok {
		obj, ok = c.whole.m[key]
	}
	c.mu.Unlock()
	if ok {
		return obj, nil
	}
	v, err := c.shared(ctx, "object:"+key, func(ctx context.Context) (any, error) {
		c.loads.Inc()
		b, err := load(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.whole.add(key, b)
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// fifo holds objects up to a byte bound, dropping the oldest first.
type fifo struct {
	m          map[string][]byte
	order      []string
	bytes, max int64
}

func newFIFO(max int64) fifo { return fifo{m: map[string][]byte{}, max: max} }

// add holds data under key unless it is held already or alone exceeds
// the bound.
func (f *fifo) add(key string, data []byte) {
	if _, ok := f.m[key]; ok || int64(len(data)) > f.max {
		return
	}
	f.m[key] = data
	f.order = append(f.order, key)
	f.bytes += int64(len(data))
	for f.bytes > f.max && len(f.order) > 0 {
		old := f.order[0]
		f.order[0] = ""
		f.order = f.order[1:]
		f.bytes -= int64(len(f.m[old]))
		delete(f.m, old)
	}
}
