package objstore

import (
	"context"
	"time"
)

// callTimeout bounds each call to a store.
type callTimeout struct {
	inner Store
	d     time.Duration
}

// WithCallTimeout returns s with every call bounded by d, so that a
// connection that hangs (a blackholed network, a stuck server) fails the
// call instead of blocking its caller for good. Callers retry as they do
// on any other bucket error.
func WithCallTimeout(s Store, d time.Duration) Store { return callTimeout{inner: s, d: d} }

func (c callTimeout) Put(ctx context.Context, key string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.d)
	defer cancel()
	return c.inner.Put(ctx, key, data)
}

func (c callTimeout) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.d)
	defer cancel()
	return c.inner.PutIfAbsent(ctx, key, data)
}

func (c callTimeout) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.d)
	defer cancel()
	return c.inner.Get(ctx, key)
}

func (c callTimeout) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.d)
	defer cancel()
	return c.inner.GetRange(ctx, key, off, length)
}

func (c callTimeout) List(ctx context.Context, prefix, startAfter string, limit int) ([]ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, c.d)
	defer cancel()
	return c.inner.List(ctx, prefix, startAfter, limit)
}

func (c callTimeout) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, c.d)
	defer cancel()
	return c.inner.Delete(ctx, key)
}
