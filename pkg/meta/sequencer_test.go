package meta

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bargehq/barge/pkg/objstore"
)

// memRelay is LocalRelay that can make an agent unreachable (calls to it
// wait for their context) or lose its answers (the append lands; the
// sender hears an error).
type memRelay struct {
	*LocalRelay
	mu       sync.Mutex
	down     map[string]bool
	loseNext map[string]int
	calls    atomic.Int64
}

func newMemRelay() *memRelay {
	return &memRelay{LocalRelay: NewLocalRelay(0), down: map[string]bool{}, loseNext: map[string]int{}}
}

var errAnswerLost = errors.New("answer lost")

func (r *memRelay) faults(addr string) (down, lose bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lose = r.loseNext[addr] > 0; lose {
		r.loseNext[addr]--
	}
	return r.down[addr], lose
}

func (r *memRelay) Contribute(ctx context.Context, addr string, entry []byte, budget time.Duration) (uint64, []byte, error) {
	r.calls.Add(1)
	down, lose := r.faults(addr)
	if down {
		<-ctx.Done()
		return 0, nil, ctx.Err()
	}
	seq, data, err := r.LocalRelay.Contribute(ctx, addr, entry, budget)
	if lose && err == nil {
		return 0, nil, errAnswerLost
	}
	return seq, data, err
}

func (r *memRelay) Slots(ctx context.Context, addr string, after uint64, wait time.Duration) ([]Slot, error) {
	if down, _ := r.faults(addr); down {
		return nil, fmt.Errorf("no agent at %s", addr)
	}
	return r.LocalRelay.Slots(ctx, addr, after, wait)
}

func (r *memRelay) set(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// sequencedFleet starts n logs over store that register, raise the
// cluster to Format5 and agree on a sequencer, which it returns first.
func sequencedFleet(t *testing.T, store objstore.Store, relay *memRelay, n int) []*Log {
	t.Helper()
	var logs []*Log
	for i := range n {
		addr := fmt.Sprintf("agent%d:9092", i)
		l, _ := startLog(t, store, Options{WriterID: fmt.Sprintf("w%d", i), PollInterval: 10 * time.Millisecond, Relay: relay, Sequence: true})
		relay.Add(addr, l)
		register(t, l, addr)
		logs = append(logs, l)
	}
	for range 2 { // announce, then raise
		for _, l := range logs {
			if err := l.SyncTail(context.Background()); err != nil {
				t.Fatal(err)
			}
			stepFormat(t, l, time.Now())
		}
	}
	var seqID string
	eventually(t, "every log to see one sequencer", func() bool {
		ids := map[string]bool{}
		for _, l := range logs {
			l.View(func(st *State) {
				a, ok := st.Sequencer(time.Now().UnixMilli())
				ids[a.ID+fmt.Sprint(ok)] = true
				seqID = a.ID
			})
		}
		return len(ids) == 1 && seqID != ""
	})
	for i, l := range logs {
		if l.WriterID() == seqID {
			logs[0], logs[i] = logs[i], logs[0]
		}
	}
	return logs
}

// putCounter counts conditional writes by writer id prefix of the data.
type putCounter struct {
	objstore.Store
	puts atomic.Int64
}

func (s *putCounter) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	s.puts.Add(1)
	return s.Store.PutIfAbsent(ctx, key, data)
}

