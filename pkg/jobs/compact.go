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
// looks for runs of at least two consecutive small chunks (each under
// CompactionTarget/8, in ingestion objects, together at most
// CompactionTarget), copies their bytes unchanged (batches as producers
// sent them, base offset 0: readers patch offsets from the chunk) into one
// cmp/ object with the segment format, and appends ReplaceChunks. The
// state rejects the op if the run changed meanwhile (retention, another
// compactor); the output is then released and collected like any other
// object no chunk refers to. On success the inputs lose their references
// and are collected after the grace period when nothing else holds them.

// DefaultCompactionTarget is the size compacted objects grow to.
const DefaultCompactionTarget = 64 << 20

const (
	ingestPrefix  = "seg/"
	compactPrefix = "cmp/"
)

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
			if len(r.compactRuns(st, n)) > 0 {
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

// compactRuns returns the runs of topic name's partitions to compact.
func (r *Runner) compactRuns(st *meta.State, name string) []compactRun {
	t := st.Topic(name)
	if t == nil {
		return nil
	}
	var runs []compactRun
	for i, p := range t.Partitions {
		for _, cs := range compactable(p.Chunks, r.cfg.CompactionTarget) {
			runs = append(runs, compactRun{topic: t.ID, partition: int32(i), chunks: cs})
		}
	}
	return runs
}

// compactTopic compacts one topic's runs, as they are now that this agent
// holds the lease: the previous holder's replacements are in the state.
func (r *Runner) compactTopic(ctx context.Context, name string) (int, error) {
	var runs []compactRun
	r.log.View(func(st *meta.State) { runs = r.compactRuns(st, name) })
	replaced := 0
	for _, run := range runs {
		if ctx.Err() != nil {
			return replaced, ctx.Err()
		}
		ok, err := r.compactOne(ctx, run)
		if err != nil {
			return replaced, err
		}
		if ok {
			replaced += len(run.chunks)
			r.compacted.Add(float64(len(run.chunks)))
		}
	}
	return replaced, nil
}

// compactable returns the runs of chunks worth replacing.
func compactable(chunks []meta.Chunk, target int64) [][]meta.Chunk {
	small := func(c meta.Chunk) bool {
		return strings.HasPrefix(c.Object, ingestPrefix) && c.Len < target/8
	}
	var runs [][]meta.Chunk
	for i := 0; i < len(chunks); {
		if !small(chunks[i]) {
			i++
			continue
		}
		j, size := i, int64(0)
		for j < len(chunks) && small(chunks[j]) && size+chunks[j].Len <= target {
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
	key := fmt.Sprintf("%s%013d-%s-%06d", compactPrefix, time.Now().UnixMilli(), r.cfg.WriterID, r.objects.Add(1)%1_000_000)
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
