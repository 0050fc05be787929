package meta_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// Issue 13, acceptance 2, on a real MinIO bucket with the sequencer's
// conditional writes under the test's control. The same with agent
// processes is e2e's TestSequencerKilled and TestSequencerPaused.

// heldPuts holds conditional writes once armed: the next PutIfAbsent waits,
// whatever its context says (a request delayed in the network reaches the
// bucket when it does), until the test lets it go and says how.
type heldPuts struct {
	objstore.Store
	mu      sync.Mutex
	armed   bool
	waiting chan string         // the held call's key
	release chan releaseHow     // how to let it go
	results map[string]error    // what held calls returned, by key
	landed  map[string]struct{} // held calls that reached the bucket
}

type releaseHow int

const (
	perform     releaseHow = iota // write, and answer
	performLost                   // write, and lose the answer
	drop                          // never write
)

func newHeldPuts(s objstore.Store) *heldPuts {
	return &heldPuts{Store: s, waiting: make(chan string, 1), release: make(chan releaseHow),
		results: map[string]error{}, landed: map[string]struct{}{}}
}

func (h *heldPuts) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = true
}

var errLostAnswer = errors.New("connection reset (the write happened)")

func (h *heldPuts) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	h.mu.Lock()
	armed := h.armed
	h.armed = false
	h.mu.Unlock()
	if !armed {
		return h.Store.PutIfAbsent(ctx, key, data)
	}
	h.waiting <- key
	how := <-h.release
	err := errLostAnswer
	if how != drop {
		err = h.Store.PutIfAbsent(context.Background(), key, data)
	}
	h.mu.Lock()
	h.results[key] = err
	if how != drop && err == nil {
		h.landed[key] = struct{}{}
	}
	h.mu.Unlock()
	if how == performLost && err == nil {
		return errLostAnswer
	}
	if how == drop {
		return errLostAnswer
	}
	return err
}

type fleetLog struct {
	*meta.Log
	stop func()
	done chan struct{}
}

