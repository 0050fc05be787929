package meta

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Trimming the log. Entries accumulate forever unless deleted, and every
// List of meta/log/ (start-up) walks them all. A trim pass:
//
//  1. writes a snapshot of this agent's state if the newest snapshot is
//     SnapshotEvery or more entries behind it (or there is none);
//  2. deletes the entries at or below the second-newest snapshot whose
//     objects were written more than Retention ago. Not the newest: if it
//     cannot be read, Open falls back to the one before, and the entries
//     after that must still be there;
//  3. deletes the snapshots older than the two newest once they too are
//     older than Retention, so an agent that listed one just before can
//     still read it.
//
// Why a stale writer cannot re-create a trimmed slot: a slot s+1 that an
// agent found missing at time T was written after T, so it is not older
// than Retention, and not deleted, before T+Retention. An agent that has
// not found the tail (by a read or its own append) for Retention/2 reads
// forward before it appends (Log.write, the Delta Lake rule), and when the
// next slot is missing it checks for a snapshot ahead of its state: one
// exists whenever that slot was trimmed, since only covered entries are.
// The ages come from the bucket's LastModified, so agents' clocks do not
// matter beyond the skew between an agent and the bucket.

// TrimStats says what a trim pass did.
type TrimStats struct {
	Snapshot         uint64 // seq of the snapshot written, 0 if none
	Entries          int    // entries deleted
	Snapshots        int    // old snapshots deleted
	FirstKept, Cover uint64 // lowest entry left, and the seq entries were trimmed up to
}

// Trim makes one trim pass at now; see above. Only this agent's view is
// snapshotted, and deletes are idempotent, so two agents trimming at once
// do no harm.
func (l *Log) Trim(ctx context.Context, now time.Time, retention time.Duration, every uint64) (TrimStats, error) {
	var stats TrimStats
	if every == 0 {
		every = l.opts.SnapshotEvery
	}
	snaps, err := l.store.List(ctx, snapPrefix, "", 0)
	if err != nil {
		return stats, fmt.Errorf("meta: list snapshots: %w", err)
	}
	type snap struct {
		seq uint64
		key string
		mod time.Time
	}
	var have []snap
	for _, o := range snaps {
		if seq, err := strconv.ParseUint(strings.TrimPrefix(o.Key, snapPrefix), 10, 64); err == nil {
			have = append(have, snap{seq, o.Key, o.Modified})
		}
	}
	var taken *State
	l.View(func(st *State) {
		if st.Seq > 0 && (len(have) == 0 || st.Seq >= have[len(have)-1].seq+every) {
			taken = st.Clone() // encoded outside the lock, which appends need
		}
	})
	if taken != nil {
		seq, data := taken.Seq, taken.EncodeSnapshot()
		if err := l.store.Put(ctx, SnapshotKey(seq), data); err != nil {
			return stats, fmt.Errorf("meta: write snapshot: %w", err)
		}
		stats.Snapshot = seq
		have = append(have, snap{seq, SnapshotKey(seq), now})
	}
	if len(have) < 2 {
		return stats, nil
	}
	cover := have[len(have)-2].seq
	stats.Cover = cover
	old := now.Add(-retention)
	expired := func(mod time.Time) bool { return !mod.IsZero() && mod.Before(old) }

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	deleted := 0
	after := ""
	for done := false; !done; {
		page, err := l.store.List(ctx, logPrefix, after, 1000)
		if err != nil {
			_ = g.Wait()
			return stats, fmt.Errorf("meta: list log: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, o := range page {
			n, err := strconv.ParseUint(strings.TrimPrefix(o.Key, logPrefix), 10, 64)
			if err != nil {
				continue
			}
			if n > cover || !expired(o.Modified) {
				// Entries are written in slot order, so the rest are
				// younger or not covered.
				stats.FirstKept = n
				done = true
				break
			}
			deleted++
			g.Go(func() error { return l.store.Delete(gctx, o.Key) })
		}
		after = page[len(page)-1].Key
	}
	if err := g.Wait(); err != nil {
		return stats, fmt.Errorf("meta: delete entries: %w", err)
	}
	stats.Entries = deleted
	for _, s := range have[:len(have)-2] {
		if !expired(s.mod) {
			continue
		}
		if err := l.store.Delete(ctx, s.key); err != nil {
			return stats, fmt.Errorf("meta: delete snapshot: %w", err)
		}
		stats.Snapshots++
	}
	return stats, nil
}
