package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations with a relative error under 1/64 (log-linear
// buckets over microseconds, as HdrHistogram does), lock-free. The zero
// value is ready to use.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
}

const (
	histSubBits = 6 // 64 linear sub-buckets per power of two
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits + 1) * histSub
)

func histIndex(us uint64) int {
	if us < 2*histSub {
		return int(us)
	}
	e := bits.Len64(us) - histSubBits - 1 // us>>e is in [64, 128)
	return e*histSub + int(us>>e)
}

// histLow returns the smallest value that lands in bucket i.
func histLow(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	e := i/histSub - 1
	return uint64(i-e*histSub) << e
}

// Record adds one duration (negative durations count as zero).
func (h *Histogram) Record(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	h.counts[histIndex(us)].Add(1)
	h.n.Add(1)
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Quantile returns the value at quantile q (0 < q ≤ 1): the midpoint of the
// bucket holding the ceil(q·n)-th smallest value; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := histLow(i), histLow(i+1)
			return time.Duration((lo+hi)/2) * time.Microsecond
		}
	}
	return 0
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
}
