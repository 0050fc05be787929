package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bargehq/barge/pkg/objstore"
)

// RawResult is the bucket's own bandwidth with one object size and a fixed
// number of requests in flight.
type RawResult struct {
	ObjectBytes int64   `json:"object_bytes"`
	Inflight    int     `json:"inflight"`
	Seconds     float64 `json:"seconds"`
	Requests    int64   `json:"requests"`
	MBps        float64 `json:"mb_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Errors      int64   `json:"errors"`
	// StoreCores and ClientCores are the cores the bucket's server and the
	// bench's own requests kept busy (0 when the server's CPU is unknown).
	StoreCores  float64 `json:"store_cores,omitempty"`
	ClientCores float64 `json:"client_cores,omitempty"`
}

// coreSecondsPerGB is what the pass cost the machine's cores per GB moved.
func (r RawResult) coreSecondsPerGB() float64 {
	if r.MBps == 0 {
		return 0
	}
	return (r.StoreCores + r.ClientCores) / (r.MBps / 1000)
}

// rawKeys is how many distinct objects each worker cycles through, so the
// bucket's disk use stays bounded and the GET pass has objects to read.
const rawKeys = 8

// rawBench PUTs objects of size bytes with inflight workers for dur, then
// GETs them back the same way. It uses the agent's own S3 client code.
// storeCPU is the bucket server's CPU seconds so far.
func rawBench(ctx context.Context, store objstore.Store, size int64, inflight int, dur time.Duration, storeCPU func() float64) (put, get RawResult, err error) {
	size = max(size, 1)
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(3, 5))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	key := func(w, i int) string { return fmt.Sprintf("bench-raw/%d-%d", w, i%rawKeys) }
	// Make sure every key exists before the GET pass, outside the timing.
	put = rawRun(ctx, inflight, dur, size, func(ctx context.Context, w, i int) (int64, error) {
		return size, store.Put(ctx, key(w, i), data)
	})
	for w := range inflight {
		for i := range rawKeys {
			if err := store.Put(ctx, key(w, i), data); err != nil {
				return put, get, fmt.Errorf("raw put: %w", err)
			}
		}
	}
	store0, self0 := storeCPU(), selfCPU()
	get = rawRun(ctx, inflight, dur, size, func(ctx context.Context, w, i int) (int64, error) {
		b, err := store.Get(ctx, key(w, i))
		return int64(len(b)), err
	})
	if store1 := storeCPU(); store1 > 0 {
		get.StoreCores, get.ClientCores = (store1-store0)/get.Seconds, (selfCPU()-self0)/get.Seconds
	}
	return put, get, ctx.Err()
}

func rawRun(ctx context.Context, inflight int, dur time.Duration, size int64, op func(ctx context.Context, w, i int) (int64, error)) RawResult {
	var (
		h     Histogram
		bytes atomic.Int64
		reqs  atomic.Int64
		errs  atomic.Int64
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(dur)
	for w := range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				n, err := op(rctx, w, i)
				cancel()
				if err != nil {
					errs.Add(1)
					continue
				}
				h.Record(time.Since(t0))
				bytes.Add(n)
				reqs.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return RawResult{
		ObjectBytes: size, Inflight: inflight, Seconds: secs, Requests: reqs.Load(),
		MBps:  float64(bytes.Load()) / 1e6 / secs,
		P50ms: ms(h.Quantile(0.5)), P99ms: ms(h.Quantile(0.99)), Errors: errs.Load(),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
