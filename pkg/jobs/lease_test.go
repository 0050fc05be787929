package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// openLogAs is openLog for one of several agents on one bucket.
func openLogAs(t *testing.T, store objstore.Store, writer string) *meta.Log {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := meta.Open(ctx, store, meta.Options{WriterID: writer, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// gatedStore holds every GetRange until the gate opens, so a compactor
// that got its leases is still at work when the other asks for them.
type gatedStore struct {
	Store
	gate chan struct{}
}

func (g *gatedStore) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Store.GetRange(ctx, key, off, length)
}

// countingLog signals each AcquireLease entry it appends.
type countingLog struct {
	*meta.Log
	acquired chan struct{}
}

func (c *countingLog) Append(ctx context.Context, ops ...meta.Op) ([]meta.Result, error) {
	res, err := c.Log.Append(ctx, ops...)
	if _, ok := ops[0].(meta.AcquireLease); ok {
		c.acquired <- struct{}{}
	}
	return res, err
}

// commitSmall commits n ingestion objects, each with a batch of every
// partition of the topics.
func commitSmall(t *testing.T, l *meta.Log, store objstore.Store, tag string, n int, topics []meta.TopicID, partitions int32) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		var obj []byte
		var parts []meta.CommitPart
		for _, id := range topics {
			for p := range partitions {
				b := mkBatch(t, fmt.Sprintf("%s-%d-%x-%d", tag, i, id[0], p), 2)
				parts = append(parts, meta.CommitPart{Topic: id, Partition: p, Batches: []meta.CommitBatch{
					{Pos: int64(len(obj)), Len: int64(len(b)), Records: 2, MaxTimestamp: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}}})
				obj = append(obj, b...)
			}
		}
		key := fmt.Sprintf("seg/%s-%d", tag, i)
		if err := store.Put(ctx, key, obj); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, meta.Commit{Object: key, Size: int64(len(obj)), Parts: parts}); err != nil {
			t.Fatal(err)
		}
	}
}

