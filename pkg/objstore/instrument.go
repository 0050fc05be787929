package objstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Op names a Store method in metrics and in Faulty.
type Op string

const (
	OpPut         Op = "put"
	OpPutIfAbsent Op = "put_if_absent"
	OpGet         Op = "get"
	OpGetRange    Op = "get_range"
	OpList        Op = "list"
	OpDelete      Op = "delete"
)

// Ops lists every Op.
var Ops = []Op{OpPut, OpPutIfAbsent, OpGet, OpGetRange, OpList, OpDelete}

// Result values of barge_objstore_requests_total.
const (
	ResultOK       = "ok"
	ResultNotFound = "not_found"
	ResultExists   = "exists"
	ResultError    = "error"
)

// Instrumented wraps a Store with Prometheus metrics:
//
//	barge_objstore_requests_total{op,result}  counter; result is ok, not_found, exists or error
//	barge_objstore_request_seconds{op}        histogram of call latency
//	barge_objstore_bytes_total{op}            bytes written (put*) or read (get*)
//
// It also keeps plain in-process counts for tests (Counts).
type Instrumented struct {
	inner    Store
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
	bytes    *prometheus.CounterVec

	mu     sync.Mutex
	counts map[string]uint64
}

// Instrument wraps s. reg may be nil (no registration). Registering twice
// on one registry reuses the collectors already there, so several stores
// may share a registry; their series then add up.
func Instrument(s Store, reg prometheus.Registerer) *Instrumented {
	in := &Instrumented{
		inner: s,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barge_objstore_requests_total",
			Help: "Object store requests by operation and result.",
		}, []string{"op", "result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "barge_objstore_request_seconds",
			Help:    "Object store request latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. ~16s
		}, []string{"op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barge_objstore_bytes_total",
			Help: "Bytes written (put, put_if_absent) or read (get, get_range) from the object store.",
		}, []string{"op"}),
		counts: make(map[string]uint64),
	}
	if reg != nil {
		in.requests = register(reg, in.requests)
		in.seconds = register(reg, in.seconds)
		in.bytes = register(reg, in.bytes)
	}
	return in
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// Unwrap returns the wrapped store.
func (in *Instrumented) Unwrap() Store { return in.inner }

// Counts returns the number of completed calls keyed "op/result", e.g.
// "put_if_absent/exists", plus "op" alone for the total of each op.
func (in *Instrumented) Counts() map[string]uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[string]uint64, len(in.counts))
	for k, v := range in.counts {
		out[k] = v
	}
	return out
}

func (in *Instrumented) done(op Op, start time.Time, err error, n int) {
	result := ResultOK
	switch {
	case err == nil:
	case errors.Is(err, ErrNotFound):
		result = ResultNotFound
	case errors.Is(err, ErrExists):
		result = ResultExists
	default:
		result = ResultError
	}
	in.requests.WithLabelValues(string(op), result).Inc()
	in.seconds.WithLabelValues(string(op)).Observe(time.Since(start).Seconds())
	if n > 0 {
		in.bytes.WithLabelValues(string(op)).Add(float64(n))
	}
	in.mu.Lock()
	in.counts[string(op)+"/"+result]++
	in.counts[string(op)]++
	in.mu.Unlock()
}

func (in *Instrumented) Put(ctx context.Context, key string, data []byte) error {
	start := time.Now()
	err := in.inner.Put(ctx, key, data)
	in.done(OpPut, start, err, okLen(err, len(data)))
	return err
}

func (in *Instrumented) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	start := time.Now()
	err := in.inner.PutIfAbsent(ctx, key, data)
	in.done(OpPutIfAbsent, start, err, okLen(err, len(data)))
	return err
}

func (in *Instrumented) Get(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	b, err := in.inner.Get(ctx, key)
	in.done(OpGet, start, err, len(b))
	return b, err
}

func (in *Instrumented) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	start := time.Now()
	b, err := in.inner.GetRange(ctx, key, off, length)
	in.done(OpGetRange, start, err, len(b))
	return b, err
}

func (in *Instrumented) List(ctx context.Context, prefix, startAfter string, limit int) ([]ObjectInfo, error) {
	start := time.Now()
	objs, err := in.inner.List(ctx, prefix, startAfter, limit)
	in.done(OpList, start, err, 0)
	return objs, err
}

func (in *Instrumented) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := in.inner.Delete(ctx, key)
	in.done(OpDelete, start, err, 0)
	return err
}

func okLen(err error, n int) int {
	if err != nil {
		return 0
	}
	return n
}
