package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bargehq/barge/pkg/objstore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startLog opens a Log and runs it until the returned stop is called (or
// the test ends). stop returns once Run has returned, so snapshots it
// started are written.
func startLog(t testing.TB, store objstore.Store, opts Options) (*Log, func()) {
	t.Helper()
	l := openLog(t, store, opts)
	return l, runLog(t, l)
}

func openLog(t testing.TB, store objstore.Store, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	l, err := Open(context.Background(), store, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func runLog(t testing.TB, l *Log) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func seqOf(l *Log) (seq uint64) {
	l.View(func(s *State) { seq = s.Seq })
	return seq
}

func snapOf(l *Log) (b []byte) {
	l.View(func(s *State) { b = s.EncodeSnapshot() })
	return b
}

// logEntries reads every stored log entry in slot order.
func logEntries(t testing.TB, store objstore.Store) []*Entry {
	t.Helper()
	ctx := context.Background()
	keys, err := store.List(ctx, logPrefix, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []*Entry
	for i, k := range keys {
		if k.Key != EntryKey(uint64(i+1)) {
			t.Fatalf("slot %d has key %s", i+1, k.Key)
		}
		b, err := store.Get(ctx, k.Key)
		if err != nil {
			t.Fatal(err)
		}
		en, err := DecodeEntry(b)
		if err != nil {
			t.Fatalf("%s: %v", k.Key, err)
		}
		out = append(out, en)
	}
	return out
}

func TestLogOpenEmptyAndAppend(t *testing.T) {
	store := objstore.NewMemory()
	l, _ := startLog(t, store, Options{WriterID: "w1", PollInterval: time.Hour})
	if seq := seqOf(l); seq != 0 {
		t.Fatalf("empty log at seq %d", seq)
	}
	l.View(func(s *State) {
		if len(s.TopicNames()) != 0 {
			t.Fatalf("empty log has topics %v", s.TopicNames())
		}
	})
	if l.WriterID() != "w1" {
		t.Fatalf("WriterID = %q", l.WriterID())
	}
	ctx := context.Background()
	id := testID(1)
	r, err := l.Append(ctx, CreateTopic{Name: "t", ID: id, Partitions: 2}, ReserveProducers{Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(r) != 2 || r[0].Err != nil || r[1].FirstProducerID != 1000 {
		t.Fatalf("results = %+v", r)
	}
	r, err = l.Append(ctx, commitOf("o", part(id, 1, plain(0, 10, 3), plain(10, 10, 4))))
	if err != nil {
		t.Fatal(err)
	}
	if got := r[0].Parts[0]; len(got) != 2 || got[0].BaseOffset != 0 || got[1].BaseOffset != 3 {
		t.Fatalf("commit results = %+v", got)
	}
	r, err = l.Append(ctx, CreateTopic{Name: "t", ID: testID(2), Partitions: 1})
	if err != nil || !errors.Is(r[0].Err, ErrTopicExists) {
		t.Fatalf("duplicate create: %+v, %v", r, err)
	}
	if seq := seqOf(l); seq != 3 {
		t.Fatalf("seq = %d, want 3", seq)
	}
	ens := logEntries(t, store)
	if len(ens) != 3 {
		t.Fatalf("%d entries stored, want 3", len(ens))
	}
	for _, en := range ens {
		if en.Writer != "w1" {
			t.Fatalf("entry writer %q", en.Writer)
		}
	}
	if _, ok := ens[0].Ops[0].(CreateTopic); !ok || len(ens[0].Ops) != 2 {
		t.Fatalf("first entry ops = %#v", ens[0].Ops)
	}
	l.View(func(s *State) {
		if p := s.Topic("t").Partition(1); p.HighWatermark != 7 || len(p.Chunks) != 1 {
			t.Fatalf("partition = %+v", p)
		}
	})
}

// TestLogResultsDoNotAlias checks that group-committed appends get results
// that do not share backing memory.
func TestLogResultsDoNotAlias(t *testing.T) {
	store := objstore.NewMemory()
	l := openLog(t, store, Options{PollInterval: time.Hour})
	var ps []*Pending
	for i := range 10 { // queued before Run starts: one entry for all
		ps = append(ps, l.Submit(ReserveProducers{Count: int32(i + 1)}))
	}
	runLog(t, l)
	var all [][]Result
	for _, p := range ps {
		r, err := p.Wait(context.Background())
		if err != nil || len(r) != 1 {
			t.Fatalf("Wait = %+v, %v", r, err)
		}
		all = append(all, r)
	}
	firsts := make([]int64, len(all))
	for i, r := range all {
		firsts[i] = r[0].FirstProducerID
	}
	if n := len(logEntries(t, store)); n != 1 {
		t.Fatalf("%d entries, want 1 group commit", n)
	}
	for i := range all {
		_ = append(all[i], Result{FirstProducerID: -1})
	}
	for i, r := range all {
		if r[0].FirstProducerID != firsts[i] {
			t.Fatalf("appending to one result overwrote result %d", i)
		}
	}
}

func TestLogConcurrentWriters(t *testing.T) {
	store := &conflictCounter{Store: objstore.NewMemory()}
	opts := Options{PollInterval: 5 * time.Millisecond, SnapshotEvery: 16}
	opts.WriterID = "A"
	a, _ := startLog(t, store, opts)
	ctx := context.Background()
	id := testID(1)
	if r, err := a.Append(ctx, CreateTopic{Name: "t", ID: id, Partitions: 2}); err != nil || r[0].Err != nil {
		t.Fatalf("create: %+v, %v", r, err)
	}
	opts.WriterID = "B"
	b, _ := startLog(t, store, opts)

	type commit struct {
		partition int32
		base      int64
		records   int32
	}
	const goroutines, perGoroutine = 6, 20
	var (
		mu      sync.Mutex
		commits []commit
		wg      sync.WaitGroup
		errs    = make(chan error, 2*goroutines)
	)
	for li, l := range []*Log{a, b} {
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perGoroutine {
					p := int32((g + i) % 2)
					n := int32(1 + (li*7+g*3+i)%5)
					obj := fmt.Sprintf("data/%d-%d-%d", li, g, i)
					r, err := l.Append(ctx, commitOf(obj, part(id, p, plain(0, 10, n))))
					if err != nil {
						errs <- err
						return
					}
					br := r[0].Parts[0][0]
					if br.Err != nil {
						errs <- br.Err
						return
					}
					mu.Lock()
					commits = append(commits, commit{p, br.BaseOffset, n})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Both agents converge on the stored log.
	keys, err := store.List(ctx, logPrefix, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	last := uint64(len(keys))
	eventually(t, "both logs to catch up", func() bool { return seqOf(a) == last && seqOf(b) == last })
	sa, sb := snapOf(a), snapOf(b)
	if !bytes.Equal(sa, sb) {
		t.Fatal("agents' states differ after catching up")
	}
	replayed := NewState()
	for i, en := range logEntries(t, store) {
		replayed.Apply(uint64(i+1), en)
	}
	if !bytes.Equal(replayed.EncodeSnapshot(), sa) {
		t.Fatal("agents' state differs from a replay of the stored log")
	}

	// Every commit got its own offsets, with no gaps, per partition.
	if len(commits) != 2*goroutines*perGoroutine {
		t.Fatalf("%d commits recorded", len(commits))
	}
	slices.SortFunc(commits, func(x, y commit) int {
		if x.partition != y.partition {
			return int(x.partition - y.partition)
		}
		return int(x.base - y.base)
	})
	next := map[int32]int64{}
	for _, c := range commits {
		if c.base != next[c.partition] {
			t.Fatalf("partition %d: commit at %d, want %d (overlap or gap)", c.partition, c.base, next[c.partition])
		}
		next[c.partition] = c.base + int64(c.records)
	}
	a.View(func(s *State) {
		for p, want := range next {
			if hw := s.Topic("t").Partition(p).HighWatermark; hw != want {
				t.Fatalf("partition %d HW = %d, want %d", p, hw, want)
			}
		}
	})

	// Each append is stored exactly once.
	objects := map[string]int{}
	writers := map[string]int{}
	for _, en := range logEntries(t, store) {
		writers[en.Writer]++
		for _, op := range en.Ops {
			if c, ok := op.(Commit); ok {
				objects[c.Object]++
			}
		}
	}
	if len(objects) != len(commits) {
		t.Fatalf("%d distinct commits stored, %d appended", len(objects), len(commits))
	}
	for o, n := range objects {
		if n != 1 {
			t.Fatalf("commit %s stored %d times", o, n)
		}
	}
	if writers["A"] == 0 || writers["B"] == 0 {
		t.Fatalf("entries per writer: %v", writers)
	}
	t.Logf("%d commits in %d entries (%v), %d lost races for a slot", len(commits), last, writers, store.conflicts.Load())
}

// conflictCounter counts PutIfAbsent calls that found the slot taken.
type conflictCounter struct {
	objstore.Store
	conflicts atomic.Int64
}

func (s *conflictCounter) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	err := s.Store.PutIfAbsent(ctx, key, data)
	if errors.Is(err, objstore.ErrExists) {
		s.conflicts.Add(1)
	}
	return err
}

// lossyStore loses the answer of chosen PutIfAbsent calls: the write takes
// effect and the caller is told it failed.
type lossyStore struct {
	objstore.Store
	mu   sync.Mutex
	lose int // how many of the next successful PutIfAbsent calls to lose
	lost []string
}

var errLost = errors.New("connection reset (answer lost)")

func (s *lossyStore) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	err := s.Store.PutIfAbsent(ctx, key, data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.lose > 0 {
		s.lose--
		s.lost = append(s.lost, key)
		return errLost
	}
	return err
}

func TestLogRetryRecognisesOwnEntry(t *testing.T) {
	store := &lossyStore{Store: objstore.NewMemory(), lose: 1}
	l, _ := startLog(t, store, Options{WriterID: "w", PollInterval: time.Hour})
	ctx := context.Background()
	r, err := l.Append(ctx, CreateTopic{Name: "t", ID: testID(1), Partitions: 1}, ReserveProducers{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Applied once: applying it twice would report ErrTopicExists and
	// hand out a second producer range.
	if r[0].Err != nil || r[1].FirstProducerID != 1000 {
		t.Fatalf("results = %+v", r)
	}
	if len(store.lost) != 1 || store.lost[0] != EntryKey(1) {
		t.Fatalf("lost answers: %v", store.lost)
	}
	store.lose = 1
	r, err = l.Append(ctx, ReserveProducers{Count: 1})
	if err != nil || r[0].FirstProducerID != 1001 {
		t.Fatalf("second append: %+v, %v", r, err)
	}
	ens := logEntries(t, store)
	if len(ens) != 2 || seqOf(l) != 2 {
		t.Fatalf("%d entries, seq %d; want 2, 2", len(ens), seqOf(l))
	}
	if ens[0].Writer != "w" || ens[0].Tag == ens[1].Tag {
		t.Fatalf("entries: %+v, %+v", ens[0], ens[1])
	}
}

// TestLogSlotTakenByOther: a slot taken by another agent is applied and
// the own entry is re-checked against the new state in the next slot.
func TestLogSlotTakenByOther(t *testing.T) {
	store := objstore.NewMemory()
	l, _ := startLog(t, store, Options{WriterID: "w", PollInterval: time.Hour})
	ctx := context.Background()
	other := &Entry{Writer: "other", Tag: 1, Ops: []Op{CreateTopic{Name: "t", ID: testID(1), Partitions: 1}}}
	if err := store.PutIfAbsent(ctx, EntryKey(1), other.Encode()); err != nil {
		t.Fatal(err)
	}
	r, err := l.Append(ctx, CreateTopic{Name: "t", ID: testID(2), Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(r[0].Err, ErrTopicExists) {
		t.Fatalf("err = %v, want ErrTopicExists: the other agent's topic came first", r[0].Err)
	}
	ens := logEntries(t, store)
	if len(ens) != 2 || ens[0].Writer != "other" || ens[1].Writer != "w" || seqOf(l) != 2 {
		t.Fatalf("%d entries, seq %d", len(ens), seqOf(l))
	}
}

func TestLogAppendFailsWhenStoreDown(t *testing.T) {
	store := &failingStore{Store: objstore.NewMemory()}
	l, _ := startLog(t, store, Options{PollInterval: time.Hour, MaxAttempts: 2})
	_, err := l.Append(context.Background(), ReserveProducers{Count: 1})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if seqOf(l) != 0 {
		t.Fatal("failed append changed the state")
	}
}

type failingStore struct{ objstore.Store }

func (failingStore) PutIfAbsent(context.Context, string, []byte) error {
	return errors.New("bucket down")
}

// countingStore counts Gets by key prefix.
type countingStore struct {
	objstore.Store
	mu   sync.Mutex
	gets map[string]int
}

func (s *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	if s.gets == nil {
		s.gets = map[string]int{}
	}
	s.gets[key[:strings.LastIndexByte(key, '/')+1]]++
	s.mu.Unlock()
	return s.Store.Get(ctx, key)
}

func TestLogSnapshots(t *testing.T) {
	mem := objstore.NewMemory()
	ctx := context.Background()
	w, stop := startLog(t, mem, Options{WriterID: "w", PollInterval: time.Hour, SnapshotEvery: 10})
	id := testID(1)
	if _, err := w.Append(ctx, CreateTopic{Name: "t", ID: id, Partitions: 3, Configs: map[string]string{"retention.ms": "1"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 34 {
		b := CommitBatch{Pos: 0, Len: 10, Records: 2, ProducerID: int64(i % 3), BaseSequence: int32(i / 3 * 2)}
		r, err := w.Append(ctx, commitOf(fmt.Sprint("o", i), part(id, int32(i%3), b)))
		if err != nil || r[0].Parts[0][0].Err != nil {
			t.Fatalf("append %d: %+v, %v", i, r, err)
		}
	}
	stop() // waits for the snapshots being written
	want := snapOf(w)
	if seqOf(w) != 35 {
		t.Fatalf("writer at seq %d, want 35", seqOf(w))
	}
	snaps, err := mem.List(ctx, snapPrefix, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range snaps {
		keys = append(keys, s.Key)
	}
	if wantKeys := []string{SnapshotKey(10), SnapshotKey(20), SnapshotKey(30)}; !slices.Equal(keys, wantKeys) {
		t.Fatalf("snapshots = %v, want %v", keys, wantKeys)
	}

	// A fresh Open loads snapshot 30 and replays 31..35 only.
	cs := &countingStore{Store: mem}
	l, err := Open(ctx, cs, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if got := snapOf(l); !bytes.Equal(got, want) {
		t.Fatal("state opened from snapshot and tail differs from the writer's")
	}
	if cs.gets[snapPrefix] != 1 || cs.gets[logPrefix] != 5+1 { // the tail, then a miss at 36
		t.Fatalf("Open read %v", cs.gets)
	}

	// The snapshot holds what the tail needs: the same entries on top of
	// it and on top of a full replay give the same state.
	full := NewState()
	for i, en := range logEntries(t, mem) {
		full.Apply(uint64(i+1), en)
	}
	if !bytes.Equal(full.EncodeSnapshot(), want) {
		t.Fatal("full replay differs from the writer's state")
	}

	// An unreadable newest snapshot is skipped for the one before it.
	if err := mem.Put(ctx, SnapshotKey(30), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	cs = &countingStore{Store: mem}
	l, err = Open(ctx, cs, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if got := snapOf(l); !bytes.Equal(got, want) {
		t.Fatal("state opened past a bad snapshot differs from the writer's")
	}
	if cs.gets[snapPrefix] != 2 || cs.gets[logPrefix] != 15+1 {
		t.Fatalf("Open read %v", cs.gets)
	}
}

func TestLogChanged(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	a, _ := startLog(t, store, Options{WriterID: "a", PollInterval: time.Hour})
	b, _ := startLog(t, store, Options{WriterID: "b", PollInterval: 2 * time.Millisecond})

	ch := a.Changed()
	select {
	case <-ch:
		t.Fatal("Changed fired before any change")
	default:
	}
	if _, err := a.Append(ctx, ReserveProducers{Count: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch: // closed by the time Append returns
	default:
		t.Fatal("Changed did not fire on an own append")
	}
	if ch2 := a.Changed(); ch2 == ch {
		t.Fatal("Changed returned the fired channel again")
	}

	// b sees a's entry by polling.
	chB := b.Changed()
	eventually(t, "b to see a's entry", func() bool {
		select {
		case <-chB:
			return true
		default:
			return false
		}
	})
	if seqOf(b) != 1 {
		t.Fatalf("b at seq %d after the change, want 1", seqOf(b))
	}
}

// BenchmarkOpen measures start-up over a log of n entries, replaying all of
// them or loading a snapshot and replaying a short tail.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, withSnap := range []bool{false, true} {
			name := fmt.Sprintf("entries=%d/snapshot=%v", n, withSnap)
			b.Run(name, func(b *testing.B) {
				store := benchLog(b, n, withSnap)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					l, err := Open(ctx, store, Options{Logger: quiet})
					if err != nil {
						b.Fatal(err)
					}
					if seqOf(l) != uint64(n) {
						b.Fatalf("opened at %d", seqOf(l))
					}
				}
			})
		}
	}
}

// benchLog writes n entries of commits (and a snapshot 10 entries before
// the end) to an in-memory store.
func benchLog(b *testing.B, n int, withSnap bool) objstore.Store {
	b.Helper()
	ctx := context.Background()
	store := objstore.NewMemory()
	s := NewState()
	put := func(en *Entry) {
		seq := s.Seq + 1
		if err := store.PutIfAbsent(ctx, EntryKey(seq), en.Encode()); err != nil {
			b.Fatal(err)
		}
		s.Apply(seq, en)
		if withSnap && seq == uint64(n-10) {
			if err := store.Put(ctx, SnapshotKey(seq), s.EncodeSnapshot()); err != nil {
				b.Fatal(err)
			}
		}
	}
	const topics, partitions = 4, 8
	var ops []Op
	for i := range topics {
		ops = append(ops, CreateTopic{Name: fmt.Sprint("topic-", i), ID: testID(byte(i)), Partitions: partitions})
	}
	put(&Entry{Writer: "bench", Ops: ops})
	seqs := map[[2]int]int32{}
	for i := 1; i < n; i++ {
		var parts []CommitPart
		for j := range 6 {
			tp, p := (i+j)%topics, int32((i*3+j)%partitions)
			pid := int64(j % 3)
			k := [2]int{tp, int(p)*10 + int(pid)}
			parts = append(parts, part(testID(byte(tp)), p,
				CommitBatch{Pos: int64(j) * 100, Len: 100, Records: 10, MaxTimestamp: int64(i), ProducerID: pid, BaseSequence: seqs[k]}))
			seqs[k] += 10
		}
		put(&Entry{Writer: "bench", Tag: uint64(i), TimeMs: int64(i), Ops: []Op{commitOf(fmt.Sprintf("data/%08d", i), parts...)}})
	}
	return store
}

// A bucket call that hangs fails its attempt after CallTimeout, so an
// append reports ErrUnavailable instead of stalling the log for good. The
// test runs in a synctest bubble: its clock moves only while every
// goroutine of the log waits, so no call that merely runs slowly on a
// loaded machine can outlast the 20 ms, and only the hung one does.
func TestAppendHungBucketTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := objstore.NewMemory()
		f := objstore.NewFaulty(mem)
		l := openLog(t, f, Options{MaxAttempts: 2, CallTimeout: 20 * time.Millisecond})
		defer runLog(t, l)()
		f.SetDelay(objstore.OpPutIfAbsent, time.Hour) // a blackholed connection
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := l.Append(ctx, ReserveProducers{Count: 1}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("append against a hung bucket: %v, want ErrUnavailable", err)
		}
		// Two attempts of 20 ms and the backoff between them, by the
		// bubble's clock: the calls were cut off by CallTimeout, not by
		// the hour's delay or the append's own 30 s.
		if took := time.Since(start); took >= 30*time.Second {
			t.Fatalf("the append gave up after %v, not after its calls' timeouts", took)
		}
		if n := f.Calls(objstore.OpPutIfAbsent); n != 2 {
			t.Fatalf("%d PutIfAbsent calls, want 2 (MaxAttempts)", n)
		}
		f.SetDelay(objstore.OpPutIfAbsent, 0)
		if _, err := l.Append(ctx, ReserveProducers{Count: 1}); err != nil {
			t.Fatalf("append after the bucket answers again: %v", err)
		}
	})
}

// The write loop is bounded by time whatever holds it up: an op not
// written within MaxQueueWait of its Submit fails, the write in flight
// included, and nothing it held is attempted afterwards. (A request to a
// real bucket given up at the deadline may still take effect there; the
// orphan sweep's condemnation, not this bound, is what keeps such a late
// commit from pointing at a deleted object.)
func TestAppendQueuedTooLongFails(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFaulty(mem)
	l := openLog(t, f, Options{MaxQueueWait: 50 * time.Millisecond})
	defer runLog(t, l)()
	f.SetDelay(objstore.OpPutIfAbsent, time.Hour)
	first := l.Submit(ReserveProducers{Count: 1})
	deadline := time.Now().Add(30 * time.Second)
	for f.Calls(objstore.OpPutIfAbsent) == 0 { // the first entry is being written
		if time.Now().After(deadline) {
			t.Fatal("the first entry was never written")
		}
		time.Sleep(time.Millisecond)
	}
	second := l.Submit(ReserveProducers{Count: 1})
	ctx := context.Background()
	if _, err := first.Wait(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the entry in flight for longer than MaxQueueWait: %v, want ErrUnavailable", err)
	}
	if _, err := second.Wait(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the op queued behind it: %v, want ErrUnavailable", err)
	}
	f.SetDelay(objstore.OpPutIfAbsent, 0)
	if _, err := l.Append(ctx, AgentHeartbeat{Addr: "a:1"}); err != nil {
		t.Fatalf("append once the bucket answers: %v", err)
	}
	for _, en := range logEntries(t, mem) {
		for _, op := range en.Ops {
			if _, ok := op.(ReserveProducers); ok {
				t.Fatalf("a failed op was written: %#v", en)
			}
		}
	}
}

// Losing slots to other writers counts against the same deadline: a
// writer that loses every race fails within MaxQueueWait instead of
// looping for as long as the others write.
func TestAppendLosingEveryRaceFails(t *testing.T) {
	mem := objstore.NewMemory()
	// A rival that takes the slot each time this log is about to write it.
	rival := &raceLoser{Store: mem}
	l := openLog(t, rival, Options{WriterID: "loser", MaxQueueWait: 200 * time.Millisecond, PollInterval: time.Hour})
	defer runLog(t, l)()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // not the deadline under test: a bound on a broken log
	defer cancel()
	_, err := l.Append(ctx, ReserveProducers{Count: 1})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("append that lost %d races: %v, want ErrUnavailable", rival.stolen.Load(), err)
	}
	if rival.stolen.Load() < 2 {
		t.Fatalf("the rival took only %d slots", rival.stolen.Load())
	}
}

// raceLoser makes every PutIfAbsent of a log entry lose: just before it,
// another writer's entry takes the key.
type raceLoser struct {
	objstore.Store
	stolen atomic.Int64
}

func (r *raceLoser) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if strings.HasPrefix(key, logPrefix) {
		other := &Entry{Writer: "rival", Tag: uint64(r.stolen.Add(1)), Ops: []Op{ReserveProducers{Count: 1}}}
		if err := r.Store.PutIfAbsent(ctx, key, other.Encode()); err != nil {
			return err
		}
	}
	return r.Store.PutIfAbsent(ctx, key, data)
}

// TestSyncTail: an agent that polls rarely sees another agent's entry as
// soon as it asks for the tail.
func TestSyncTail(t *testing.T) {
	store := objstore.NewMemory()
	slow, _ := startLog(t, store, Options{WriterID: "slow", PollInterval: time.Hour})
	fast, _ := startLog(t, store, Options{WriterID: "fast"})
	if _, err := fast.Append(context.Background(), CreateTopic{Name: "t", ID: TopicID{1}, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if seqOf(slow) != 0 {
		t.Fatalf("the slow log applied slot %d before asking", seqOf(slow))
	}
	if err := slow.SyncTail(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := seqOf(slow); got != seqOf(fast) {
		t.Fatalf("after SyncTail the slow log is at %d, the tail at %d", got, seqOf(fast))
	}
}

// TestTrySubmitFull: TrySubmit never blocks; a full queue is ErrBusy.
func TestTrySubmitFull(t *testing.T) {
	l := openLog(t, objstore.NewMemory(), Options{WriterID: "w"}) // not running: nothing drains the queue
	var err error
	for i := 0; i <= cap(l.reqs) && err == nil; i++ {
		_, err = l.TrySubmit(ReserveProducers{Count: 1})
	}
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("TrySubmit on a full queue: %v, want ErrBusy", err)
	}
}

// gets counts a store's GETs and how many were ever in flight at once.
// Each GET waits (up to a bound) for another to join it, so that GETs
// issued together are seen together however the machine schedules them.
type gets struct {
	objstore.Store
	mu           sync.Mutex
	n, now, most int
	joined       chan struct{}
}

func (g *gets) Get(ctx context.Context, key string) ([]byte, error) {
	g.mu.Lock()
	g.n++
	g.now++
	g.most = max(g.most, g.now)
	if g.now == 2 {
		close(g.joined)
		g.joined = make(chan struct{})
	}
	joined := g.joined
	g.mu.Unlock()
	select {
	case <-joined:
	case <-time.After(50 * time.Millisecond):
	}
	defer func() { g.mu.Lock(); g.now--; g.mu.Unlock() }()
	return g.Store.Get(ctx, key)
}

func (g *gets) counts() (n, most int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	n, most = g.n, g.most
	g.n, g.most = 0, 0
	return n, most
}

// TestCatchUpReadsAhead: a log far behind reads the slots ahead of it in
// parallel, and one at the tail pays one GET a look.
func TestCatchUpReadsAhead(t *testing.T) {
	mem := objstore.NewMemory()
	counted := &gets{Store: mem, joined: make(chan struct{})}
	behind, _ := startLog(t, counted, Options{WriterID: "behind", PollInterval: time.Hour})
	writer, _ := startLog(t, mem, Options{WriterID: "writer"})
	ctx := context.Background()
	const slots = 100
	for i := range slots {
		if _, err := writer.Append(ctx, CreateTopic{Name: fmt.Sprint("t", i), ID: TopicID{byte(i + 1)}, Partitions: 1}); err != nil {
			t.Fatal(err)
		}
	}
	counted.counts()
	if err := behind.SyncTail(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := seqOf(behind), seqOf(writer); got != want {
		t.Fatalf("caught up to slot %d, the tail is %d", got, want)
	}
	n, most := counted.counts()
	if most < 2 || n > slots+maxReadAhead+1 {
		t.Fatalf("catching up %d slots took %d GETs, at most %d at once; want them read ahead in parallel, with at most a window wasted", slots, n, most)
	}
	if err := behind.SyncTail(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := counted.counts(); n != 1 {
		t.Fatalf("a look at the tail took %d GETs, want 1", n)
	}
}
