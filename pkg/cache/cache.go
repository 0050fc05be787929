package cache

import (
	"context"
	"strconv"
	"sync"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Cache holds segment bytes. The zero value is not usable; call New.
type Cache struct {
	lru *ristretto.Cache[string, []byte]
	sf  singleflight.Group

	mu          sync.Mutex
	recent      map[string][]byte
	order       []string // FIFO of recent keys
	recentBytes int64
	recentMax   int64

	hits, misses, loads prometheus.Counter
}

// New returns a cache bounded by maxBytes, half of it for the newest
// objects and half for read-through ranges.
func New(maxBytes int64, reg prometheus.Registerer) (*Cache, error) {
	maxBytes = max(maxBytes, 2<<20)
	lru, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: max(maxBytes/4096, 1000), // ~10x the ranges we expect to hold
		MaxCost:     maxBytes / 2,
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	c := &Cache{
		lru:       lru,
		recent:    map[string][]byte{},
		recentMax: maxBytes / 2,
		hits:      prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_cache_hits_total", Help: "Segment range reads served from memory."}),
		misses:    prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_cache_misses_total", Help: "Segment range reads that had to load from the bucket."}),
		loads:     prometheus.NewCounter(prometheus.CounterOpts{Name: "barge_cache_loads_total", Help: "Bucket reads made for misses (after single-flight)."}),
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
	if int64(len(data)) > c.recentMax {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.recent[key]; ok {
		return
	}
	c.recent[key] = data
	c.order = append(c.order, key)
	c.recentBytes += int64(len(data))
	for c.recentBytes > c.recentMax && len(c.order) > 0 {
		old := c.order[0]
		c.order[0] = ""
		c.order = c.order[1:]
		c.recentBytes -= int64(len(c.recent[old]))
		delete(c.recent, old)
	}
}

// Range returns n bytes at off of object key, calling load on a miss. The
// returned slice is shared: callers must not modify it. load's result is
// what gets cached, so it must already be in the form readers want.
func (c *Cache) Range(ctx context.Context, key string, off, n int64, load func(context.Context) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	obj, ok := c.recent[key]
	c.mu.Unlock()
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
	v, err, _ := c.sf.Do(rk, func() (any, error) {
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
