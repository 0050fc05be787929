package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// openLog opens store's metadata log as the only agent, writer "w".
func openLog(t *testing.T, store objstore.Store) *meta.Log { return openLogAs(t, store, "w") }

func keys(t *testing.T, store objstore.Store) []string {
	t.Helper()
	infos, err := store.List(context.Background(), "seg/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

// Old data (timestamp 1) in seg/a on two partitions, new data in seg/b:
// retention moves both log starts past seg/a, and collection deletes
// seg/a only after the grace period, then forgets it.
func TestRetentionThenCollection(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	l := openLog(t, store)
	id := meta.TopicID{1}
	now := time.Now()
	batch := func(ts int64) []meta.CommitBatch {
		return []meta.CommitBatch{{Pos: 0, Len: 10, Records: 2, MaxTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}}
	}
	for _, k := range []string{"seg/a", "seg/b"} {
		if err := store.Put(ctx, k, make([]byte, 20)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Append(ctx,
		meta.CreateTopic{Name: "t", ID: id, Partitions: 2, Configs: map[string]string{"retention.ms": "60000"}},
		meta.CreateTopic{Name: "other", ID: meta.TopicID{2}, Partitions: 1, Configs: map[string]string{"retention.ms": "1"}},
		meta.Commit{Object: "seg/a", Size: 20, Parts: []meta.CommitPart{{Topic: id, Partition: 0, Batches: batch(1)}, {Topic: id, Partition: 1, Batches: batch(1)}}},
		meta.Commit{Object: "seg/b", Size: 20, Parts: []meta.CommitPart{{Topic: id, Partition: 0, Batches: batch(now.UnixMilli())}, {Topic: meta.TopicID{2}, Partition: 0, Batches: batch(now.UnixMilli())}}},
	); err != nil {
		t.Fatal(err)
	}
	// This agent owns only topic t's retention, and no collection yet.
	r := New(Config{Grace: time.Minute, Owns: func(job string) bool { return job == "retention/t" }}, l, store, nil)
	if n, err := r.Retention(ctx, now); err != nil || n != 2 {
		t.Fatalf("retention moved %d partitions (%v), want 2", n, err)
	}
	l.View(func(st *meta.State) {
		tp := st.Topic("t")
		if tp.Partitions[0].LogStart != 2 || tp.Partitions[1].LogStart != 2 {
			t.Errorf("log starts %d %d, want 2 2", tp.Partitions[0].LogStart, tp.Partitions[1].LogStart)
		}
		if st.Topic("other").Partitions[0].LogStart != 0 {
			t.Error("retention ran for a topic this agent does not own")
		}
	})
	if n, err := r.Retention(ctx, now); err != nil || n != 0 {
		t.Fatalf("second pass moved %d partitions (%v)", n, err)
	}
	if n, err := r.Collect(ctx, now.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("collected %d (%v) without owning collection", n, err)
	}

	r.cfg.Owns = func(string) bool { return true }
	if n, err := r.Collect(ctx, now); err != nil || n != 0 {
		t.Fatalf("collected %d (%v) within the grace period", n, err)
	}
	if got := keys(t, store); !slices.Equal(got, []string{"seg/a", "seg/b"}) {
		t.Fatalf("bucket %v", got)
	}
	if n, err := r.Collect(ctx, time.Now().Add(time.Minute+time.Second)); err != nil || n != 1 {
		t.Fatalf("collected %d (%v), want 1", n, err)
	}
	if got := keys(t, store); !slices.Equal(got, []string{"seg/b"}) {
		t.Fatalf("bucket %v after collection", got)
	}
	l.View(func(st *meta.State) {
		if r := st.Released(1 << 62); len(r) != 0 {
			t.Errorf("released list %v after collection", r)
		}
	})
}

// openLog2 is openLog with the cluster at Format2, where the sweep runs.
func openLog2(t *testing.T, store objstore.Store) *meta.Log {
	t.Helper()
	l := openLog(t, store)
	if _, err := l.Append(context.Background(), meta.SetFormat{Version: meta.Format2}); err != nil {
		t.Fatal(err)
	}
	return l
}

// Objects older than the grace period that no chunk refers to and that
// are not released are orphans: the log condemns them, then they go, and a
// pass later they are forgotten. Committed, released and young objects
// stay (the released one goes by the released list's own clock).
func TestOrphanSweep(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	l := openLog2(t, store)
	now := time.Now()
	name := func(prefix string, ms int64, n int) string { return fmt.Sprintf("%s%013d-w-%06d", prefix, ms, n) }
	ms := now.UnixMilli()
	committed, released := name("seg/", ms, 1), name("seg/", ms, 2)
	orphanSeg, orphanCmp := name("seg/", ms, 3), name("cmp/", ms, 4)
	// Named by a writer whose clock is ahead: young by its name although
	// the bucket wrote it as long ago as the others.
	ahead := name("seg/", now.Add(2*time.Hour).UnixMilli(), 5)
	for _, k := range []string{committed, released, orphanSeg, orphanCmp, ahead} {
		if err := store.Put(ctx, k, make([]byte, 20)); err != nil {
			t.Fatal(err)
		}
	}
	id := meta.TopicID{1}
	b := []meta.CommitBatch{{Pos: 0, Len: 10, Records: 2, MaxTimestamp: ms, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}}
	if _, err := l.Append(ctx,
		meta.CreateTopic{Name: "t", ID: id, Partitions: 1},
		meta.CreateTopic{Name: "gone", ID: meta.TopicID{2}, Partitions: 1},
		meta.Commit{Object: committed, Size: 20, Parts: []meta.CommitPart{{Topic: id, Partition: 0, Batches: b}}},
		meta.Commit{Object: released, Size: 20, Parts: []meta.CommitPart{{Topic: meta.TopicID{2}, Partition: 0, Batches: b}}},
		meta.DeleteTopic{ID: meta.TopicID{2}},
	); err != nil {
		t.Fatal(err)
	}
	r := New(Config{Interval: time.Minute, Grace: time.Hour, OrphanGrace: time.Minute}, l, store, nil)
	if n, err := r.Collect(ctx, now); err != nil || n != 0 {
		t.Fatalf("collected %d (%v) within the grace", n, err)
	}
	at := now.Add(2 * time.Minute) // everything is past the grace by the bucket's clock
	if n, err := r.Collect(ctx, at); err != nil || n != 2 {
		t.Fatalf("collected %d (%v), want the 2 orphans", n, err)
	}
	all := keys(t, store)
	infos, err := store.List(ctx, "cmp/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all, []string{committed, released, ahead}) || len(infos) != 0 {
		t.Fatalf("bucket seg/ %v cmp/ %v", all, infos)
	}
	// Condemned, so their commits are refused if they ever land.
	late := meta.Commit{Object: orphanSeg, Size: 20, Parts: []meta.CommitPart{{Topic: id, Partition: 0, Batches: b}}}
	if res, err := l.Append(ctx, late); err != nil || !errors.Is(res[0].Parts[0][0].Err, meta.ErrCondemned) {
		t.Fatalf("the late commit of a deleted orphan: %v %v, want ErrCondemned", res, err)
	}
	// Not forgotten while a commit begun before the condemnation may still
	// be within its write timeout (2 minutes; the condemnation's time is
	// the entry's, the clock's now).
	if _, err := r.Collect(ctx, time.Now().Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	l.View(func(st *meta.State) {
		if len(st.Condemned()) != 2 {
			t.Errorf("condemned %v within the write timeout, want both kept", st.Condemned())
		}
	})
	// Later they are forgotten; a commit that began before their
	// condemnation is still refused, by the floor.
	if _, err := r.Collect(ctx, time.Now().Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	l.View(func(st *meta.State) {
		if len(st.Condemned()) != 0 || st.CommitFloor() == 0 {
			t.Errorf("condemned %v, floor %d after the next pass", st.Condemned(), st.CommitFloor())
		}
	})
	if res, err := l.Append(ctx, late); err != nil || !errors.Is(res[0].Parts[0][0].Err, meta.ErrCondemned) {
		t.Fatalf("the late commit after its object was forgotten: %v %v, want ErrCondemned", res, err)
	}
}

// The sweep races a commit that lands between its listing and its
// condemnation: the state sees the commit first and refuses to condemn,
// so the object stays and its records are readable.
func TestOrphanSweepLosesToCommit(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	l := openLog2(t, mem)
	now := time.Now()
	id := meta.TopicID{1}
	if _, err := l.Append(ctx, meta.CreateTopic{Name: "t", ID: id, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("seg/%013d-w-%06d", now.UnixMilli(), 1)
	if err := mem.Put(ctx, key, make([]byte, 20)); err != nil {
		t.Fatal(err)
	}
	commit := meta.Commit{Object: key, Size: 20, Parts: []meta.CommitPart{{Topic: id, Partition: 0,
		Batches: []meta.CommitBatch{{Pos: 0, Len: 10, Records: 2, ProducerID: -1}}}}}
	// The commit lands right after the sweep's listing.
	store := &afterList{Store: mem, hook: func() {
		if _, err := l.Append(ctx, commit); err != nil {
			t.Error(err)
		}
	}}
	r := New(Config{Interval: time.Minute, Grace: time.Hour, OrphanGrace: time.Minute}, lag(l), store, nil)
	if n, err := r.Collect(ctx, now.Add(2*time.Minute)); err != nil || n != 0 {
		t.Fatalf("deleted %d (%v): the sweep deleted an object whose commit landed", n, err)
	}
	if got := keys(t, mem); !slices.Equal(got, []string{key}) {
		t.Fatalf("bucket %v", got)
	}
}

// afterList calls hook once, after the first List of seg/.
type afterList struct {
	objstore.Store
	hook func()
	done bool
}

func (a *afterList) List(ctx context.Context, prefix, after string, limit int) ([]objstore.ObjectInfo, error) {
	out, err := a.Store.List(ctx, prefix, after, limit)
	if prefix == "seg/" && !a.done {
		a.done = true
		a.hook()
	}
	return out, err
}

// lagging is a log whose every View shows the state as it was when the
// lagging log was made, as a lagging agent's view would.
type lagging struct {
	*meta.Log
	st *meta.State
}

func lag(l *meta.Log) lagging {
	g := lagging{Log: l}
	l.View(func(st *meta.State) { g.st = st.Clone() })
	return g
}

func (g lagging) View(fn func(*meta.State)) { fn(g.st) }

// Producers silent for longer than producer.id.expiration.ms leave the
// state; active ones stay; a pass with none due writes nothing.
func TestExpireProducersJob(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	l := openLog2(t, store)
	id := meta.TopicID{1}
	if _, err := l.Append(ctx, meta.CreateTopic{Name: "t", ID: id, Partitions: 1},
		meta.Commit{Object: "seg/a", Size: 10, Parts: []meta.CommitPart{{Topic: id, Partition: 0,
			Batches: []meta.CommitBatch{{Pos: 0, Len: 10, Records: 1, ProducerID: 1000, BaseSequence: 0}}}}}); err != nil {
		t.Fatal(err)
	}
	r := New(Config{ProducerExpiry: time.Hour}, l, store, nil)
	before := l.Seq()
	if n, err := r.ExpireProducers(ctx, time.Now()); err != nil || n != 0 || l.Seq() != before {
		t.Fatalf("a pass with nothing due expired %d (%v) and wrote %d entries", n, err, l.Seq()-before)
	}
	if n, err := r.ExpireProducers(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("expired %d (%v), want the one silent producer", n, err)
	}
	l.View(func(st *meta.State) {
		if st.ProducerStates() != 0 {
			t.Errorf("%d producer states left", st.ProducerStates())
		}
	})
}
