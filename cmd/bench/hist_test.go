package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistIndexMonotonic(t *testing.T) {
	prev := -1
	for _, us := range []uint64{0, 1, 63, 64, 127, 128, 130, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<62 + 1} {
		i := histIndex(us)
		if i <= prev {
			t.Fatalf("index(%d) = %d, not above %d", us, i, prev)
		}
		if lo := histLow(i); lo > us || histLow(i+1) <= us {
			t.Fatalf("value %d in bucket %d [%d, %d)", us, i, lo, histLow(i+1))
		}
		prev = i
	}
	if i := histIndex(^uint64(0)); i >= histBuckets {
		t.Fatalf("max value lands at %d, past %d buckets", i, histBuckets)
	}
}

func TestQuantileAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var xs []time.Duration
	for range 20000 {
		d := time.Duration(r.ExpFloat64()*20e3) * time.Microsecond
		h.Record(d)
		xs = append(xs, d.Truncate(time.Microsecond))
	}
	slices.Sort(xs)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := xs[int(q*float64(len(xs))+0.999999)-1]
		got := h.Quantile(q)
		if diff := float64(got-want) / float64(want); diff > 1.0/64 || diff < -1.0/64 {
			t.Errorf("q%v = %v, exact %v (%.2f%% off)", q, got, want, 100*diff)
		}
	}
}

func TestQuantileSmall(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
	for _, ms := range []int{1, 2, 3, 4, 100} {
		h.Record(time.Duration(ms) * time.Millisecond)
	}
	if got := h.Quantile(0.5); got < 2900*time.Microsecond || got > 3100*time.Microsecond {
		t.Errorf("median %v, want about 3ms", got)
	}
	if got := h.Quantile(0.99); got < 98*time.Millisecond || got > 102*time.Millisecond {
		t.Errorf("p99 %v, want about 100ms", got)
	}
	var m Histogram
	m.Merge(&h)
	m.Merge(&h)
	if m.Count() != 10 || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Errorf("merge: count %d median %v", m.Count(), m.Quantile(0.5))
	}
}
