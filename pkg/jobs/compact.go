package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/tiered"
)

// File compaction. Ingestion objects (seg/) hold a little of many
// partitions each, so a partition's log is spread over many small chunks:
// a cold read makes a GET per chunk and the log's state lists each one.
// For every partition of the topics it owns ("compact/<topic>"), a pass
// merges runs of consecutive small chunks (seg/ or cmp/, each under
// CompactionTarget/F, F = compactionFanout = 8), copying their bytes
// unchanged (batches as producers sent them, base offset 0: readers patch
// offsets from the chunk) into one cmp/ object with the segment format,
// and appends ReplaceChunks. The state rejects the op if the run changed
// meanwhile (retention, another compactor); the output is then released
// and collected like any other object no chunk refers to. On success the
// inputs lose their references and are collected after the grace period
// when nothing else holds them.
//
// Which runs merge is size-tiered, so that the chunks per partition are
// bounded by bytes, not by age. With T = CompactionTarget, a chunk of at
// least T/F is left alone, and so is any cln/ chunk (key compaction's,
// whose batches carry their own offsets); both split the rest into
// stretches no run crosses. A smaller chunk's level is L ≥ 1 where
// T/F^(L+1) ≤ size < T/F^L, so lower levels hold larger chunks; every
// chunk holds a batch header, so the levels go down to K = level(61
// bytes): K = 6 for the default 64 MiB, 3 for 64 KiB. Each pass applies
// these rules, the first that applies per stretch, round after round until
// none does (among the chunks there were when it began, so that a busy
// partition cannot keep it going):
//
//  1. Leaving the ingestion objects: consecutive seg/ chunks are merged
//     (up to T), whatever their sizes, so that an ingestion object is
//     freed by the first pass after each partition in it has had another
//     chunk; waiting for a level to fill would keep whole flushes of every
//     other partition in the bucket that long.
//  2. A stretch followed by a chunk left alone is closed: nothing will be
//     appended to it, so it is merged whole (in runs up to T).
//  3. In the open stretch, the one at the end of the log, a chunk at a
//     lower level than the chunk before it absorbs the run of smaller
//     chunks (higher levels) right before it.
//  4. F consecutive chunks of one level, the oldest of that level, are
//     merged; the output, at least F times the level's floor, is one level
//     lower.
//
// Invariant after a pass: no two seg/ chunks are adjacent, every closed
// stretch is one chunk, and in the open stretch no chunk is at a lower
// level than the one before it and fewer than F share a level.
// So a partition holds at most (F-1)·K chunks under T/F in its open
// stretch (42 at the defaults) plus one per chunk left alone (each closes
// at most one stretch), and at most F·bytes/T chunks of T/F or more.
//
// Write amplification: rule 1 rewrites a byte once. Rule 4 and rule 3 (for
// the smaller chunks) move the chunk holding it to a lower level, so at
// most K times. Rule 3 may rewrite the absorbing chunk's bytes at the same
// level, but once per level at most: afterwards the chunk before it is at
// its level or lower, and the chunk before a chunk only ever moves lower
// (merges grow chunks; retention takes the oldest). Rule 2 applies once.
// So a byte is rewritten at most 2K+2 times, about K+1 when chunks arrive
// at steady sizes and rule 3 does not fire. (A partition compacted before
// levels existed first converges to the invariant, at the cost of more.)

// DefaultCompactionTarget is the size compacted objects grow to.
const DefaultCompactionTarget = 64 << 20

// compactionFanout is how many chunks of one level make one of the next,
// and T/compactionFanout the size from which a chunk is left alone.
const compactionFanout = 8

func (r *Runner) runCompaction(ctx context.Context) {
	Every(ctx, r.cfg.CompactionInterval, func(ctx context.Context) {
		if n, err := r.Compact(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("compaction", "err", err)
		} else if n > 0 {
			r.cfg.Logger.Info("compacted chunks", "chunks", n)
		}
	})
}

// compactRun is one run of chunks to replace.
type compactRun struct {
	topic     meta.TopicID
	partition int32
	chunks    []meta.Chunk
}

// Compact makes one compaction pass over the owned topics with runs to
// compact whose "compact/<topic>" lease this agent gets, and returns how
// many chunks it replaced.
func (r *Runner) Compact(ctx context.Context) (int, error) {
	var jobs []string
	owned := r.ownedTopics("compact/")
	r.log.View(func(st *meta.State) {
		for _, n := range owned {
			if len(r.compactRuns(st, n, nil)) > 0 {
				jobs = append(jobs, "compact/"+n)
			}
		}
	})
	replaced := 0
	err := r.leased(ctx, jobs, func(ctx context.Context, job string) error {
		n, err := r.compactTopic(ctx, strings.TrimPrefix(job, "compact/"))
		replaced += n
		return err
	})
	return replaced, err
}

