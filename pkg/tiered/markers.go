package tiered

import (
	"context"
	"fmt"
	"time"

	"github.com/bargehq/barge/pkg/batch"
	"github.com/bargehq/barge/pkg/meta"
)

// EncodeMarkers returns a segment object holding one control batch (a
// transaction's commit or abort marker, batch.ControlBatch) for each
// partition, in the order given, and the Commit that names them, without
// its Object and Since: a meta.EndTxn or meta.InitTxn carries it, and
// applying that gives each marker its partition's next offset.
func EncodeMarkers(parts []meta.GroupPartition, pid int64, epoch int16, commit bool, ms int64) ([]byte, meta.Commit) {
	marker := batch.ControlBatch(pid, epoch, commit, 0, ms)
	obj := make([]byte, segHeaderSize, segHeaderSize+len(parts)*len(marker)+footerSize(len(parts)))
	copy(obj, segMagic)
	obj[4] = segVersion
	footer := make([]SegmentPart, len(parts))
	c := meta.Commit{Parts: make([]meta.CommitPart, len(parts))}
	for i, gp := range parts {
		pos := int64(len(obj))
		obj = append(obj, marker...)
		footer[i] = SegmentPart{Topic: gp.Topic, Partition: gp.Partition, Pos: pos, Len: int64(len(marker)), Batches: 1}
		c.Parts[i] = meta.CommitPart{Topic: gp.Topic, Partition: gp.Partition, Batches: []meta.CommitBatch{{
			Pos: pos, Len: int64(len(marker)), Records: 1, MaxTimestamp: ms, ProducerID: pid, ProducerEpoch: epoch,
			BaseSequence: -1, Transactional: true, Control: true}}}
	}
	obj = appendFooter(obj, footer)
	c.Size = int64(len(obj))
	return obj, c
}

// Markers is a marker object written to the bucket, to be named by a
// meta.EndTxn or meta.InitTxn (Commit) and then published (Publish).
type Markers struct {
	Commit meta.Commit
	obj    []byte
}

// WriteMarkers writes the markers of a transaction's end (EncodeMarkers)
// as a segment object of this agent's; none (a zero Commit) for a
// transaction that added no partitions. An object whose op never lands is
// an orphan, which the sweep deletes. Fetches that find its chunks before
// Publish wait for it rather than GET it (cache.Expect).
func (in *Ingest) WriteMarkers(ctx context.Context, parts []meta.GroupPartition, pid int64, epoch int16, commit bool) (Markers, error) {
	if len(parts) == 0 {
		return Markers{}, nil
	}
	since := in.log.Seq() // before the object exists (condemn.go)
	ms := time.Now().UnixMilli()
	obj, c := EncodeMarkers(parts, pid, epoch, commit, ms)
	c.Object, c.Since = meta.DataKey(meta.SegmentPrefix, ms, in.cfg.WriterID, int64(in.objects.Add(1))), since
	if err := in.store.Put(ctx, c.Object, obj); err != nil {
		return Markers{}, fmt.Errorf("%w: transaction markers: %v", ErrStorage, err)
	}
	in.cache.Expect(c.Object)
	return Markers{Commit: c, obj: obj}, nil
}

// Publish hands the markers to the cache once their op has landed, each
// batch patched to the base offset its partition's chunk of the object
// has (in st's view), so that tail readers of the partitions never GET
// them; if the op did not land (took reports false) the cache stops
// expecting them.
func (in *Ingest) Publish(m Markers, took bool, st *meta.State) {
	if m.Commit.Object == "" {
		return
	}
	if !took {
		in.cache.Abandon(m.Commit.Object)
		return
	}
	for _, part := range m.Commit.Parts {
		b := part.Batches[0]
		base := int64(-1)
		if t := st.TopicByID(part.Topic); t != nil {
			if p := t.Partition(part.Partition); p != nil {
				for i := len(p.Chunks) - 1; i >= 0; i-- {
					if c := p.Chunks[i]; c.Object == m.Commit.Object && c.Pos == b.Pos {
						base = c.BaseOffset
						break
					}
				}
			}
		}
		if base < 0 { // compacted away already, or its topic deleted: readers GET what they need
			in.cache.Abandon(m.Commit.Object)
			return
		}
		bb := m.obj[b.Pos : b.Pos+b.Len]
		batch.SetBaseOffset(bb, base)
		batch.SetPartitionLeaderEpoch(bb, 0)
	}
	in.cache.PutObject(m.Commit.Object, m.obj)
}
