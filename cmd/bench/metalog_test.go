package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

// A short meta-log run on a store without latency: every commit lands,
// and the counts add up.
func TestMetaLogRunCounts(t *testing.T) {
	for _, sequenced := range []bool{false, true} {
		t.Run(fmt.Sprint("sequenced=", sequenced), func(t *testing.T) { testMetaLogRunCounts(t, sequenced) })
	}
}

func testMetaLogRunCounts(t *testing.T, sequenced bool) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	row, err := metaLogRun(context.Background(), 3, 700*time.Millisecond, Latencies{}, sequenced, logger)
	if err != nil {
		t.Fatal(err)
	}
	if row.Started == 0 || row.Failed != 0 || row.Commits != row.Started {
		t.Fatalf("started %d, committed %d, failed %d (%s)", row.Started, row.Commits, row.Failed, row.FirstError)
	}
	if row.Entries == 0 || row.Entries > uint64(row.Commits) || row.PutIfAbsent != row.Entries+row.Exists {
		t.Fatalf("entries %d for %d commits, %d PUTs of which %d 412s", row.Entries, row.Commits, row.PutIfAbsent, row.Exists)
	}
	if row.PutsPerEntry < 1 || row.CommitP99ms < row.CommitP50ms || row.MaxWaitMs < row.CommitP99ms*0.9 {
		t.Fatalf("figures do not hold together: %+v", row)
	}
}
