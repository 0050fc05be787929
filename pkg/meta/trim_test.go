package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bargehq/barge/pkg/objstore"
)

func snapBytes(l *Log) (b []byte) {
	l.View(func(st *State) { b = st.EncodeSnapshot() })
	return b
}

func countKeys(t *testing.T, store objstore.Store, prefix string) int {
	t.Helper()
	infos, err := store.List(context.Background(), prefix, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(infos)
}

// Trimming deletes covered entries only once they are older than the
// retention window; a writer that has not looked at the log for longer
// than half the window reloads from the snapshot instead of re-creating a
// trimmed slot; and a fresh Open sees the same state.
func TestTrimAndStaleWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		store := objstore.NewMemory()
		opts := func(w string) Options {
			return Options{WriterID: w, PollInterval: time.Minute, Retention: time.Hour, Logger: quiet}
		}
		a, err := Open(ctx, store, opts("a"))
		if err != nil {
			t.Fatal(err)
		}
		go a.Run(ctx)
		n := 0
		appendN := func(l *Log, k int) {
			for range k {
				n++
				if _, err := l.Append(ctx, CreateTopic{Name: fmt.Sprint("t", n), ID: testID(byte(n)), Partitions: 1}); err != nil {
					t.Fatal(err)
				}
			}
		}
		appendN(a, 5)
		stale, err := Open(ctx, store, opts("stale")) // at seq 5, then silent
		if err != nil {
			t.Fatal(err)
		}
		appendN(a, 25)
		st, err := a.Trim(ctx, time.Now(), time.Hour, 10)
		if err != nil || st.Snapshot != 30 || st.Entries != 0 {
			t.Fatalf("first trim %+v %v", st, err)
		}
		appendN(a, 15)
		st, err = a.Trim(ctx, time.Now(), time.Hour, 10)
		if err != nil || st.Snapshot != 45 || st.Entries != 0 {
			t.Fatalf("young entries trimmed: %+v %v", st, err)
		}
		time.Sleep(2 * time.Hour)
		st, err = a.Trim(ctx, time.Now(), time.Hour, 10)
		if err != nil || st.Snapshot != 0 || st.Entries != 30 || st.Cover != 30 {
			t.Fatalf("trim after the window %+v %v", st, err)
		}
		if got := countKeys(t, store, logPrefix); got != 15 {
			t.Fatalf("%d entries left, want 15", got)
		}

		// The stale writer appends: it must not take slot 6.
		go stale.Run(ctx)
		appendN(stale, 1)
		if _, err := store.Get(ctx, EntryKey(6)); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("stale writer re-created slot 6: %v", err)
		}
		if seqOf(stale) != 46 {
			t.Fatalf("stale writer at %d, want 46", seqOf(stale))
		}
		time.Sleep(2 * time.Minute) // a polls
		if !bytes.Equal(snapBytes(a), snapBytes(stale)) {
			t.Fatal("states differ after the stale writer caught up")
		}
		fresh, err := Open(ctx, store, opts("fresh"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(snapBytes(a), snapBytes(fresh)) {
			t.Fatal("reopened state differs")
		}
		// An unreadable newest snapshot: Open falls back to the one
		// before, whose following entries the trim kept.
		good, err := store.Get(ctx, SnapshotKey(45))
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Put(ctx, SnapshotKey(45), []byte("garbage")); err != nil {
			t.Fatal(err)
		}
		fallback, err := Open(ctx, store, opts("fallback"))
		if err != nil || !bytes.Equal(snapBytes(a), snapBytes(fallback)) {
			t.Fatalf("open past an unreadable newest snapshot: %v", err)
		}
		if err := store.Put(ctx, SnapshotKey(45), good); err != nil {
			t.Fatal(err)
		}

		// More history: the oldest snapshot goes once it is old, two stay.
		appendN(a, 10)
		if st, err = a.Trim(ctx, time.Now(), time.Hour, 10); err != nil || st.Snapshot != 56 || st.Snapshots != 1 {
			t.Fatalf("third trim %+v %v", st, err)
		}
		if got := countKeys(t, store, snapPrefix); got != 2 {
			t.Fatalf("%d snapshots, want 2", got)
		}
		cancel()
	})
}

// BenchmarkOpenAfterTrim: a history of n entries whose state stays the
// same size (agents heartbeating), with a snapshot 10 entries before the
// end. Trimmed, start-up reads the snapshot and the short tail however
// long the history was; untrimmed, the bucket keeps every old entry and
// the listing passes them (S3 skips them server-side with StartAfter, the
// memory store here scans them, so the untrimmed rows overstate S3's cost;
// the trimmed rows' slight growth is Go's map keeping its buckets after
// the deletes).
func BenchmarkOpenAfterTrim(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		for _, trimmed := range []bool{false, true} {
			b.Run(fmt.Sprintf("history=%d/trimmed=%v", n, trimmed), func(b *testing.B) {
				ctx := context.Background()
				store := objstore.NewMemory()
				s := NewState()
				for seq := uint64(1); seq <= uint64(n); seq++ {
					w := fmt.Sprint("agent-", seq%3)
					en := &Entry{Writer: w, Tag: seq, TimeMs: int64(seq), Ops: []Op{AgentHeartbeat{Addr: w + ":9092"}}}
					if err := store.PutIfAbsent(ctx, EntryKey(seq), en.Encode()); err != nil {
						b.Fatal(err)
					}
					s.Apply(seq, en)
					if seq == uint64(n-10) {
						if err := store.Put(ctx, SnapshotKey(seq), s.EncodeSnapshot()); err != nil {
							b.Fatal(err)
						}
					}
				}
				if trimmed {
					for seq := uint64(1); seq <= uint64(n-10); seq++ {
						if err := store.Delete(ctx, EntryKey(seq)); err != nil {
							b.Fatal(err)
						}
					}
				}
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
