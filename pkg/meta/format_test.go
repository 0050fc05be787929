package meta

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/objstore"
)

func register(t *testing.T, l *Log, addr string) {
	t.Helper()
	if _, err := l.Append(context.Background(), AgentHeartbeat{Addr: addr}); err != nil {
		t.Fatalf("register %s: %v", addr, err)
	}
}

func stepFormat(t *testing.T, l *Log, now time.Time) {
	t.Helper()
	if err := l.StepFormat(context.Background(), now); err != nil {
		t.Fatalf("StepFormat: %v", err)
	}
}

func formatOf(l *Log) (f Format) {
	l.View(func(s *State) { f = s.Format() })
	return f
}

// A rolling upgrade: while an agent of the old build is a member the
// cluster stays at the old format, and the old agent reads everything;
// once it leaves the new agents raise the format; an old build that comes
// back stops at the first entry it cannot read, says what it needs, and an
// upgraded build goes on from there with the same state as the others.
func TestFormatRatchet(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	newer, _ := startLog(t, store, Options{WriterID: "new", PollInterval: 5 * time.Millisecond})
	old, stopOld := startLog(t, store, Options{WriterID: "old", PollInterval: 5 * time.Millisecond, MaxFormat: Format1})
	register(t, newer, "new:9092")
	register(t, old, "old:9092")

	now := time.Now()
	for range 3 {
		stepFormat(t, newer, now)
		stepFormat(t, old, now)
	}
	if f := formatOf(newer); f != Format1 {
		t.Fatalf("cluster at format %d with an agent of format 1 a member", f)
	}
	if _, err := newer.Append(ctx, CreateTopic{Name: "t", ID: testID(1), Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := newer.Append(ctx, CondemnObjects{Keys: []string{"seg/x"}}); !errors.Is(err, ErrFormat) {
		t.Fatalf("a Format2 op in a Format1 cluster: %v, want ErrFormat", err)
	}
	// Silent, but not for the grace: it might be paused, and must not
	// wake to a format it cannot read.
	stepFormat(t, newer, now.Add(30*time.Minute))
	if f := formatOf(newer); f != Format1 {
		t.Fatalf("cluster at format %d with an old agent silent for half an hour", f)
	}
	eventually(t, "the old agent to read the new one's entries", func() bool { return seqOf(old) == seqOf(newer) })
	if old.Stalled() != nil {
		t.Fatalf("the old agent stalled in a Format1 cluster: %v", old.Stalled().Err)
	}
	if err := old.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	stopOld()

	// The old agent left: the format moves on.
	if err := newer.SyncTail(ctx); err != nil {
		t.Fatal(err)
	}
	stepFormat(t, newer, now)
	if f := formatOf(newer); f != MaxFormat {
		t.Fatalf("format %d after the old agent left, want %d", f, MaxFormat)
	}
	if r, err := newer.Append(ctx, CondemnObjects{Keys: []string{"seg/x"}}); err != nil || len(r[0].Keys) != 1 {
		t.Fatalf("a Format2 op once the cluster is at Format2: %v %v", r, err)
	}

	// The old build comes back: it stops where the format moved.
	back := openLog(t, store, Options{WriterID: "old-again", MaxFormat: Format1})
	defer runLog(t, back)()
	st := back.Stalled()
	var fe *FormatError
	if st == nil || !errors.As(st.Err, &fe) || fe.Need != MaxFormat {
		t.Fatalf("an old build reading a newer log: stall %+v, want a FormatError needing %d", st, MaxFormat)
	}
	if seqOf(back) != st.Seq-1 {
		t.Fatalf("the old build applied up to %d, stalled at %d: it must stop before the entry", seqOf(back), st.Seq)
	}
	if _, err := back.Append(ctx, AgentHeartbeat{Addr: "old:9092"}); !errors.Is(err, ErrStalled) {
		t.Fatalf("append on a stalled log: %v, want ErrStalled", err)
	}

	// Upgraded, it resumes from the same bucket with nothing to repair.
	upgraded, _ := startLog(t, store, Options{WriterID: "old-upgraded"})
	if upgraded.Stalled() != nil {
		t.Fatalf("the upgraded build stalled: %v", upgraded.Stalled().Err)
	}
	if !bytes.Equal(snapOf(upgraded), snapOf(newer)) {
		t.Fatal("the upgraded agent's state differs from the others'")
	}
}

// A member silent for longer than the grace no longer holds the format
// back: an old agent paused that long stalls when it resumes, while still
// running, and a newer build on the same bucket resumes.
func TestOldAgentStallsWhileRunning(t *testing.T) {
	store := objstore.NewMemory()
	newer, _ := startLog(t, store, Options{WriterID: "new", PollInterval: 5 * time.Millisecond})
	old, _ := startLog(t, store, Options{WriterID: "old", PollInterval: 5 * time.Millisecond, MaxFormat: Format1})
	register(t, newer, "new:9092")
	register(t, old, "old:9092")
	later := time.Now().Add(2 * time.Hour) // the old agent's last entry is two hours old by then
	stepFormat(t, newer, later)
	stepFormat(t, newer, later)
	if formatOf(newer) != MaxFormat {
		t.Fatal("setup: format did not move")
	}
	eventually(t, "the old agent to stall", func() bool { return old.Stalled() != nil })
	if err := old.SyncTail(context.Background()); err == nil {
		t.Fatal("SyncTail on a stalled log reported success")
	}
}

// Who wrote before a Format1 snapshot is not in it, so a state loaded from
// one raises the format only after watching the log for the grace: an old
// agent that wrote just before the snapshot might still be running.
func TestFormatWaitsAfterAFormat1Snapshot(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	old, stopOld := startLog(t, store, Options{WriterID: "old", MaxFormat: Format1})
	register(t, old, "old:9092")
	var snap []byte
	old.View(func(st *State) { snap = st.EncodeSnapshot() })
	if snap[4] != 6 {
		t.Fatalf("setup: a Format1 snapshot of version %d", snap[4])
	}
	if err := store.Put(ctx, SnapshotKey(seqOf(old)), snap); err != nil {
		t.Fatal(err)
	}
	stopOld()
	newer, _ := startLog(t, store, Options{WriterID: "new"})
	register(t, newer, "new:9092")
	now := time.Now()
	for range 2 {
		stepFormat(t, newer, now.Add(time.Minute))
	}
	if f := formatOf(newer); f != Format1 {
		t.Fatalf("format %d a minute after loading a snapshot without membership", f)
	}
	stepFormat(t, newer, now.Add(2*time.Hour))
	if f := formatOf(newer); f != MaxFormat {
		t.Fatalf("format %d after watching the log for the grace", f)
	}
}

// A retried append whose first attempt landed although its answer was
// lost must not be written twice, even when the retry first catches up
// with the log (a stale view, the Delta Lake rule) and so reads its own
// entry there rather than in a 412.
func TestRetryDuringStaleCatchUpCommitsOnce(t *testing.T) {
	mem := objstore.NewMemory()
	f := objstore.NewFaulty(mem)
	// A tiny retention makes every attempt's view stale.
	l := openLog(t, f, Options{WriterID: "w", Retention: time.Nanosecond, PollInterval: time.Hour})
	defer runLog(t, l)()
	f.LoseNth(objstore.OpPutIfAbsent, 1)
	r, err := l.Append(context.Background(), ReserveProducers{Count: 7})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, en := range logEntries(t, mem) {
		for _, op := range en.Ops {
			if _, ok := op.(ReserveProducers); ok {
				n++
			}
		}
	}
	if n != 1 {
		t.Fatalf("the op is in the log %d times, want once", n)
	}
	var next int64
	l.View(func(s *State) { next = s.nextProducerID })
	if next != r[0].FirstProducerID+7 {
		t.Fatalf("ids reserved up to %d, the op's range ends at %d", next, r[0].FirstProducerID+7)
	}
}

// Agents of one build started together (an autoscaling group's first
// launch) each register before the others have announced their format:
// the first to step sees the others as of Format1. AwaitFormat waits for
// them to announce, so no agent of the fleet gives up on a format the
// fleet is about to reach; with a member of an older build it gives up
// once its wait is over, at the format the cluster is at.
func TestAwaitFormatWhileOthersAnnounce(t *testing.T) {
	store := objstore.NewMemory()
	ctx := context.Background()
	a, _ := startLog(t, store, Options{WriterID: "a", PollInterval: 5 * time.Millisecond})
	b, _ := startLog(t, store, Options{WriterID: "b", PollInterval: 5 * time.Millisecond})
	register(t, a, "a:9092")
	register(t, b, "b:9092")
	if err := a.SyncTail(ctx); err != nil {
		t.Fatal(err)
	}
	stepFormat(t, a, time.Now())
	stepFormat(t, a, time.Now())
	if f := formatOf(a); f != Format1 {
		t.Fatalf("setup: format %d before b announced, want 1", f)
	}
	got := make(chan Format, 1)
	errc := make(chan error, 1)
	go func() {
		f, err := a.AwaitFormat(ctx, MaxFormat, time.Minute)
		got <- f
		errc <- err
	}()
	stepFormat(t, b, time.Now()) // b announces; a raises the format
	if f := <-got; f != MaxFormat {
		t.Fatalf("AwaitFormat: format %d, want %d", f, MaxFormat)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	old := objstore.NewMemory()
	c, _ := startLog(t, old, Options{WriterID: "c", PollInterval: 5 * time.Millisecond})
	o, _ := startLog(t, old, Options{WriterID: "old", PollInterval: 5 * time.Millisecond, MaxFormat: Format1})
	register(t, c, "c:9092")
	register(t, o, "old:9092")
	if err := c.SyncTail(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := c.AwaitFormat(ctx, Format3, 50*time.Millisecond)
	if err != nil || f != Format1 {
		t.Fatalf("AwaitFormat with an old member: %d %v, want 1 and no error", f, err)
	}
}
