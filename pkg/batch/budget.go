package batch

import (
	"context"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// Budget bounds the memory that decompression holds at once, over every
// goroutine that shares it: the agent's answer to a crowd of connections
// each sending a batch that inflates to the per-batch bound. Per-batch
// bounds make memory proportional to real output; only a shared budget
// makes the sum over connections finite.
//
// A decompression takes from the budget the bytes of each buffer it is
// about to allocate or reuse (output, stream chunk, lz4 block buffers, a
// rewritten zstd frame, the regrowth of a zstd attempt that runs out of
// room), and gives them back when the batch is done. It
// never waits while holding anything: a decompression that must wait to
// grow first gives back all it holds and drops the buffers, then waits for
// the total and starts again, so waiters cannot deadlock by each holding a
// share the others need, and a waiter pins no memory. A request larger
// than the whole budget waits for all of it.
//
// Not counted: decoders' fixed state (a gzip window, a zstd decoder's block
// buffers; tens to hundreds of KiB, pooled) and idle pooled buffers.
type Budget struct {
	sem     *semaphore.Weighted
	size    int64
	held    atomic.Int64
	peak    atomic.Int64 // the most ever held, for tests
	waiting atomic.Int64 // Acquire calls waiting, for tests
}

// NewBudget returns a budget of size bytes.
func NewBudget(size int64) *Budget {
	size = max(size, 1)
	return &Budget{sem: semaphore.NewWeighted(size), size: size}
}

// Acquire waits until n bytes (at most the whole budget) are free, or ctx
// is done, and returns what it took, for Release.
func (b *Budget) Acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 0), b.size)
	if !b.sem.TryAcquire(n) {
		b.waiting.Add(1)
		err := b.sem.Acquire(ctx, n)
		b.waiting.Add(-1)
		if err != nil {
			return 0, fmt.Errorf("waiting for %d bytes of decompression memory: %w", n, err)
		}
	}
	b.took(n)
	return n, nil
}

// Release gives back what Acquire took.
func (b *Budget) Release(n int64) {
	if n > 0 {
		b.held.Add(-n)
		b.sem.Release(n)
	}
}

// InUse reports the bytes held now.
func (b *Budget) InUse() int64 { return b.held.Load() }

func (b *Budget) took(n int64) {
	h := b.held.Add(n)
	for p := b.peak.Load(); h > p && !b.peak.CompareAndSwap(p, h); p = b.peak.Load() {
	}
}

// lease is what one decompression holds of a budget. A nil lease, or one
// without a budget, holds nothing and never waits.
type lease struct {
	b    *Budget
	ctx  context.Context
	held int64
}

// grow makes the lease n bytes without waiting (shrinking it if it holds
// more), and reports whether it could.
func (l *lease) grow(n int) bool {
	if l == nil || l.b == nil {
		return true
	}
	want := min(int64(n), l.b.size)
	switch {
	case want <= l.held:
		l.b.Release(l.held - want)
	case l.b.sem.TryAcquire(want - l.held):
		l.b.took(want - l.held)
	default:
		return false
	}
	l.held = want
	return true
}

// wait gives back all the lease holds, then waits for n bytes. The caller
// has dropped the buffers it held, which are no longer counted.
func (l *lease) wait(n int) error {
	l.release()
	held, err := l.b.Acquire(l.ctx, int64(n))
	l.held = held
	return err
}

// release gives back all the lease holds.
func (l *lease) release() {
	if l != nil && l.b != nil {
		l.b.Release(l.held)
		l.held = 0
	}
}
