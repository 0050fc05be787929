package protocol

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// OffsetCommit, versions 2-9.
//
// The commit is checked against the group in memory as Kafka does
// (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS while the
// group awaits its leader's sync, FENCED_INSTANCE_ID; generation -1 commits
// from outside group management are accepted while the group is Empty),
// then appended to the metadata log as one meta.CommitOffsets. The state
// machine checks the generation again against the logged one, so a stale
// coordinator's commit is rejected with ILLEGAL_GENERATION even after it
// reached the log. The log's group commit puts concurrent commits in one
// entry. Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION,
// metadata over offset.metadata.max.bytes (4096) OFFSET_METADATA_TOO_LARGE.
// Retention (v2-4) is ignored: offsets live until their group or topic is
// deleted. v6: leader epoch; v7: group.instance.id; v8: flexible;
// v9: KIP-848 consumers (not served: they use ConsumerGroupHeartbeat).
// The check and the log submission run in phase one, in the connection's
// order (order.go): back-to-back commits reach the log in the order they
// were sent, so the newest offset wins.
func init() { register(8, 2, 9, routed(offsetCommitGroups, twoPhase(handleOffsetCommit))) }

const maxOffsetMetadataBytes = 4096 // offset.metadata.max.bytes

func handleOffsetCommit(ctx context.Context, s *Server, req *kmsg.OffsetCommitRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := make([][]int16, len(req.Topics)) // per request partition
	type ref struct{ t, p int }
	var refs []ref // request partition of each op offset
	op := meta.CommitOffsets{Group: req.Group, Generation: req.Generation, Member: req.MemberID}
	now := time.Now().UnixMilli()
	z := s.authzOf(ctx)
	groupDenied := !z.group(meta.OpRead, req.Group)
	s.log.View(func(st *meta.State) {
		for i, rt := range req.Topics {
			codes[i] = make([]int16, len(rt.Partitions))
			t := st.Topic(rt.Topic)
			topicDenied := !groupDenied && !z.topic(meta.OpRead, rt.Topic)
			for j, rp := range rt.Partitions {
				switch {
				case groupDenied:
					codes[i][j] = errGroupAuth.Code
				case topicDenied:
					codes[i][j] = errTopicAuth.Code
				case t == nil || t.Partition(rp.Partition) == nil:
					codes[i][j] = kerr.UnknownTopicOrPartition.Code
				case rp.Metadata != nil && len(*rp.Metadata) > maxOffsetMetadataBytes:
					codes[i][j] = kerr.OffsetMetadataTooLarge.Code
				default:
					op.Offsets = append(op.Offsets, meta.GroupOffset{Topic: t.ID, Partition: rp.Partition, Offset: rp.Offset,
						LeaderEpoch: rp.LeaderEpoch, Metadata: rp.Metadata, CommitMs: now})
					refs = append(refs, ref{i, j})
				}
			}
		}
	})
	if req.Version < 6 {
		for i := range op.Offsets {
			op.Offsets[i].LeaderEpoch = -1
		}
	}
	setAll := func(code int16) {
		for _, r := range refs {
			codes[r.t][r.p] = code
		}
	}
	var pending *meta.Pending
	if groupDenied {
		// Every partition has its code already.
	} else if req.Group == "" {
		setAll(kerr.InvalidGroupID.Code)
		for i := range codes {
			for j := range codes[i] {
				codes[i][j] = kerr.InvalidGroupID.Code
			}
		}
	} else if !s.coordinates(req.Group) {
		for i := range codes {
			for j := range codes[i] {
				codes[i][j] = kerr.NotCoordinator.Code
			}
		}
	} else if len(op.Offsets) > 0 {
		var code int16
		code, pending = s.groups.Commit(req, op)
		changed(ctx, pending)
		setAll(code)
	}
	return func() kmsg.Response {
		if pending != nil {
			res, err := pending.Wait(ctx)
			switch {
			case err != nil:
				setAll(errorCode(err))
			case res[0].Err != nil:
				setAll(groupErrorCode(res[0].Err))
			default:
				for k, e := range res[0].OffsetErrs {
					if e != nil {
						codes[refs[k].t][refs[k].p] = errorCode(e)
					}
				}
			}
		}
		for i, rt := range req.Topics {
			for j := range rt.Partitions {
				if codes[i][j] != 0 {
					s.cfg.Logger.Debug("offset commit refused", "group", req.Group, "member", req.MemberID,
						"generation", req.Generation, "topic", rt.Topic, "err", kerr.ErrorForCode(codes[i][j]))
				}
			}
			t := kmsg.NewOffsetCommitResponseTopic()
			t.Topic = rt.Topic
			for j, rp := range rt.Partitions {
				p := kmsg.NewOffsetCommitResponseTopicPartition()
				p.Partition, p.ErrorCode = rp.Partition, codes[i][j]
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp
	}
}

// groupErrorCode maps the state machine's group errors.
func groupErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, meta.ErrIllegalGeneration):
		return kerr.IllegalGeneration.Code
	case errors.Is(err, meta.ErrUnknownGroup):
		return kerr.GroupIDNotFound.Code
	}
	return errorCode(err)
}
