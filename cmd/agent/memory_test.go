package main

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	for _, tc := range []struct {
		limit, cache, want int64
	}{
		{0, 512 << 20, 512<<20 + memoryHeadroom}, // from the cache
		{1 << 30, 512 << 20, 1 << 30},            // as given
		{-1, 512 << 20, 123},                     // none: left alone
	} {
		debug.SetMemoryLimit(123)
		setMemoryLimit(config{MemoryLimit: tc.limit, CacheBytes: tc.cache}, slog.New(slog.DiscardHandler))
		if got := debug.SetMemoryLimit(-1); got != tc.want {
			t.Errorf("--memory-limit %d, --cache-bytes %d: limit %d, want %d", tc.limit, tc.cache, got, tc.want)
		}
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(123)
	setMemoryLimit(config{CacheBytes: 512 << 20}, slog.New(slog.DiscardHandler))
	if got := debug.SetMemoryLimit(-1); got != 123 {
		t.Errorf("with GOMEMLIMIT set, the flag set the limit to %d", got)
	}
}
