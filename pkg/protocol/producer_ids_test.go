package protocol

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// openLog opens a metadata log on a fresh in-memory bucket, for a minute
// at most; the caller runs it, or not.
func openLog(t *testing.T) (context.Context, *meta.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	log, err := meta.Open(ctx, objstore.NewMemory(), meta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, log
}

// Many callers at once, across several blocks, each get an id no other
// caller got, and no block is wasted: callers that find the block in hand
// used up share the reservation in flight.
func TestProducerIDsUnique(t *testing.T) {
	ctx, log := openLog(t)
	go log.Run(ctx)
	// What a zero-count reservation finds is where the next one starts.
	nextFree := func() int64 {
		res, err := log.Append(ctx, meta.ReserveProducers{Count: 0})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].FirstProducerID
	}
	start := nextFree()
	p := producerIDs{log: log}
	const callers = 3*producerIDBlock + 17
	ids := make([]int64, callers)
	var wg sync.WaitGroup
	for i := range callers {
		// take runs in phase one, one caller at a time per connection;
		// the waits run concurrently.
		next := p.take(ctx)
		wg.Go(func() {
			id, err := next()
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("producer id %d handed out twice", id)
		}
		seen[id] = true
	}
	if blocks := (nextFree() - start) / producerIDBlock; blocks != 4 {
		t.Errorf("%d blocks reserved for %d callers, want 4", blocks, callers)
	}
}