// compactRuns returns the runs of topic name's partitions to compact,
// among each partition's chunks below ends[partition] if ends is set.
func (r *Runner) compactRuns(st *meta.State, name string, ends []int64) []compactRun {
	t := st.Topic(name)
	if t == nil {
		return nil
	}
	var runs []compactRun
	for i, p := range t.Partitions {
		chunks := p.Chunks
		if ends != nil {
			if i >= len(ends) {
				break // created since the pass began
			}
			n := 0
			for n < len(chunks) && chunks[n].NextOffset <= ends[i] {
				n++
			}
			chunks = chunks[:n:n]
		}
		for _, cs := range compactable(chunks, r.cfg.CompactionTarget) {
			runs = append(runs, compactRun{topic: t.ID, partition: int32(i), chunks: cs})
		}
	}
	return runs
}

// compactTopic compacts one topic, as it is now that this agent holds the
// lease (the previous holder's replacements are in the state), round
// after round until no rule applies to the chunks it had at the start.
func (r *Runner) compactTopic(ctx context.Context, name string) (int, error) {
	var ends []int64
	r.log.View(func(st *meta.State) {
		if t := st.Topic(name); t != nil {
			for _, p := range t.Partitions {
				end := int64(0)
				if len(p.Chunks) > 0 {
					end = p.Chunks[len(p.Chunks)-1].NextOffset
				}
				ends = append(ends, end)
			}
		}
	})
	replaced := 0
	for {
		var runs []compactRun
		r.log.View(func(st *meta.State) { runs = r.compactRuns(st, name, ends) })
		taken := 0
		for _, run := range runs {
			if ctx.Err() != nil {
				return replaced, ctx.Err()
			}
			ok, err := r.compactOne(ctx, run)
			if err != nil {
				return replaced, err
			}
			if ok {
				taken++
				replaced += len(run.chunks)
				r.compacted.Add(float64(len(run.chunks)))
			}
		}
		// Every taken run removed a chunk, so the rounds end; a round
		// that lost every run to a conflict leaves the rest to the next
		// pass.
		if taken == 0 {
			return replaced, nil
		}
	}
}

// compactable returns the runs of chunks to merge now: the first of the
// rules in the comment above that applies, per stretch.
func compactable(chunks []meta.Chunk, target int64) [][]meta.Chunk {
	small := func(c meta.Chunk) bool {
		return c.Len < target/compactionFanout &&
			(strings.HasPrefix(c.Object, meta.SegmentPrefix) || strings.HasPrefix(c.Object, meta.CompactedPrefix))
	}
	var runs [][]meta.Chunk
	for i := 0; i < len(chunks); {
		if !small(chunks[i]) {
			i++
			continue
		}
		j := i
		for j < len(chunks) && small(chunks[j]) {
			j++
		}
		runs = append(runs, stretchRuns(chunks[i:j:j], j < len(chunks), target)...)
		i = j
	}
	return runs
}

// stretchRuns returns the runs to merge in a stretch of small chunks;
// closed says a chunk left alone follows it.
func stretchRuns(chunks []meta.Chunk, closed bool, target int64) [][]meta.Chunk {
	ingest := func(c meta.Chunk) bool { return strings.HasPrefix(c.Object, meta.SegmentPrefix) }
	if runs := packRuns(chunks, target, ingest); len(runs) > 0 { // rule 1
		return runs
	}
	if closed { // rule 2
		return packRuns(chunks, target, func(meta.Chunk) bool { return true })
	}
	levels := make([]int, len(chunks))
	for i, c := range chunks {
		levels[i] = chunkLevel(c.Len, target)
	}
	if runs := absorbRuns(chunks, levels, target); len(runs) > 0 { // rule 3
		return runs
	}
	// Rule 4: the chunks of a level are consecutive now.
	var runs [][]meta.Chunk
	for i := 0; i < len(chunks); {
		j := i
		for j < len(chunks) && levels[j] == levels[i] {
			j++
		}
		for ; i+compactionFanout <= j; i += compactionFanout {
			runs = append(runs, chunks[i:i+compactionFanout:i+compactionFanout])
		}
		i = j
	}
	return runs
}