// Two agents that both think they own every compaction job: per round,
// one gets the leases and compacts while the other is refused, so every
// run is replaced exactly once, with no conflicting outputs.
func TestCompactLeasedTwoAgents(t *testing.T) {
	const rounds, perRound, partitions = 3, 4, 2
	ctx := context.Background()
	store := objstore.NewMemory()
	l1 := openLogAs(t, store, "w1")
	topics := []meta.TopicID{{1}, {2}, {3}}
	for i, id := range topics {
		if _, err := l1.Append(ctx, meta.CreateTopic{Name: fmt.Sprint("t", i), ID: id, Partitions: partitions}); err != nil {
			t.Fatal(err)
		}
	}
	l2 := openLogAs(t, store, "w2")
	logs := []*countingLog{{l1, make(chan struct{}, 16)}, {l2, make(chan struct{}, 16)}}
	var runners []*Runner
	var gates []*gatedStore
	for i, l := range logs {
		g := &gatedStore{Store: store}
		gates = append(gates, g)
		runners = append(runners, New(Config{WriterID: fmt.Sprint("w", i+1), CompactionTarget: 1 << 20, LeaseDuration: time.Minute}, l, g, nil))
	}
	total := 0
	for round := range rounds {
		commitSmall(t, l1, store, fmt.Sprint("r", round), perRound, topics, partitions)
		// Both see the new chunks before either starts.
		var seq1 uint64
		l1.View(func(st *meta.State) { seq1 = st.Seq })
		for {
			var seq2 uint64
			l2.View(func(st *meta.State) { seq2 = st.Seq })
			if seq2 >= seq1 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		for _, g := range gates {
			g.gate = make(chan struct{})
		}
		var wg sync.WaitGroup
		counts := make([]int, 2)
		errs := make([]error, 2)
		for i, r := range runners {
			wg.Go(func() { counts[i], errs[i] = r.Compact(ctx) })
		}
		// Both have asked before either reads a byte.
		for _, l := range logs {
			select {
			case <-l.acquired:
			case <-time.After(10 * time.Second):
				t.Fatal("a runner never asked for its leases")
			}
		}
		for _, g := range gates {
			close(g.gate)
		}
		wg.Wait()
		for i := range runners {
			if errs[i] != nil {
				t.Fatalf("round %d: runner %d: %v", round, i+1, errs[i])
			}
		}
		if want := perRound * partitions * len(topics); counts[0]+counts[1] != want {
			t.Fatalf("round %d: replaced %v chunks, want %d in all", round, counts, want)
		}
		total += counts[0] + counts[1]
		t.Logf("round %d: chunks replaced per runner %v", round, counts)
	}
	h := harness.ReadLeaseHistory(t, store)
	replaces, st := h.Replaces, h.Final
	grants := map[string]int{}
	for job, ws := range h.Grants {
		for w, n := range ws {
			if strings.HasPrefix(job, "compact/") {
				grants[w] += n
			}
		}
	}
	cmp, err := store.List(ctx, "cmp/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	// One accepted replace per partition per round, and no other output.
	if want := rounds * partitions * len(topics); replaces != want || len(cmp) != want {
		t.Fatalf("%d accepted replaces and %d cmp/ objects, want %d", replaces, len(cmp), want)
	}
	// Each round, each topic's job was granted once.
	if n := grants["w1"] + grants["w2"]; n != rounds*len(topics) {
		t.Fatalf("compaction leases granted %v, want %d in all", grants, rounds*len(topics))
	}
	// And each round the other runner was refused it, which
	// barge_job_leases_total counts by outcome, as the log granted.
	var granted, held float64
	for _, r := range runners {
		granted += counterValue(t, r.leases.WithLabelValues("granted"))
		held += counterValue(t, r.leases.WithLabelValues("held"))
	}
	if want := float64(rounds * len(topics)); granted != want || held != want {
		t.Fatalf(`barge_job_leases_total: granted %v and held %v in all, want %v each`, granted, held, want)
	}
	for i := range topics {
		for p, part := range st.Topic(fmt.Sprint("t", i)).Partitions {
			for _, c := range part.Chunks {
				if !strings.HasPrefix(c.Object, "cmp/") {
					t.Errorf("t%d/%d still has %s", i, p, c.Object)
				}
			}
		}
		if l, ok := st.Lease(fmt.Sprint("compact/t", i)); ok {
			t.Errorf("compact/t%d still leased: %+v", i, l)
		}
	}
}

// A job that outlasts a third of the lease keeps it by renewal: another
// agent is refused until it ends and released it.
func TestLeaseRenewedWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := objstore.NewMemory()
		const d = 500 * time.Millisecond
		r1 := New(Config{LeaseDuration: d}, openLogAs(t, store, "w1"), store, nil)
		r2 := New(Config{LeaseDuration: d}, openLogAs(t, store, "w2"), store, nil)
		running, finish := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- r1.leased(ctx, []string{"job"}, func(ctx context.Context, _ string) error {
				close(running)
				select {
				case <-finish:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
		<-running
		deadline := time.Now().Add(3 * d)
		for time.Now().Before(deadline) {
			ran := false
			if err := r2.leased(ctx, []string{"job"}, func(context.Context, string) error { ran = true; return nil }); err != nil || ran {
				t.Fatalf("the other agent ran the job while it was leased (%v)", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(finish)
		if err := <-done; err != nil {
			t.Fatalf("leased job: %v", err)
		}
		// Released: the other agent gets it at once, without waiting for expiry.
		ran := false
		if err := r2.leased(ctx, []string{"job"}, func(context.Context, string) error { ran = true; return nil }); err != nil || !ran {
			t.Fatalf("after release: ran %v, %v", ran, err)
		}
	})
}

// failingRenewals lets the first AcquireLease entry through and fails the
// others, as a bucket outage would.
type failingRenewals struct {
	*meta.Log
	mu   sync.Mutex
	seen int
}

func (f *failingRenewals) Append(ctx context.Context, ops ...meta.Op) ([]meta.Result, error) {
	if _, ok := ops[0].(meta.AcquireLease); ok {
		f.mu.Lock()
		f.seen++
		n := f.seen
		f.mu.Unlock()
		if n > 1 {
			return nil, meta.ErrUnavailable
		}
	}
	return f.Log.Append(ctx, ops...)
}

// A job whose lease cannot be renewed stops before the lease ends by this
// agent's clock; the other jobs of the call are skipped.
func TestLeaseLostStopsJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := objstore.NewMemory()
		l := openLogAs(t, store, "w1")
		r := New(Config{LeaseDuration: 300 * time.Millisecond}, &failingRenewals{Log: l}, store, nil)
		var lease meta.Lease
		var stoppedMs int64
		var ran []string
		err := r.leased(ctx, []string{"a", "b"}, func(ctx context.Context, job string) error {
			ran = append(ran, job)
			l.View(func(st *meta.State) { lease, _ = st.Lease(job) })
			<-ctx.Done()
			stoppedMs = time.Now().UnixMilli()
			return ctx.Err()
		})
		if !errors.Is(err, errLeaseLost) || len(ran) != 1 {
			t.Fatalf("err %v, ran %v; want a lost lease and only the first job", err, ran)
		}
		// The timer fires at the lease's end by this agent's clock (fake
		// time here, so scheduling cannot blur it).
		if stoppedMs > lease.UntilMs {
			t.Fatalf("job stopped at %d, lease ended at %d", stoppedMs, lease.UntilMs)
		}
	})
}

// counterValue reads a counter as a scrape would.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
