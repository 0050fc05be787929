package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// memoryHeadroom is what the agent holds beside its cache at saturation:
// the ingest pipeline's sealed segments (--flush-bytes each, four in
// flight and one open), requests read and not yet answered, fetch answers
// being written, the metadata state and the runtime's own. Without a
// limit the collector lets the heap grow to twice what is live (GOGC=100)
// before it runs, so a full cache alone would take the process to twice
// --cache-bytes; with one it collects harder near cache + headroom.
const memoryHeadroom = 224 << 20

// setMemoryLimit sets the runtime's soft memory limit (--memory-limit)
// unless GOMEMLIMIT does.
func setMemoryLimit(cfg config, logger *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" || cfg.MemoryLimit < 0 {
		return
	}
	limit := cfg.MemoryLimit
	if limit == 0 {
		limit = cfg.CacheBytes + memoryHeadroom
	}
	debug.SetMemoryLimit(limit)
	logger.Debug("memory limit", "bytes", limit)
}
