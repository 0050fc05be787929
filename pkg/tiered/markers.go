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

// WriteMarkers writes the markers of a transaction's end (EncodeMarkers)
// as a segment object of this agent's and returns the Commit naming it;
// none for a transaction that added no partitions. An object whose op
// never lands is an orphan, which the sweep deletes.
func (in *Ingest) WriteMarkers(ctx context.Context, parts []meta.GroupPartition, pid int64, epoch int16, commit bool) (meta.Commit, error) {
	if len(parts) == 0 {
		return meta.Commit{}, nil
	}
	since := in.log.Seq() // before the object exists (condemn.go)
	ms := time.Now().UnixMilli()
	obj, c := EncodeMarkers(parts, pid, epoch, commit, ms)
	c.Object, c.Since = meta.DataKey(meta.SegmentPrefix, ms, in.cfg.WriterID, int64(in.objects.Add(1))), since
	if err := in.store.Put(ctx, c.Object, obj); err != nil {
		return meta.Commit{}, fmt.Errorf("%w: transaction markers: %v", ErrStorage, err)
	}
	return c, nil
}
