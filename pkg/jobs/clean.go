package jobs

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// Key compaction, Kafka's log cleaner (cleanup.policy=compact). A
// partition's log is a clean tail, from the log start to the partition's
// CleanedTo, where each key appears at most once, and a dirty head after
// it. A pass over a partition is due when the dirty head's share of the
// cleanable bytes reaches min.cleanable.dirty.ratio, when a dirty chunk is
// older than max.compaction.lag.ms, or when a tombstone's delete horizon
// has passed. A dirty chunk with records newer than min.compaction.lag.ms
// is not cleanable, and neither is anything after it.
//
// A pass maps each key of the dirty head to its newest offset, then
// rewrites the whole cleanable log in runs of at most CompactionTarget
// bytes, keeping a record only if no newer record has its key. Batches keep
// their base offsets and offset ranges (KAFKA-5443: a consumer moves past a
// batch by its last offset, even when its last record is gone), and each is
// recompressed with its own codec, its CRC recomputed. A run nothing
// changed in is left alone. Each output (a cln/ object, whose batches
// carry real offsets) is committed by a CleanChunks op as soon as it is
// written, rejected by the state if its run changed meanwhile; a last op
// moves the boundary once every run was taken.
//
// Tombstones (records with a null value) stay delete.retention.ms after a
// pass first keeps them, so that consumers reading from the start see the
// delete: as in Kafka (KIP-534), that pass stamps the delete horizon into
// the batch's first timestamp and sets attribute bit 6, and a pass after the
// horizon drops them. Records without a key, which a compacted topic
// refuses on produce, are dropped as Kafka's cleaner drops them.

// DefaultCleanerKeys bounds the keys one pass maps, as Kafka's
// log.cleaner.dedupe.buffer.size does: a dirty head with more distinct keys
// is cleaned in several passes. About 40 bytes each.
const DefaultCleanerKeys = 1 << 20

// maxCleanBatch bounds a decompressed batch the cleaner decodes.
const maxCleanBatch = 64 << 20

// maxHeldDirty bounds the dirty chunks a pass keeps between reading them
// for the key map and rewriting them.
const maxHeldDirty = 64 << 20

// attrDeleteHorizon is the batch attribute bit (KIP-534) saying the first
// timestamp holds the time the batch's tombstones may be dropped.
const attrDeleteHorizon = 0x40

func (r *Runner) runCleaner(ctx context.Context) {
	Every(ctx, r.cfg.CleanerBackoff, func(ctx context.Context) {
		if n, err := r.Clean(ctx, time.Now()); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("key compaction", "err", err)
		} else if n > 0 {
			r.cfg.Logger.Info("cleaned partitions", "partitions", n)
		}
	})
}

// cleanPlan is one partition's cleanable log, as a pass reads it.
type cleanPlan struct {
	topic     meta.TopicID
	partition int32
	chunks    []meta.Chunk // from the log start up to the first uncleanable chunk
	dirty     int          // index of the first chunk with dirty records
	cleanedTo int64        // the partition's clean/dirty boundary
	retention int64        // delete.retention.ms
	aborted   []meta.AbortedTxn
}

// Clean makes one key-compaction pass over the partitions due at now of
// the owned compacted topics whose "clean/<topic>" lease this agent gets,
// and returns how many partitions it cleaned.
func (r *Runner) Clean(ctx context.Context, now time.Time) (int, error) {
	nowMs := now.UnixMilli()
	var jobs []string
	owned := r.ownedTopics("clean/")
	r.log.View(func(st *meta.State) {
		for _, n := range owned {
			if len(cleanPlans(st, n, nowMs)) > 0 {
				jobs = append(jobs, "clean/"+n)
			}
		}
	})
	cleaned := 0
	err := r.leased(ctx, jobs, func(ctx context.Context, job string) error {
		// The plans as they are now that this agent holds the lease: the
		// previous holder's passes are in the state.
		var plans []cleanPlan
		r.log.View(func(st *meta.State) { plans = cleanPlans(st, strings.TrimPrefix(job, "clean/"), nowMs) })
		for _, plan := range plans {
			ok, err := r.cleanOne(ctx, plan, nowMs)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				// One partition's trouble (a batch it cannot decode, a
				// failed read) must not keep the others dirty.
				r.cfg.Logger.Warn("key compaction", "job", job, "partition", plan.partition, "err", err)
				continue
			}
			if ok {
				cleaned++
				r.cleaned.Inc()
			}
		}
		return nil
	})
	return cleaned, err
}