// The sequencer appends the others' entries in its own, and every agent's
// ops are applied once, in one order that every agent shares.
func TestSequencerAppendsForAll(t *testing.T) {
	store := &putCounter{Store: objstore.NewMemory()}
	relay := newMemRelay()
	logs := sequencedFleet(t, store, relay, 3)
	ctx := context.Background()
	before := len(logEntries(t, store))
	var wg sync.WaitGroup
	ids := make(chan int64, 200)
	for _, l := range logs {
		for range 8 {
			wg.Go(func() {
				for range 5 {
					res, err := l.Append(ctx, ReserveProducers{Count: 1})
					if err != nil {
						t.Errorf("append by %s: %v", l.WriterID(), err)
						return
					}
					ids <- res[0].FirstProducerID
				}
			})
		}
	}
	wg.Wait()
	close(ids)
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("producer id %d given twice", id)
		}
		seen[id] = true
	}
	if len(seen) != 120 {
		t.Fatalf("%d producer ids, want 120", len(seen))
	}
	entries := logEntries(t, store)[before:]
	var contributed, reserved int
	for _, en := range entries {
		for _, op := range en.Ops {
			switch op := op.(type) {
			case Contribute:
				contributed++
				reserved += len(op.Ops)
			case ReserveProducers:
				reserved++
			}
		}
	}
	if reserved != 120 {
		t.Fatalf("%d ReserveProducers stored, want 120", reserved)
	}
	if contributed == 0 {
		t.Fatal("no entry was sequenced")
	}
	for _, l := range logs[1:] {
		if err := l.SyncTail(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := logs[0].SyncTail(ctx); err != nil {
		t.Fatal(err)
	}
	want := snapOf(logs[0])
	for _, l := range logs[1:] {
		if got := snapOf(l); string(got) != string(want) {
			t.Fatalf("%s's state differs from the sequencer's", l.WriterID())
		}
	}
	t.Logf("120 appends in %d entries, %d of them contributions", len(entries), contributed)
}

// A sequencer that does not answer costs one relay budget; the agent then
// appends directly, and its entry lands once although the sequencer may
// have written it too.
func TestSequencerUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := objstore.NewMemory()
		relay := newMemRelay()
		logs := sequencedFleet(t, store, relay, 2)
		seqAddr := "agent0:9092"
		if logs[0].WriterID() != "w0" {
			seqAddr = "agent1:9092"
		}
		relay.set(func() { relay.down[seqAddr] = true })
		began := time.Now()
		res, err := logs[1].Append(context.Background(), ReserveProducers{Count: 5})
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(began); took < relayBudget || took > relayBudget+time.Second {
			t.Fatalf("append took %v, want the relay budget (%v) and a direct write", took, relayBudget)
		}
		calls := relay.calls.Load()
		if _, err := logs[1].Append(context.Background(), ReserveProducers{Count: 1}); err != nil {
			t.Fatal(err)
		}
		if relay.calls.Load() != calls {
			t.Fatal("the next append went to the unreachable sequencer again within the pause")
		}
		var next int64
		logs[1].View(func(st *State) { next = st.nextProducerID })
		if next != res[0].FirstProducerID+6 {
			t.Fatalf("next producer id %d after reserving 5 at %d and 1: applied more than once?", next, res[0].FirstProducerID)
		}
	})
}

// An entry whose sequenced answer is lost is found where it landed; the
// direct append that follows writes nothing more.
func TestSequencedAnswerLost(t *testing.T) {
	store := objstore.NewMemory()
	relay := newMemRelay()
	logs := sequencedFleet(t, store, relay, 2)
	seqAddr := "agent0:9092"
	if logs[0].WriterID() != "w0" {
		seqAddr = "agent1:9092"
	}
	relay.set(func() { relay.loseNext[seqAddr] = 1 })
	before := len(logEntries(t, store))
	res, err := logs[1].Append(context.Background(), ReserveProducers{Count: 7})
	if err != nil {
		t.Fatal(err)
	}
	if err := logs[0].SyncTail(context.Background()); err != nil {
		t.Fatal(err)
	}
	var next int64
	logs[0].View(func(st *State) { next = st.nextProducerID })
	if next != res[0].FirstProducerID+7 {
		t.Fatalf("next producer id %d after reserving 7 at %d", next, res[0].FirstProducerID)
	}
	n := 0
	for _, en := range logEntries(t, store)[before:] {
		for _, op := range en.Ops {
			if c, ok := op.(Contribute); ok && c.Writer == logs[1].WriterID() {
				n++
			}
			if _, ok := op.(ReserveProducers); ok && en.Writer == logs[1].WriterID() {
				n++
			}
		}
	}
	if n != 1 {
		t.Fatalf("the entry is stored %d times", n)
	}
}

