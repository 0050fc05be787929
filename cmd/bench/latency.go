package main

import (
	"context"
	"time"

	"github.com/bargehq/barge/pkg/objstore"
)

// Latencies is the delay a latencyStore adds before each kind of call.
type Latencies struct {
	PutIfAbsent time.Duration // a conditional PUT (If-None-Match: *)
	Put         time.Duration
	Get         time.Duration // Get and GetRange
	List        time.Duration
	Delete      time.Duration
}

// s3Standard is roughly what S3 Standard answers in from inside its region
// for small objects: a conditional PUT about 30 ms, a GET or a List 15 ms.
var s3Standard = Latencies{PutIfAbsent: 30 * time.Millisecond, Put: 20 * time.Millisecond,
	Get: 15 * time.Millisecond, List: 15 * time.Millisecond, Delete: 20 * time.Millisecond}

// latencyStore delays every call to inner by its kind's latency, then makes
// it: a fast store (objstore.Memory) then answers in a bucket's time, and
// concurrent callers race for a key over that whole window, as they do on
// a real bucket. A call whose context ends during the delay fails with the
// context's error and never reaches inner.
type latencyStore struct {
	inner objstore.Store
	lat   Latencies
}

func withLatency(s objstore.Store, lat Latencies) objstore.Store {
	return latencyStore{inner: s, lat: lat}
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s latencyStore) Put(ctx context.Context, key string, data []byte) error {
	if err := wait(ctx, s.lat.Put); err != nil {
		return err
	}
	return s.inner.Put(ctx, key, data)
}

func (s latencyStore) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := wait(ctx, s.lat.PutIfAbsent); err != nil {
		return err
	}
	return s.inner.PutIfAbsent(ctx, key, data)
}

func (s latencyStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := wait(ctx, s.lat.Get); err != nil {
		return nil, err
	}
	return s.inner.Get(ctx, key)
}

func (s latencyStore) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := wait(ctx, s.lat.Get); err != nil {
		return nil, err
	}
	return s.inner.GetRange(ctx, key, off, length)
}

func (s latencyStore) List(ctx context.Context, prefix, startAfter string, limit int) ([]objstore.ObjectInfo, error) {
	if err := wait(ctx, s.lat.List); err != nil {
		return nil, err
	}
	return s.inner.List(ctx, prefix, startAfter, limit)
}

func (s latencyStore) Delete(ctx context.Context, key string) error {
	if err := wait(ctx, s.lat.Delete); err != nil {
		return err
	}
	return s.inner.Delete(ctx, key)
}