func startFleetLog(t *testing.T, store objstore.Store, id string, relay *meta.LocalRelay) *fleetLog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := meta.Open(ctx, store, meta.Options{WriterID: id, PollInterval: 20 * time.Millisecond, Relay: relay, Sequence: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	fl := &fleetLog{Log: l, stop: stop, done: make(chan struct{})}
	go func() { l.Run(runCtx); close(fl.done) }()
	t.Cleanup(func() { stop(); <-fl.done })
	addr := id + ":9092"
	relay.Add(addr, l)
	if _, err := l.Append(ctx, meta.AgentHeartbeat{Addr: addr}); err != nil {
		t.Fatal(err)
	}
	return fl
}

func sequencerOf(l *meta.Log) (id string) {
	l.View(func(st *meta.State) {
		if a, ok := st.Sequencer(time.Now().UnixMilli()); ok {
			id = a.ID
		}
	})
	return id
}

// sequencedOnMinIO starts the sequencer "A" on held (so its writes can be
// held) and the agents "B" and "C" on store, all at Format5 with A the
// sequencer.
func sequencedOnMinIO(t *testing.T) (store objstore.Store, held *heldPuts, relay *meta.LocalRelay, a, b, c *fleetLog) {
	t.Helper()
	store = harness.MinIOBackend(t).Open(t)
	held = newHeldPuts(store)
	relay = meta.NewLocalRelay(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a = startFleetLog(t, held, "A", relay)
	for range 2 { // announce, raise: A alone, so A is the only candidate
		if err := a.StepFormat(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	harness.Eventually(t, time.Minute, func() bool { return sequencerOf(a.Log) == "A" }, "A never took the sequencer lease")
	b = startFleetLog(t, store, "B", relay)
	c = startFleetLog(t, store, "C", relay)
	for _, l := range []*fleetLog{b, c} {
		if err := l.StepFormat(ctx, time.Now()); err != nil { // announce
			t.Fatal(err)
		}
		harness.Eventually(t, time.Minute, func() bool { return sequencerOf(l.Log) == "A" }, "%s never saw A sequence", l.WriterID())
	}
	return store, held, relay, a, b, c
}

// reservedOnce fails the test unless the log applied exactly one
// ReserveProducers of count n (each test reserves counts of its own).
func reservedOnce(t *testing.T, store objstore.Store, n int32) {
	t.Helper()
	st := meta.NewState()
	applied, stored := 0, 0
	for i, en := range harness.LogEntries(t, store) {
		res := st.Apply(uint64(i+1), en)
		for _, ap := range meta.Appends(en, res) {
			for j, op := range ap.Ops {
				if r, ok := op.(meta.ReserveProducers); ok && r.Count == n {
					stored++
					if !errors.Is(ap.Results[j].Err, meta.ErrDuplicate) {
						applied++
					}
				}
			}
		}
	}
	if applied != 1 {
		t.Fatalf("ReserveProducers{%d} applied %d times (stored %d times)", n, applied, stored)
	}
}

// sameState fails the test unless the logs have applied the same slots to
// the same state.
func sameState(t *testing.T, logs ...*fleetLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var want []byte
	for _, l := range logs {
		if err := l.SyncTail(ctx); err != nil {
			t.Fatal(err)
		}
	}
	harness.Eventually(t, time.Minute, func() bool {
		seq := logs[0].Seq()
		for _, l := range logs {
			if l.SyncTail(ctx) != nil || l.Seq() != seq {
				return false
			}
		}
		return true
	}, "the logs never reached one slot")
	for i, l := range logs {
		var got []byte
		l.View(func(st *meta.State) { got = st.EncodeSnapshot() })
		if i == 0 {
			want = got
		} else if string(got) != string(want) {
			t.Fatalf("%s's state differs from %s's at slot %d", l.WriterID(), logs[0].WriterID(), l.Seq())
		}
	}
}

// TestSequencerKilledMidAppend: the sequencer dies with its conditional
// write in flight, holding another agent's entry. Whether the write never
// reaches the bucket or lands with nobody left to answer, the agent that
// sent the entry has it applied once: it appends it itself, or finds it
// where the dead sequencer put it.
func TestSequencerKilledMidAppend(t *testing.T) {
	for _, tc := range []struct {
		name string
		how  releaseHow
		n    int32
	}{{"never lands", drop, 17}, {"lands unanswered", performLost, 19}} {
		t.Run(tc.name, func(t *testing.T) {
			store, held, relay, a, b, c := sequencedOnMinIO(t)
			held.hold()
			errc := make(chan error, 1)
			go func() {
				_, err := b.Append(context.Background(), meta.ReserveProducers{Count: tc.n})
				errc <- err
			}()
			key := <-held.waiting // the sequencer's write with B's entry, in flight
			a.stop()              // the sequencer dies; its write resolves, then its connections break
			held.release <- tc.how
			<-a.done
			relay.Remove("A:9092")
			if err := <-errc; err != nil {
				t.Fatalf("B's append after the sequencer died: %v", err)
			}
			_, landed := held.landed[key]
			t.Logf("the dead sequencer's write of %s: landed %v", key, landed)
			if landed != (tc.how == performLost) {
				t.Fatalf("the held write landed: %v", landed)
			}
			reservedOnce(t, store, tc.n)
			sameState(t, b, c)
		})
	}
}

// TestSequencerStaleHolderLoses: the sequencer's write is delayed in the
// network past its lease; meanwhile its entry's sender appends directly,
// another agent takes the lease and sequences. Both believed they held the
// lease, and both wrote, but only one entry took the slot: the late write
// is refused (412), the old sequencer learns of the new one, and every
// entry is applied once.
func TestSequencerStaleHolderLoses(t *testing.T) {
	store, held, _, a, b, c := sequencedOnMinIO(t)
	ctx := context.Background()
	held.hold()
	done := make(chan error, 1)
	go func() { _, err := c.Append(ctx, meta.ReserveProducers{Count: 23}); done <- err }()
	key := <-held.waiting
	if err := <-done; err != nil { // after the relay budget, directly
		t.Fatalf("C's append with the sequencer stuck: %v", err)
	}
	// A cannot renew while its write hangs: its lease lapses, and another
	// takes it.
	var next string
	harness.Eventually(t, time.Minute, func() bool {
		next = sequencerOf(b.Log)
		return next != "" && next != "A"
	}, "nobody took over from the stuck sequencer")
	var stale meta.Lease
	a.View(func(st *meta.State) { stale, _ = st.Lease(meta.SequencerJob) })
	if stale.Holder != "A" {
		t.Fatalf("A's view holds lease %+v: it should not have moved on", stale)
	}
	if _, err := b.Append(ctx, meta.ReserveProducers{Count: 29}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s sequences; A still sees its own lease (until %d) with its write of %s in flight",
		next, stale.UntilMs, key)
	held.release <- perform
	harness.Eventually(t, time.Minute, func() bool { return sequencerOf(a.Log) == next }, "A never learnt of %s", next)
	held.mu.Lock()
	err := held.results[key]
	held.mu.Unlock()
	if !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("A's late write of %s: %v, want the slot taken (412)", key, err)
	}
	reservedOnce(t, store, 23)
	reservedOnce(t, store, 29)
	h := harness.ReadLeaseHistory(t, store)
	if h.Grants[meta.SequencerJob]["A"] != 1 || h.Grants[meta.SequencerJob][next] != 1 {
		t.Fatalf("sequencer lease grants %v", h.Grants[meta.SequencerJob])
	}
	sameState(t, a, b, c)
}
