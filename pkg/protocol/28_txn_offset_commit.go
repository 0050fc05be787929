package protocol

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// TxnOffsetCommit, versions 0-3 (txn.go): offsets that the producer's open
// transaction commits to a group it added (AddOffsetsToTxn), when it
// commits. Sent to the group's coordinator, like OffsetCommit, and checked
// against the group in memory there (KIP-447's generation and member, v3);
// the log checks the transaction, and the generation again.
// v3: flexible, generation, member and instance ids.
func init() {
	register(28, 0, 3, routed(txnOffsetCommitGroups, twoPhase(handleTxnOffsetCommit)))
}

func handleTxnOffsetCommit(ctx context.Context, s *Server, req *kmsg.TxnOffsetCommitRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	codes := make([][]int16, len(req.Topics))
	type ref struct{ t, p int }
	var refs []ref
	z := s.authzOf(ctx)
	now := time.Now().UnixMilli()
	op := meta.TxnCommitOffsets{TxnID: req.TransactionalID, ProducerID: req.ProducerID, Epoch: req.ProducerEpoch,
		Offsets: meta.CommitOffsets{Group: req.Group, Generation: -1, Member: req.MemberID}}
	var all int16
	switch {
	case !z.txn(meta.OpWrite, req.TransactionalID):
		all = errTxnAuth.Code
	case !z.group(meta.OpRead, req.Group):
		all = errGroupAuth.Code
	case req.Group == "":
		all = kerr.InvalidGroupID.Code
	case !s.txnFormat():
		all = kerr.CoordinatorNotAvailable.Code
	case !s.coordinates(req.Group):
		all = kerr.NotCoordinator.Code
	}
	s.log.View(func(st *meta.State) {
		for i, rt := range req.Topics {
			codes[i] = make([]int16, len(rt.Partitions))
			t := st.Topic(rt.Topic)
			for j, rp := range rt.Partitions {
				switch {
				case all != 0:
					codes[i][j] = all
				case !z.topic(meta.OpRead, rt.Topic):
					codes[i][j] = errTopicAuth.Code
				case t == nil || t.Partition(rp.Partition) == nil:
					codes[i][j] = kerr.UnknownTopicOrPartition.Code
				case rp.Metadata != nil && len(*rp.Metadata) > maxOffsetMetadataBytes:
					codes[i][j] = kerr.OffsetMetadataTooLarge.Code
				default:
					le := rp.LeaderEpoch
					if req.Version < 2 {
						le = -1
					}
					op.Offsets.Offsets = append(op.Offsets.Offsets, meta.GroupOffset{Topic: t.ID, Partition: rp.Partition,
						Offset: rp.Offset, LeaderEpoch: le, Metadata: rp.Metadata, CommitMs: now})
					refs = append(refs, ref{i, j})
				}
			}
		}
	})
	setAll := func(code int16) {
		for _, r := range refs {
			codes[r.t][r.p] = code
		}
	}
	var pending *meta.Pending
	if len(refs) > 0 {
		generation, member := int32(-1), ""
		var instance *string
		if req.Version >= 3 {
			generation, member, instance = req.Generation, req.MemberID, req.InstanceID
		}
		var code int16
		code, pending = s.groups.CommitTxn(req.Group, member, instance, generation, op)
		changed(ctx, pending)
		setAll(code)
	}
	return func() kmsg.Response {
		if pending != nil {
			res, err := pending.Wait(ctx)
			switch {
			case err != nil:
				setAll(txnErrorCode(err, req.Version, 3))
			case res[0].Err != nil:
				setAll(txnErrorCode(res[0].Err, req.Version, 3))
			default:
				for k, e := range res[0].OffsetErrs {
					if e != nil {
						codes[refs[k].t][refs[k].p] = errorCode(e)
					}
				}
			}
		}
		for i, rt := range req.Topics {
			t := kmsg.NewTxnOffsetCommitResponseTopic()
			t.Topic = rt.Topic
			for j, rp := range rt.Partitions {
				p := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				p.Partition, p.ErrorCode = rp.Partition, codes[i][j]
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp
	}
}
