package jobs

import (
	"context"
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
	if n, _ := r.Retention(ctx, now); n != 0 {
		t.Fatalf("second pass moved %d partitions", n)
	}
	if n, _ := r.Collect(ctx, now.Add(time.Hour)); n != 0 {
		t.Fatal("collected without owning collection")
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

// Objects named more than the grace period ago that no chunk refers to and
// that are not released are orphans and go; committed, released and young
// objects stay (the released one goes by the released list's own clock).
func TestOrphanSweep(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	l := openLog(t, store)
	now := time.Now()
	old, young := now.Add(-time.Hour).UnixMilli(), now.UnixMilli()
	name := func(prefix string, ms int64, n int) string { return fmt.Sprintf("%s%013d-w-%06d", prefix, ms, n) }
	committed, released := name("seg/", old, 1), name("seg/", old, 2)
	orphanSeg, orphanCmp := name("seg/", old, 3), name("cmp/", old, 4)
	youngSeg := name("seg/", young, 5)
	for _, k := range []string{committed, released, orphanSeg, orphanCmp, youngSeg} {
		if err := store.Put(ctx, k, make([]byte, 20)); err != nil {
			t.Fatal(err)
		}
	}
	id := meta.TopicID{1}
	b := []meta.CommitBatch{{Pos: 0, Len: 10, Records: 2, MaxTimestamp: young, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}}
	if _, err := l.Append(ctx,
		meta.CreateTopic{Name: "t", ID: id, Partitions: 1},
		meta.CreateTopic{Name: "gone", ID: meta.TopicID{2}, Partitions: 1},
		meta.Commit{Object: committed, Size: 20, Parts: []meta.CommitPart{{Topic: id, Partition: 0, Batches: b}}},
		meta.Commit{Object: released, Size: 20, Parts: []meta.CommitPart{{Topic: meta.TopicID{2}, Partition: 0, Batches: b}}},
		meta.DeleteTopic{ID: meta.TopicID{2}},
	); err != nil {
		t.Fatal(err)
	}
	r := New(Config{Grace: time.Minute, OrphanGrace: time.Minute}, l, store, nil)
	if n, err := r.Collect(ctx, now); err != nil || n != 2 {
		t.Fatalf("collected %d (%v), want the 2 orphans", n, err)
	}
	all := keys(t, store)
	infos, _ := store.List(ctx, "cmp/", "", 0)
	if !slices.Equal(all, []string{committed, released, youngSeg}) || len(infos) != 0 {
		t.Fatalf("bucket seg/ %v cmp/ %v", all, infos)
	}
}
