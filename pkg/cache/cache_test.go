package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
)

func newCache(t testing.TB, maxBytes int64) (*Cache, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(maxBytes, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, reg
}

// counters reads the cache's counters by name.
func counters(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetMetric()[0].GetCounter().GetValue()
	}
	return out
}

// fillRecent holds n bytes among the newest objects, so that objects read
// whole have only their own share: they borrow what the newest leave
// unused.
func fillRecent(c *Cache, n int64) { c.PutObject("filler", make([]byte, n)) }

// loader counts its calls and returns data (or err).
type loader struct {
	calls atomic.Int32
	data  []byte
	err   error
}

func (l *loader) load(context.Context) ([]byte, error) {
	l.calls.Add(1)
	if l.err != nil {
		return nil, l.err
	}
	return l.data, nil
}

// whole loads a copy of data for Whole, to be read as ranges ranges.
func (l *loader) whole(ranges int) func(context.Context) ([]byte, Parts, error) {
	return func(ctx context.Context) ([]byte, Parts, error) {
		b, err := l.load(ctx)
		return bytes.Clone(b), Parts{N: ranges}, err
	}
}

func mustRange(t testing.TB, c *Cache, key string, off, n int64, l *loader) []byte {
	t.Helper()
	b, err := c.Range(context.Background(), key, off, n, l.load)
	if err != nil {
		t.Fatalf("Range(%s, %d, %d): %v", key, off, n, err)
	}
	return b
}

// held reports whether Range serves key's first byte without loading.
func held(t testing.TB, c *Cache, key string) bool {
	t.Helper()
	l := &loader{data: []byte{0}}
	mustRange(t, c, key, 0, 1, l)
	return l.calls.Load() == 0
}

func TestPutObjectEvictsOldest(t *testing.T) {
	c, _ := newCache(t, 2<<20) // 1 MiB for whole objects
	const size = 400 << 10
	obj := func(b byte) []byte { return bytes.Repeat([]byte{b}, size) }

	c.PutObject("a", obj('a'))
	c.PutObject("b", obj('b'))
	if !held(t, c, "a") || !held(t, c, "b") {
		t.Fatalf("objects within the budget were not held")
	}
	c.PutObject("c", obj('c')) // 1.2 MiB: a, the oldest, leaves
	if held(t, c, "a") {
		t.Errorf("the oldest object is still held beyond the budget")
	}
	if !held(t, c, "b") || !held(t, c, "c") {
		t.Errorf("newer objects were evicted")
	}

	// Putting a held key again neither duplicates it nor refreshes it.
	c.PutObject("b", obj('B'))
	if got := mustRange(t, c, "b", 0, 1, &loader{}); got[0] != 'b' {
		t.Errorf("a second PutObject replaced the held object")
	}
	c.PutObject("d", obj('d'))
	if held(t, c, "b") || !held(t, c, "c") || !held(t, c, "d") {
		t.Errorf("after d: want b evicted, c and d held")
	}
	c.mu.Lock()
	if c.recent.bytes != 2*size || len(c.recent.m) != 2 || len(c.recent.order) != 2 {
		t.Errorf("accounting: %d bytes, %d objects, %d in order; want %d, 2, 2", c.recent.bytes, len(c.recent.m), len(c.recent.order), 2*size)
	}
	c.mu.Unlock()

	// An object larger than the whole budget is not held, and evicts nothing.
	c.PutObject("huge", make([]byte, 1<<20+1))
	if held(t, c, "huge") || !held(t, c, "c") || !held(t, c, "d") {
		t.Errorf("an object over the budget changed what is held")
	}
}

func TestRangeFromHeldObject(t *testing.T) {
	c, reg := newCache(t, 0)
	data := []byte("0123456789")
	c.PutObject("obj", data)
	l := &loader{data: []byte("never")}

	for _, tc := range []struct{ off, n int64 }{{0, 10}, {3, 4}, {9, 1}, {10, 0}} {
		got := mustRange(t, c, "obj", tc.off, tc.n, l)
		if string(got) != string(data[tc.off:tc.off+tc.n]) {
			t.Errorf("Range(%d, %d) = %q", tc.off, tc.n, got)
		}
		if cap(got) != len(got) {
			t.Errorf("Range(%d, %d) has spare capacity: an append would write into the held object", tc.off, tc.n)
		}
	}
	if n := l.calls.Load(); n != 0 {
		t.Errorf("load called %d times for ranges of a held object", n)
	}
	// A range running past the held object's end is not served from it.
	l.data = []byte("loaded")
	if got := mustRange(t, c, "obj", 8, 5, l); string(got) != "loaded" || l.calls.Load() != 1 {
		t.Errorf("Range past the end = %q after %d loads, want a load", got, l.calls.Load())
	}
	if m := counters(t, reg); m["barge_cache_hits_total"] != 4 || m["barge_cache_misses_total"] != 1 || m["barge_cache_loads_total"] != 1 {
		t.Errorf("counters %v", m)
	}
}