// A sequencer that receives an entry after its writer appended it itself
// refuses it, and the state would apply it as nothing anyway.
func TestSequencedLateCopy(t *testing.T) {
	store := objstore.NewMemory()
	relay := newMemRelay()
	logs := sequencedFleet(t, store, relay, 2)
	w := logs[1]
	en := &Entry{Writer: w.WriterID(), Tag: 42, TimeMs: time.Now().UnixMilli(), Num: w.state.LastNum(w.WriterID()) + 1000,
		Ops: []Op{ReserveProducers{Count: 3}}}
	data := en.EncodeAt(Format5)
	if _, _, err := logs[0].Sequence(context.Background(), data, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := logs[0].Sequence(context.Background(), data, time.Second); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("the same entry sequenced again: %v, want ErrDuplicate", err)
	}
	// And applied in a slot anyway (a sequencer with a stale view).
	st := NewState()
	logs[0].View(func(s *State) { st = s.Clone() })
	next := st.nextProducerID
	res := st.Apply(st.Seq+1, &Entry{Writer: "other", Num: 1, Ops: []Op{contribution(en)}})
	if !errors.Is(res[0].Contributed[0].Err, ErrDuplicate) || st.nextProducerID != next {
		t.Fatalf("a late copy applied: %+v, next id %d → %d", res[0].Contributed, next, st.nextProducerID)
	}
	// The numbers survive a snapshot.
	back, err := DecodeSnapshot(st.EncodeSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	if back.LastNum(w.WriterID()) != en.Num {
		t.Fatalf("append number after a snapshot: %d, want %d", back.LastNum(w.WriterID()), en.Num)
	}
}

// Sequence refuses what it must not append for another agent.
func TestSequenceRefuses(t *testing.T) {
	store := objstore.NewMemory()
	relay := newMemRelay()
	logs := sequencedFleet(t, store, relay, 2)
	enc := func(en *Entry) []byte { return en.EncodeAt(Format5) }
	for name, data := range map[string][]byte{
		"no number":    enc(&Entry{Writer: "x", Tag: 1, Ops: []Op{ReserveProducers{Count: 1}}}),
		"its own":      enc(&Entry{Writer: logs[0].WriterID(), Tag: 1, Num: 1, Ops: []Op{ReserveProducers{Count: 1}}}),
		"a format op":  enc(&Entry{Writer: "x", Tag: 1, Num: 1, Ops: []Op{LeaveCluster{}}}),
		"nested":       enc(&Entry{Writer: "x", Tag: 1, Num: 1, Ops: []Op{Contribute{Writer: "y", Num: 1}}}),
		"not an entry": []byte("garbage"),
	} {
		if _, _, err := logs[0].Sequence(context.Background(), data, time.Second); err == nil {
			t.Errorf("%s: sequenced", name)
		}
	}
	if _, _, err := logs[1].Sequence(context.Background(), enc(&Entry{Writer: "x", Tag: 1, Num: 1, Ops: []Op{ReserveProducers{Count: 1}}}), time.Second); !errors.Is(err, ErrNotSequencer) {
		t.Errorf("a non-sequencer sequenced: %v", err)
	}
}

// A sequencer whose write landed but whose answer was lost finds its entry
// on the retry, and hands the senders the slot's bytes, which they apply:
// they neither stall on an empty slot nor append again.
func TestSequencerLostAnswerHandsOverSlot(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFaulty(mem)
	relay := newMemRelay()
	// w0 (on f) alone first, so that it is the sequencer.
	seq, _ := startLog(t, f, Options{WriterID: "w0", PollInterval: 10 * time.Millisecond, Relay: relay, Sequence: true})
	relay.Add("agent0:9092", seq)
	register(t, seq, "agent0:9092")
	for range 2 {
		stepFormat(t, seq, time.Now())
	}
	eventually(t, "w0 to sequence", func() bool {
		var id string
		seq.View(func(st *State) { a, _ := st.Sequencer(time.Now().UnixMilli()); id = a.ID })
		return id == "w0"
	})
	w, _ := startLog(t, mem, Options{WriterID: "w1", PollInterval: time.Hour, Relay: relay, Sequence: true})
	relay.Add("agent1:9092", w)
	register(t, w, "agent1:9092")
	eventually(t, "w1 to see w0 sequence", func() bool {
		var id string
		w.View(func(st *State) { a, _ := st.Sequencer(time.Now().UnixMilli()); id = a.ID })
		return id == "w0"
	})
	calls := relay.calls.Load()
	f.LoseNth(objstore.OpPutIfAbsent, 1)
	res, err := w.Append(context.Background(), ReserveProducers{Count: 9})
	if err != nil {
		t.Fatal(err)
	}
	if relay.calls.Load() == calls {
		t.Fatal("w1 did not go through the sequencer")
	}
	if st := w.Stalled(); st != nil {
		t.Fatalf("w1 stalled at slot %d: %v", st.Seq, st.Err)
	}
	var next int64
	w.View(func(st *State) { next = st.nextProducerID })
	if next != res[0].FirstProducerID+9 {
		t.Fatalf("next producer id %d after reserving 9 at %d", next, res[0].FirstProducerID)
	}
	n := 0
	for _, en := range logEntries(t, mem) {
		for _, ap := range Appends(en, nil) {
			for _, op := range ap.Ops {
				if r, ok := op.(ReserveProducers); ok && r.Count == 9 {
					n++
				}
			}
		}
	}
	if n != 1 {
		t.Fatalf("the entry is stored %d times", n)
	}
}

// An append number outlives its writer's LeaveCluster: a copy of its last
// entry that a sequencer writes after the writer left is still applied as
// nothing.
func TestAppendNumberOutlivesLeave(t *testing.T) {
	st := NewState()
	st.Apply(1, &Entry{Writer: "x", Ops: []Op{SetFormat{Version: Format5}}})
	en := &Entry{Writer: "w", Tag: 1, TimeMs: 1000, Num: 7, Ops: []Op{ReserveProducers{Count: 2}}}
	st.Apply(2, en)
	st.Apply(3, &Entry{Writer: "w", TimeMs: 1001, Num: 8, Ops: []Op{LeaveCluster{}}})
	next := st.nextProducerID
	res := st.Apply(4, &Entry{Writer: "s", TimeMs: 1002, Num: 1, Ops: []Op{contribution(en)}})
	if !errors.Is(res[0].Contributed[0].Err, ErrDuplicate) || st.nextProducerID != next {
		t.Fatalf("a copy applied after its writer left: %+v", res[0].Contributed)
	}
	back, err := DecodeSnapshot(st.EncodeSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	if back.LastNum("w") != 8 {
		t.Fatalf("w's append number after a snapshot: %d", back.LastNum("w"))
	}
}

// A sequencer that resigns (a draining agent) leaves its lease lapsed, not
// gone, so that the next candidate is another agent, not itself again.
func TestResignedSequencerNotPickedAgain(t *testing.T) {
	store := objstore.NewMemory()
	relay := newMemRelay()
	logs := sequencedFleet(t, store, relay, 3)
	old := logs[0].WriterID()
	if err := logs[0].Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	var next string
	eventually(t, "another agent to take over", func() bool {
		logs[1].View(func(st *State) {
			a, ok := st.Sequencer(time.Now().UnixMilli())
			next = ""
			if ok {
				next = a.ID
			}
		})
		return next != "" && next != old
	})
	// The resigned agent still writes, as one of the others.
	if _, err := logs[0].Append(context.Background(), ReserveProducers{Count: 1}); err != nil {
		t.Fatal(err)
	}
	var holder string
	logs[0].View(func(st *State) { l, _ := st.Lease(SequencerJob); holder = l.Holder })
	if holder == old {
		t.Fatalf("%s took the lease back after resigning", old)
	}
}

// The ring of recent slots keeps the newest recentSlots contiguous slots,
// answers from any of them on, says ErrBehind for older ones, and starts
// again after a jump (a reload from a snapshot).
func TestRecentSlots(t *testing.T) {
	var r recent
	for seq := uint64(1); seq <= recentSlots+44; seq++ {
		r.add(seq, []byte{byte(seq)})
	}
	if _, err := r.after(43, 1<<20); !errors.Is(err, ErrBehind) {
		t.Fatalf("after slot 43 with slots 45.. kept: %v, want ErrBehind", err)
	}
	got, err := r.after(44, 1<<20)
	if err != nil || len(got) != recentSlots || got[0].Seq != 45 || got[len(got)-1].Seq != recentSlots+44 {
		t.Fatalf("after slot 44: %d slots, %v", len(got), err)
	}
	if got, _ := r.after(45, 3); len(got) != 3 {
		t.Fatalf("3 bytes' worth of 1-byte slots: %d", len(got))
	}
	if got, err := r.after(recentSlots+44, 1<<20); got != nil || err != nil {
		t.Fatalf("after the newest slot: %v, %v", got, err)
	}
	r.add(1000, []byte("x"))
	if got, _ := r.after(999, 1<<20); len(got) != 1 || got[0].Seq != 1000 {
		t.Fatalf("after a jump: %v", got)
	}
	if r.bytes != 1 {
		t.Fatalf("bytes held after a jump: %d", r.bytes)
	}
}