// packRuns returns runs of at least two consecutive chunks for which in
// holds, each of at most target bytes.
func packRuns(chunks []meta.Chunk, target int64, in func(meta.Chunk) bool) [][]meta.Chunk {
	var runs [][]meta.Chunk
	for i := 0; i < len(chunks); {
		if !in(chunks[i]) {
			i++
			continue
		}
		j, size := i, int64(0)
		for j < len(chunks) && in(chunks[j]) && size+chunks[j].Len <= target {
			size += chunks[j].Len
			j++
		}
		if j-i >= 2 {
			runs = append(runs, chunks[i:j:j])
		}
		i = max(j, i+1)
	}
	return runs
}

// absorbRuns returns, for each chunk at a lower level than the one before
// it, the run of that chunk and the smaller chunks right before it (up to
// target bytes).
func absorbRuns(chunks []meta.Chunk, levels []int, target int64) [][]meta.Chunk {
	var runs [][]meta.Chunk
	start := 0 // runs do not overlap
	for i := 1; i < len(chunks); i++ {
		if levels[i-1] <= levels[i] {
			continue
		}
		j, size := i, chunks[i].Len
		for j > start && levels[j-1] > levels[i] && size+chunks[j-1].Len <= target {
			j--
			size += chunks[j].Len
		}
		if j < i { // else chunk i-1 ends this round's previous run
			runs = append(runs, chunks[j:i+1:i+1])
			start = i + 1
		}
	}
	return runs
}

// chunkLevel returns the level of a chunk of n bytes: 0 from target/F up
// (left alone), else L with target/F^(L+1) ≤ n < target/F^L.
func chunkLevel(n, target int64) int {
	floor := target / compactionFanout
	level := 0
	for n < floor && floor > 0 {
		floor /= compactionFanout
		level++
	}
	return level
}

// compactOne writes the run's output object and replaces the run with it.
// It reports whether the state accepted the replacement.
func (r *Runner) compactOne(ctx context.Context, run compactRun) (bool, error) {
	ctx, cancel, since := r.writing(ctx)
	defer cancel()
	var data []byte
	batches := 0
	maxTs := int64(-1)
	for _, c := range run.chunks {
		b, err := r.store.GetRange(ctx, c.Object, c.Pos, c.Len)
		if err != nil {
			return false, fmt.Errorf("compaction: read %s: %w", c.Object, err)
		}
		n, err := countBatches(b, c)
		if err != nil {
			return false, fmt.Errorf("compaction: %s: %w", c.Object, err)
		}
		data = append(data, b...)
		batches += n
		maxTs = max(maxTs, c.MaxTimestamp)
	}
	obj, part := tiered.EncodePartSegment(run.topic, run.partition, data, batches)
	key := meta.DataKey(meta.CompactedPrefix, time.Now().UnixMilli(), r.cfg.WriterID, r.objects.Add(1))
	if err := r.store.Put(ctx, key, obj); err != nil {
		return false, fmt.Errorf("compaction: write %s: %w", key, err)
	}
	op := meta.ReplaceChunks{Topic: run.topic, Partition: run.partition, Since: since,
		Output: meta.Chunk{Object: key, Pos: part.Pos, Len: part.Len, BaseOffset: run.chunks[0].BaseOffset,
			NextOffset: run.chunks[len(run.chunks)-1].NextOffset, MaxTimestamp: maxTs}}
	for _, c := range run.chunks {
		op.Inputs = append(op.Inputs, c.Ref())
	}
	res, err := r.log.Append(ctx, op)
	if err != nil {
		// The outcome is unknown: the state releases a rejected output, and
		// an accepted one is in use, so the object is left alone.
		return false, fmt.Errorf("compaction: append: %w", err)
	}
	if errors.Is(res[0].Err, meta.ErrConflict) || errors.Is(res[0].Err, meta.ErrCondemned) {
		r.cfg.Logger.Debug("compaction conflict", "object", key, "err", res[0].Err)
		return false, nil // released by the state; collection deletes it
	}
	return res[0].Err == nil, res[0].Err
}

// countBatches checks that b holds whole batches spanning the chunk's
// offsets, as stored (unpatched), and returns how many.
func countBatches(b []byte, c meta.Chunk) (int, error) {
	n, records := 0, int64(0)
	for len(b) > 0 {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() < batch.HeaderSize || h.Size() > len(b) {
			return 0, fmt.Errorf("%w: batch %d", tiered.ErrCorruptSegment, n)
		}
		records += int64(h.LastOffsetDelta) + 1
		b = b[h.Size():]
		n++
	}
	if records != c.NextOffset-c.BaseOffset {
		return 0, fmt.Errorf("%w: chunk holds %d offsets, index says %d", tiered.ErrCorruptSegment, records, c.NextOffset-c.BaseOffset)
	}
	return n, nil
}