// A loaded range is kept (once Ristretto has admitted it): the next Range
// does not load. Other ranges of the same object are separate entries.
func TestRangeCachesLoads(t *testing.T) {
	c, _ := newCache(t, 0)
	l := &loader{data: []byte("abc")}
	mustRange(t, c, "obj", 10, 3, l)
	c.lru.Wait()
	if got := mustRange(t, c, "obj", 10, 3, l); string(got) != "abc" || l.calls.Load() != 1 {
		t.Errorf("second Range = %q after %d loads, want the cached bytes and 1 load", got, l.calls.Load())
	}
	mustRange(t, c, "obj", 10, 4, l)
	mustRange(t, c, "obj", 11, 3, l)
	mustRange(t, c, "other", 10, 3, l)
	if n := l.calls.Load(); n != 4 {
		t.Errorf("%d loads, want one per distinct range", n)
	}
}

func TestRangeLoadErrorNotCached(t *testing.T) {
	c, _ := newCache(t, 0)
	boom := errors.New("bucket down")
	l := &loader{err: boom}
	if _, err := c.Range(context.Background(), "obj", 0, 3, l.load); !errors.Is(err, boom) {
		t.Fatalf("err %v, want the load's error", err)
	}
	c.lru.Wait()
	if _, err := c.Range(context.Background(), "obj", 0, 3, l.load); !errors.Is(err, boom) || l.calls.Load() != 2 {
		t.Errorf("second Range: %v after %d loads; the error must not be cached", err, l.calls.Load())
	}
	l.err, l.data = nil, []byte("abc")
	if got := mustRange(t, c, "obj", 0, 3, l); string(got) != "abc" || l.calls.Load() != 3 {
		t.Errorf("after recovery: %q after %d loads", got, l.calls.Load())
	}
}

// Many concurrent misses of one range call load once and share its bytes
// (and its error).
func TestRangeSingleFlight(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, reg := newCache(t, 0)
				const callers = 50
				release := make(chan struct{})
				var calls atomic.Int32
				boom := errors.New("bucket down")
				load := func(context.Context) ([]byte, error) {
					calls.Add(1)
					<-release
					if fail {
						return nil, boom
					}
					return []byte("shared"), nil
				}

				var wg sync.WaitGroup
				var bad atomic.Int32
				for range callers {
					wg.Go(func() {
						b, err := c.Range(context.Background(), "obj", 0, 6, load)
						if fail && !errors.Is(err, boom) || !fail && (err != nil || string(b) != "shared") {
							bad.Add(1)
						}
					})
				}
				// All callers have missed and wait on the one load in flight.
				synctest.Wait()
				if m := counters(t, reg); m["barge_cache_misses_total"] != callers {
					t.Fatalf("%v misses, want %d callers waiting", m["barge_cache_misses_total"], callers)
				}
				close(release)
				wg.Wait()
				if n := calls.Load(); n != 1 {
					t.Errorf("load called %d times for %d concurrent callers", n, callers)
				}
				if n := bad.Load(); n != 0 {
					t.Errorf("%d callers got the wrong answer", n)
				}
			})
		})
	}
}

// The first caller of a shared load giving up fails neither the load nor
// the callers still waiting on it, and it returns at once.
func TestSharedLoadOutlivesFirstCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newCache(t, 0)
		release := make(chan struct{})
		load := func(ctx context.Context) ([]byte, error) {
			select {
			case <-release:
				return []byte("shared"), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		var firstErr, secondErr error
		var got []byte
		var wg sync.WaitGroup
		wg.Go(func() { _, firstErr = c.Range(ctx, "obj", 0, 6, load) })
		synctest.Wait()
		wg.Go(func() { got, secondErr = c.Range(context.Background(), "obj", 0, 6, load) })
		synctest.Wait()
		cancel()
		synctest.Wait()
		if !errors.Is(firstErr, context.Canceled) {
			t.Fatalf("cancelled caller got %v, want context.Canceled at once", firstErr)
		}
		close(release)
		wg.Wait()
		if secondErr != nil || string(got) != "shared" {
			t.Fatalf("second caller got %q, %v after the first gave up", got, secondErr)
		}
	})
}