// cleanPlans returns the partitions of topic name due for a pass.
func cleanPlans(st *meta.State, name string, nowMs int64) []cleanPlan {
	t := st.Topic(name)
	if t == nil || !t.Compacts() {
		return nil
	}
	var plans []cleanPlan
	for i, p := range t.Partitions {
		if plan, ok := planClean(t, p, nowMs); ok {
			plan.partition = int32(i)
			plans = append(plans, plan)
		}
	}
	return plans
}

// planClean returns the partition's cleanable log if a pass is due.
func planClean(t *meta.Topic, p *meta.Partition, nowMs int64) (cleanPlan, bool) {
	minLag, maxLag := t.ConfigInt("min.compaction.lag.ms"), t.ConfigInt("max.compaction.lag.ms")
	v, _ := t.Config("min.cleanable.dirty.ratio")
	minRatio, err := strconv.ParseFloat(v, 64)
	if err != nil {
		minRatio = 0.5
	}
	firstDirty := max(p.CleanedTo, p.LogStart)
	d := 0 // the first chunk with dirty records
	for d < len(p.Chunks) && p.Chunks[d].NextOffset <= firstDirty {
		d++
	}
	// The first uncleanable chunk: as in Kafka, only the dirty head waits
	// for min.compaction.lag.ms, so that a clean chunk with a timestamp in
	// the future cannot hold everything after it back.
	u := len(p.Chunks)
	if minLag > 0 {
		for u = d; u < len(p.Chunks) && p.Chunks[u].MaxTimestamp <= nowMs-minLag; u++ {
		}
	}
	// Nor past the last stable offset, as Kafka's cleaner stops at the
	// first unstable offset: an open transaction may yet abort, and its
	// records must not supersede anything before it is decided.
	lso := p.LastStable()
	for u > 0 && p.Chunks[u-1].NextOffset > lso {
		u--
	}
	if u < d {
		u = d
	}
	var clean, dirty int64
	for i, c := range p.Chunks[:u] {
		if i < d {
			clean += c.Len
		} else {
			dirty += c.Len
		}
	}
	// A chunk's newest record stands for its oldest: chunks are a flush
	// interval apart, or a compaction run.
	due := dirty > 0 && (float64(dirty)/float64(clean+dirty) >= minRatio || p.Chunks[d].MaxTimestamp < nowMs-maxLag)
	tombstones := p.DeleteHorizon > 0 && p.DeleteHorizon <= nowMs && u > 0
	if !due && !tombstones {
		return cleanPlan{}, false
	}
	return cleanPlan{topic: t.ID, chunks: p.Chunks[:u:u], dirty: d, cleanedTo: p.CleanedTo,
		retention: t.ConfigInt("delete.retention.ms"), aborted: p.Aborted(0, lso)}, true
}

// keyMap maps a key's 128-bit hash to the newest offset holding the key.
type keyMap struct {
	seeds   [2]maphash.Seed
	offsets map[[2]uint64]int64
}

func newKeyMap() *keyMap {
	return &keyMap{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, offsets: map[[2]uint64]int64{}}
}

func (m *keyMap) hash(key []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(m.seeds[0], key), maphash.Bytes(m.seeds[1], key)}
}

