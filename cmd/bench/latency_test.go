package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/objstore"
)

func TestLatencyStoreDelaysEachKind(t *testing.T) {
	lat := Latencies{PutIfAbsent: 40 * time.Millisecond, Put: 10 * time.Millisecond, Get: 20 * time.Millisecond,
		List: 30 * time.Millisecond, Delete: 10 * time.Millisecond}
	s := withLatency(objstore.NewMemory(), lat)
	ctx := context.Background()
	took := func(what string, want time.Duration, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if d := time.Since(start); d < want || d > want+time.Second {
			t.Fatalf("%s took %v, want about %v", what, d, want)
		}
	}
	took("PutIfAbsent", lat.PutIfAbsent, func() error { return s.PutIfAbsent(ctx, "a", []byte("x")) })
	took("Put", lat.Put, func() error { return s.Put(ctx, "b", []byte("y")) })
	took("Get", lat.Get, func() error { _, err := s.Get(ctx, "a"); return err })
	took("GetRange", lat.Get, func() error { _, err := s.GetRange(ctx, "a", 0, 1); return err })
	took("List", lat.List, func() error { _, err := s.List(ctx, "", "", 0); return err })
	took("Delete", lat.Delete, func() error { return s.Delete(ctx, "b") })
	// The wrapped store still answers as itself.
	if err := s.PutIfAbsent(ctx, "a", nil); !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second PutIfAbsent: %v, want ErrExists", err)
	}
	if _, err := s.Get(ctx, "b"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get of a deleted key: %v, want ErrNotFound", err)
	}
}

func TestLatencyStoreStopsWithTheContext(t *testing.T) {
	mem := objstore.NewMemory()
	s := withLatency(mem, Latencies{PutIfAbsent: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.PutIfAbsent(ctx, "a", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PutIfAbsent = %v, want the context's deadline", err)
	}
	if _, err := mem.Get(context.Background(), "a"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("a call cut short during its delay reached the store: %v", err)
	}
}