// A Range on an object announced with Expect waits for PutObject and serves
// it from memory; after Abandon it loads; a cancelled reader stops waiting.
func TestRangeWaitsForExpectedObject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newCache(t, 0)
		l := &loader{data: []byte("from the bucket")}
		c.Expect("obj")
		var got []byte
		done := make(chan struct{})
		go func() {
			defer close(done)
			got = mustRange(t, c, "obj", 2, 3, l)
		}()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Range did not wait for the expected object")
		default:
		}
		c.PutObject("obj", []byte("0123456789"))
		<-done
		if string(got) != "234" || l.calls.Load() != 0 {
			t.Errorf("got %q after %d loads, want \"234\" from memory", got, l.calls.Load())
		}

		c.Expect("gone")
		go func() {
			synctest.Wait()
			c.Abandon("gone")
		}()
		if got := mustRange(t, c, "gone", 0, 4, l); string(got) != "from the bucket" || l.calls.Load() != 1 {
			t.Errorf("after Abandon got %q after %d loads, want one load", got, l.calls.Load())
		}

		c.Expect("slow")
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			synctest.Wait()
			cancel()
		}()
		if _, err := c.Range(ctx, "slow", 0, 1, l.load); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled wait: %v", err)
		}
	})
}

// Whole loads once, serves the newest objects without loading, and keeps
// whole objects within their quarter of the budget, oldest out first.
func TestWhole(t *testing.T) {
	c, _ := newCache(t, 8<<20) // 2 MiB for whole objects
	fillRecent(c, 4<<20-4)     // and "new" below fills the newest's 4
	l := &loader{data: make([]byte, 1<<20)}
	for range 3 {
		if w, err := c.Whole(context.Background(), "a", l.whole(0)); err != nil || len(w.Data) != 1<<20 {
			t.Fatalf("got %v, %v", w, err)
		}
	}
	if n := l.calls.Load(); n != 1 {
		t.Errorf("%d loads for one object, want 1", n)
	}
	c.PutObject("new", []byte("held"))
	if w, err := c.Whole(context.Background(), "new", l.whole(0)); err != nil || string(w.Data) != "held" || l.calls.Load() != 1 {
		t.Errorf("newest object: %v, %v after %d loads", w, err, l.calls.Load())
	}
	for _, k := range []string{"b", "c"} { // a is pushed out
		if _, err := c.Whole(context.Background(), k, l.whole(0)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Holds("a") || !c.Holds("b") || !c.Holds("new") {
		t.Errorf("Holds: a %v, b %v, new %v; want false, true, true", c.Holds("a"), c.Holds("b"), c.Holds("new"))
	}
	if _, err := c.Whole(context.Background(), "a", l.whole(0)); err != nil || l.calls.Load() != 4 {
		t.Errorf("after eviction: %v, %d loads, want 4", err, l.calls.Load())
	}
	l.err = errors.New("boom")
	if _, err := c.Whole(context.Background(), "d", l.whole(0)); err == nil {
		t.Error("load error not returned")
	}
}

// Prepare runs once per range, in place, and every caller after the first
// gets the first one's result; the newest objects are served as they are.
func TestWholePrepare(t *testing.T) {
	c, _ := newCache(t, 8<<20)
	l := &loader{data: []byte("abcdefgh")}
	w, err := c.Whole(context.Background(), "obj", l.whole(0))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	upper := func(b []byte) error {
		calls++
		copy(b, bytes.ToUpper(b))
		return nil
	}
	for range 2 {
		if b, err := w.Prepare(2, 3, upper); err != nil || string(b) != "CDE" || cap(b) != 3 {
			t.Fatalf("Prepare(2, 3) = %q (cap %d), %v", b, cap(b), err)
		}
	}
	if calls != 1 || string(w.Data) != "abCDEfgh" {
		t.Errorf("%d prepare calls, object %q; want 1 and only the range prepared", calls, w.Data)
	}
	boom := errors.New("corrupt")
	fail := func([]byte) error { return boom }
	for range 2 {
		if _, err := w.Prepare(5, 2, fail); !errors.Is(err, boom) {
			t.Errorf("Prepare of a failing range: %v", err)
		}
	}
	if _, err := w.Prepare(5, 2, upper); !errors.Is(err, boom) {
		t.Errorf("a range that failed once is served later: %v", err)
	}

	c.PutObject("new", []byte("held"))
	nw, _ := c.Whole(context.Background(), "new", l.whole(0))
	if b, err := nw.Prepare(0, 4, fail); err != nil || string(b) != "held" {
		t.Errorf("a published object was prepared again: %q, %v", b, err)
	}
}

// An object whose every range has been read leaves before older ones still
// being read.
func TestWholeReadThroughLeavesFirst(t *testing.T) {
	c, _ := newCache(t, 8<<20) // 2 MiB for whole objects
	fillRecent(c, 4<<20)
	l := &loader{data: make([]byte, 600<<10)}
	ctx := context.Background()
	a, _ := c.Whole(ctx, "a", l.whole(2))
	b, _ := c.Whole(ctx, "b", l.whole(2))
	for _, off := range []int64{0, 100} {
		if _, err := b.Prepare(off, 100, func([]byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Prepare(0, 100, func([]byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	c.Whole(ctx, "c", l.whole(2))
	c.Whole(ctx, "d", l.whole(2)) // 2.4 MiB: one must go
	if !c.Holds("a") || c.Holds("b") || !c.Holds("c") || !c.Holds("d") {
		t.Errorf("held a %v, b %v, c %v, d %v; want b, read through, gone and the rest held",
			c.Holds("a"), c.Holds("b"), c.Holds("c"), c.Holds("d"))
	}
	c.Whole(ctx, "e", l.whole(2)) // none read through: the oldest goes
	if c.Holds("a") || !c.Holds("e") {
		t.Errorf("held a %v, e %v; want the oldest gone", c.Holds("a"), c.Holds("e"))
	}
}

// An object whose ranges are in groups (a segment's topics) is read
// through once every part of each group any reader asked for has been: a
// consumer of one topic reads a segment through though the other topic's
// partitions are never read; a reader of another group starting on it
// makes it unread again until that group is done too.
func TestWholeReadThroughByGroup(t *testing.T) {
	c, _ := newCache(t, 8<<20)
	l := &loader{data: make([]byte, 100)}
	parts := Parts{N: 5, Pos: []int64{0, 10, 20, 30, 40}, Len: []int64{10, 10, 10, 10, 10}, Group: []int32{0, 1, 0, 1, 2}}
	load := func(ctx context.Context) ([]byte, Parts, error) {
		b, err := l.load(ctx)
		return bytes.Clone(b), parts, err
	}
	prepare := func(w *Whole, offs ...int64) {
		for _, off := range offs {
			if _, err := w.Prepare(off, 1, func([]byte) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	one, _ := c.Whole(ctx, "one topic", load)
	prepare(one, 0)
	if one.ReadThrough() {
		t.Error("read through with half of the one topic read")
	}
	prepare(one, 22, 22) // inside the part at 20 (its first batch refused); again: counted once
	if !one.ReadThrough() {
		t.Error("not read through once every part of the one topic read from it was")
	}
	prepare(one, 10) // a reader of the other topic starts
	if one.ReadThrough() {
		t.Error("still read through while the other topic's reader is halfway")
	}
	prepare(one, 30)
	if !one.ReadThrough() {
		t.Error("not read through once both topics read from it were")
	}

	// A range in no part, or parts that do not describe the object
	// usably, fall back to the count: every range.
	for name, p := range map[string]Parts{
		"unlisted":   parts,
		"no lengths": {N: 5, Pos: parts.Pos, Group: parts.Group},
		"bad group":  {N: 5, Pos: parts.Pos, Len: parts.Len, Group: []int32{0, 1, 0, 1, -1}},
		"unsorted":   {N: 5, Pos: []int64{0, 20, 10, 30, 40}, Len: parts.Len, Group: parts.Group},
	} {
		w, _ := c.Whole(ctx, name, func(ctx context.Context) ([]byte, Parts, error) {
			b, err := l.load(ctx)
			return bytes.Clone(b), p, err
		})
		offs := []int64{0, 20, 50, 60}
		if name == "unlisted" {
			offs = []int64{50, 60, 70, 80}
		}
		prepare(w, offs...)
		if w.ReadThrough() {
			t.Errorf("%s: read through after 4 of 5 ranges", name)
		}
		prepare(w, 90)
		if !w.ReadThrough() {
			t.Errorf("%s: not read through after 5 ranges", name)
		}
	}
}

// FavourWhole moves an eighth of the budget from read-through ranges to
// whole objects, however often it is called.
func TestFavourWhole(t *testing.T) {
	c, _ := newCache(t, 8<<20) // 2 MiB for whole objects, 3 once favoured
	fillRecent(c, 4<<20)
	c.FavourWhole()
	c.FavourWhole()
	l := &loader{data: make([]byte, 1<<20)}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := c.Whole(context.Background(), k, l.whole(0)); err != nil {
			t.Fatal(err)
		}
	}
	if !c.Holds("a") || !c.Holds("c") {
		t.Errorf("held a %v, c %v; want three 1 MiB objects in 3 MiB", c.Holds("a"), c.Holds("c"))
	}
	c.Whole(context.Background(), "d", l.whole(0))
	if c.Holds("a") || !c.Holds("d") {
		t.Errorf("held a %v, d %v; want the oldest gone past 3 MiB", c.Holds("a"), c.Holds("d"))
	}
	if got := c.lru.MaxCost(); got != 1<<20 {
		t.Errorf("ranges get %d bytes, want an eighth of 8 MiB", got)
	}
}

// RoomAhead counts only objects not yet read through against the budget,
// and leaves room for as many more as asked.
func TestRoomAhead(t *testing.T) {
	c, _ := newCache(t, 8<<20) // 2 MiB for whole objects
	fillRecent(c, 4<<20)
	if !c.RoomAhead(3) {
		t.Error("no room in an empty cache")
	}
	l := &loader{data: make([]byte, 600<<10)}
	ctx := context.Background()
	a, _ := c.Whole(ctx, "a", l.whole(2))
	c.Whole(ctx, "b", l.whole(2))
	if !c.RoomAhead(1) || c.RoomAhead(2) {
		t.Errorf("two unread 600 KiB objects of 2 MiB: room for one %v, two %v; want true, false", c.RoomAhead(1), c.RoomAhead(2))
	}
	for _, off := range []int64{0, 100} {
		a.Prepare(off, 100, func([]byte) error { return nil })
	}
	if !c.RoomAhead(2) {
		t.Error("an object read through still counts against reading ahead")
	}
}

// Objects read whole borrow the room the newest objects leave unused, and
// the newest take it back as they arrive: the two never hold more than
// their shares together.
func TestWholeBorrowsRecentRoom(t *testing.T) {
	c, _ := newCache(t, 8<<20) // 4 MiB for the newest, 2 for whole objects
	l := &loader{data: make([]byte, 1<<20)}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	for _, k := range keys {
		if _, err := c.Whole(context.Background(), k, l.whole(0)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys {
		if !c.Holds(k) {
			t.Errorf("%s gone: six 1 MiB objects fit in the 6 MiB of both shares while nothing is new", k)
		}
	}
	c.PutObject("new", make([]byte, 3<<20))
	var held []string
	for _, k := range keys {
		if c.Holds(k) {
			held = append(held, k)
		}
	}
	if fmt.Sprint(held) != "[a b c]" || !c.Holds("new") {
		t.Errorf("after 3 MiB of new objects: held %v, new %v; want the newest three whole objects (read ahead, say) given back, [a b c] (being read) in the 2 + 1 MiB left", held, c.Holds("new"))
	}
	if _, err := c.Whole(context.Background(), "g", l.whole(0)); err != nil {
		t.Fatal(err)
	}
	if c.Holds("a") || !c.Holds("b") || !c.Holds("g") {
		t.Errorf("a whole object past the 3 MiB left: a held %v, b %v, g %v; want a, the oldest, gone for g", c.Holds("a"), c.Holds("b"), c.Holds("g"))
	}
}

// Close abandons a load no caller is waiting for any more: the load's
// context ends, so a GET the agent started does not outlive the cache.
func TestCloseAbandonsLoads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(4<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		ended := make(chan error, 1)
		ctx, cancel := context.WithCancel(context.Background())
		go c.Whole(ctx, "seg/a", func(ctx context.Context) ([]byte, Parts, error) {
			<-ctx.Done()
			ended <- ctx.Err()
			return nil, Parts{}, ctx.Err()
		})
		synctest.Wait()
		cancel() // the only caller gives up: the load goes on, detached
		synctest.Wait()
		select {
		case err := <-ended:
			t.Fatalf("the load ended (%v) when its caller gave up", err)
		default:
		}
		c.Close()
		if err := <-ended; !errors.Is(err, context.Canceled) {
			t.Errorf("load ended with %v, want context.Canceled", err)
		}
	})
}