// readChunk returns the chunk's batches with their final offsets.
func (r *Runner) readChunk(ctx context.Context, c meta.Chunk) ([]byte, error) {
	b, err := r.store.GetRange(ctx, c.Object, c.Pos, c.Len)
	if err != nil {
		return nil, fmt.Errorf("key compaction: read %s: %w", c.Object, err)
	}
	if err := tiered.FinishChunk(b, c); err != nil {
		return nil, fmt.Errorf("key compaction: %w", err)
	}
	return b, nil
}

// eachBatch calls fn with every batch of a finished chunk and its records.
func eachBatch(chunk []byte, fn func(b []byte, h batch.Header, recs []batch.Record) error) error {
	return batch.Split(chunk, func(b []byte, h batch.Header) error {
		recs, err := batch.Records(b, maxCleanBatch)
		if err != nil {
			return fmt.Errorf("key compaction: batch at offset %d: %w", h.BaseOffset, err)
		}
		return fn(b, h, recs)
	})
}

// cleanOne runs one pass over a partition and reports whether the state
// took it.
func (r *Runner) cleanOne(ctx context.Context, plan cleanPlan, nowMs int64) (bool, error) {
	keys := newKeyMap()
	end := len(plan.chunks) // one past the last chunk this pass cleans
	// The dirty chunks read for the map are kept for the rewrite, up to
	// maxHeldDirty bytes, so that a dirty head that fits costs one GET per
	// chunk, not two.
	held, heldBytes := map[meta.ChunkRef][]byte{}, int64(0)
	for i := plan.dirty; i < len(plan.chunks); i++ {
		b, err := r.readChunk(ctx, plan.chunks[i])
		if err != nil {
			return false, err
		}
		if heldBytes+int64(len(b)) <= maxHeldDirty {
			held[plan.chunks[i].Ref()] = b
			heldBytes += int64(len(b))
		}
		err = eachBatch(b, func(_ []byte, h batch.Header, recs []batch.Record) error {
			if h.IsControl() || abortedBatch(plan.aborted, h) {
				return nil // a marker's key is not a record's; an aborted record supersedes nothing
			}
			for _, rec := range recs {
				if rec.Key != nil {
					keys.offsets[keys.hash(rec.Key)] = h.BaseOffset + int64(rec.OffsetDelta)
				}
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		if len(keys.offsets) >= r.cfg.CleanerKeys && i+1 < len(plan.chunks) {
			end = i + 1 // the rest waits for the next pass
			break
		}
	}

	// Each rewritten run is committed as soon as its object is written, so
	// that no output waits for a long pass (the orphan sweep deletes
	// unreferenced objects past --orphan-grace) and a run changed by
	// another job meanwhile costs only itself. That is safe because a
	// record only goes once a newer one of its key is committed. The
	// boundary moves last, and only if every run was taken.
	f := filter{keys: keys, nowMs: nowMs, retention: plan.retention, aborted: plan.aborted}
	taken := true
	for from := 0; from < end; {
		to, size := from, int64(0)
		for to < end && (to == from || size+plan.chunks[to].Len <= r.cfg.CompactionTarget) {
			size += plan.chunks[to].Len
			to++
		}
		ok, err := r.cleanAndAppend(ctx, plan, plan.chunks[from:to], held, &f)
		if err != nil {
			return false, err
		}
		taken = taken && ok
		from = to
	}
	if !taken {
		return false, nil // the next pass cleans what changed
	}
	return r.appendClean(ctx, meta.CleanChunks{Topic: plan.topic, Partition: plan.partition, Boundary: true,
		CleanedTo: max(plan.cleanedTo, plan.chunks[end-1].NextOffset), DeleteHorizon: f.horizon})
}

// cleanAndAppend rewrites one run and swaps it in, within the write
// timeout, and reports whether the state took it (true when nothing in it
// changed).
func (r *Runner) cleanAndAppend(ctx context.Context, plan cleanPlan, chunks []meta.Chunk, held map[meta.ChunkRef][]byte, f *filter) (bool, error) {
	ctx, cancel, since := r.writing(ctx)
	defer cancel()
	run, err := r.cleanRun(ctx, plan, chunks, held, f)
	if err != nil || run == nil {
		return err == nil, err
	}
	return r.appendClean(ctx, meta.CleanChunks{Topic: plan.topic, Partition: plan.partition, Runs: []meta.CleanRun{*run}, Since: since})
}

// appendClean appends op and reports whether the state took it.
func (r *Runner) appendClean(ctx context.Context, op meta.CleanChunks) (bool, error) {
	res, err := r.log.Append(ctx, op)
	if err != nil {
		return false, fmt.Errorf("key compaction: append: %w", err)
	}
	if errors.Is(res[0].Err, meta.ErrConflict) || errors.Is(res[0].Err, meta.ErrCondemned) {
		r.cfg.Logger.Debug("key compaction conflict", "partition", op.Partition, "err", res[0].Err)
		return false, nil // the state released the output
	}
	return res[0].Err == nil, res[0].Err
}

// cleanRun rewrites one run of chunks and returns it as the op lists it,
// or nil if nothing in it changed.
func (r *Runner) cleanRun(ctx context.Context, plan cleanPlan, chunks []meta.Chunk, held map[meta.ChunkRef][]byte, f *filter) (*meta.CleanRun, error) {
	var out []byte
	count, changed := 0, false
	maxTs := int64(-1) // of the records kept: ListOffsets and retention trust it
	for ci, c := range chunks {
		// Only the cleaner sets the delete horizon bit; a producer's is
		// not believed (it would let tombstones go at once).
		trusted := strings.HasPrefix(c.Object, meta.CleanedPrefix)
		b, ok := held[c.Ref()]
		if !ok {
			var err error
			if b, err = r.readChunk(ctx, c); err != nil {
				return nil, err
			}
		}
		pos := 0
		err := batch.Split(b, func(raw []byte, h batch.Header) error {
			pos += len(raw)
			recs, err := batch.Records(raw, maxCleanBatch)
			if err != nil {
				return fmt.Errorf("key compaction: batch at offset %d: %w", h.BaseOffset, err)
			}
			nb, same, err := f.batch(raw, h, recs, trusted)
			if err != nil {
				return err
			}
			changed = changed || !same
			if nb == nil {
				// Every record went. The run's last batch stays, empty,
				// so that the run still ends where its offsets do and a
				// consumer at the end of the log is not stranded.
				if ci < len(chunks)-1 || pos < len(b) {
					return nil
				}
				if nb, err = emptyBatch(h); err != nil {
					return err
				}
			}
			if nh, _ := batch.ParseHeader(nb); nh.NumRecords > 0 {
				maxTs = max(maxTs, nh.MaxTimestamp)
			}
			out = append(out, nb...)
			count++
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if !changed {
		return nil, nil
	}
	obj, part := tiered.EncodePartSegment(plan.topic, plan.partition, out, count)
	key := meta.DataKey(meta.CleanedPrefix, time.Now().UnixMilli(), r.cfg.WriterID, r.objects.Add(1))
	if err := r.store.Put(ctx, key, obj); err != nil {
		return nil, fmt.Errorf("key compaction: write %s: %w", key, err)
	}
	run := &meta.CleanRun{Output: meta.Chunk{Object: key, Pos: part.Pos, Len: part.Len,
		BaseOffset: chunks[0].BaseOffset, NextOffset: chunks[len(chunks)-1].NextOffset, MaxTimestamp: maxTs}}
	for _, c := range chunks {
		run.Inputs = append(run.Inputs, c.Ref())
	}
	return run, nil
}

// filter decides, record by record, what a pass keeps.
type filter struct {
	keys      *keyMap
	nowMs     int64
	retention int64 // delete.retention.ms
	horizon   int64 // the earliest delete horizon of a kept tombstone, 0 if none
	aborted   []meta.AbortedTxn
	kept      []batch.Record
}

// abortedBatch reports whether h is a batch of an aborted transaction:
// transactional, of a producer with an aborted range holding its offset.
func abortedBatch(aborted []meta.AbortedTxn, h batch.Header) bool {
	if !h.IsTransactional() || h.IsControl() {
		return false
	}
	for _, a := range aborted {
		if a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset < a.LastOffset {
			return true
		}
	}
	return false
}

// batch returns the batch as the pass keeps it: raw itself when nothing
// changes (same), a rebuilt batch, or nil when no record stays.
func (f *filter) batch(raw []byte, h batch.Header, recs []batch.Record, trusted bool) (out []byte, same bool, err error) {
	if h.IsControl() {
		// Markers stay: a read_committed reader needs an abort's marker
		// to stop dropping its producer's batches. (Kafka removes one
		// once its transaction's records are gone and delete.retention.ms
		// has passed; Barge keeps them, a batch each per transaction.)
		return raw, true, nil
	}
	if abortedBatch(f.aborted, h) {
		return nil, false, nil // Kafka's cleaner discards aborted records
	}
	flagged := h.Attributes&attrDeleteHorizon != 0
	hadHorizon := flagged && trusted
	horizon := int64(0)
	if hadHorizon {
		horizon = h.FirstTimestamp
	}
	f.kept = f.kept[:0]
	tombstones := false
	for _, rec := range recs {
		if rec.Key == nil {
			continue
		}
		if newest, ok := f.keys.offsets[f.keys.hash(rec.Key)]; ok && h.BaseOffset+int64(rec.OffsetDelta) < newest {
			continue
		}
		if rec.Value == nil {
			if hadHorizon && horizon != math.MaxInt64 && f.nowMs >= horizon {
				continue
			}
			tombstones = true
		}
		f.kept = append(f.kept, rec)
	}
	if tombstones {
		if !hadHorizon {
			horizon = math.MaxInt64 // delete.retention.ms near Long.MAX: never
			if f.retention < math.MaxInt64-f.nowMs {
				horizon = f.nowMs + f.retention
			}
		}
		if f.horizon == 0 || horizon < f.horizon {
			f.horizon = max(horizon, 1)
		}
	}
	if len(f.kept) == len(recs) && tombstones == hadHorizon && flagged == hadHorizon {
		return raw, true, nil
	}
	if len(f.kept) == 0 {
		return nil, false, nil
	}
	// Timestamps are deltas from the first timestamp, which now holds
	// either the delete horizon or the first kept record's time.
	abs := make([]int64, len(f.kept))
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	for i, rec := range f.kept {
		abs[i] = h.FirstTimestamp + rec.TimestampDelta
		first, last = min(first, abs[i]), max(last, abs[i])
	}
	nh := h
	nh.Attributes &^= attrDeleteHorizon
	nh.FirstTimestamp = first
	if h.TimestampType() == 0 { // CreateTime: the newest record kept
		nh.MaxTimestamp = last
	}
	if tombstones {
		nh.Attributes |= attrDeleteHorizon
		nh.FirstTimestamp = horizon
	}
	for i := range f.kept {
		f.kept[i].TimestampDelta = abs[i] - nh.FirstTimestamp
	}
	out, err = batch.Build(nh, h.Codec(), f.kept)
	if err != nil {
		return nil, false, fmt.Errorf("key compaction: rebuild batch at offset %d: %w", h.BaseOffset, err)
	}
	return out, false, nil
}

// emptyBatch returns h's offset range as a batch with no records.
func emptyBatch(h batch.Header) ([]byte, error) {
	h.Attributes &^= attrDeleteHorizon
	h.FirstTimestamp = h.MaxTimestamp
	return batch.Build(h, batch.None, nil)
}
