package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// OffsetDelete, version 0 (KIP-496).
//
// Deletes committed offsets of a group. A group with members refuses the
// partitions of topics its members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC,
// consumer groups) or all of them (NON_EMPTY_GROUP, other protocol types).
// GROUP_ID_NOT_FOUND for an unknown group, INVALID_GROUP_ID for an empty
// id, UNKNOWN_TOPIC_OR_PARTITION per partition of an unknown topic.
// Submitted in phase one, in the connection's order (order.go).
func init() { register(47, 0, 0, routed(offsetDeleteGroups, twoPhase(handleOffsetDelete))) }

func handleOffsetDelete(ctx context.Context, s *Server, req *kmsg.OffsetDeleteRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	answer := func() kmsg.Response { return resp }
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return answer
	}
	z := s.authzOf(ctx)
	if !z.group(meta.OpDelete, req.Group) {
		resp.ErrorCode = errGroupAuth.Code
		return answer
	}
	if !s.coordinates(req.Group) {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return answer
	}
	v, ok := s.groups.View(req.Group)
	switch {
	case !ok:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return answer
	case v.Subscribed != nil && v.ProtocolType != "consumer":
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return answer
	}
	op := meta.DeleteOffsets{Group: req.Group}
	s.log.View(func(st *meta.State) {
		for _, rt := range req.Topics {
			t := kmsg.NewOffsetDeleteResponseTopic()
			t.Topic = rt.Topic
			mt := st.Topic(rt.Topic)
			for _, rp := range rt.Partitions {
				p := kmsg.NewOffsetDeleteResponseTopicPartition()
				p.Partition = rp.Partition
				switch {
				case !z.topic(meta.OpRead, rt.Topic):
					p.ErrorCode = errTopicAuth.Code
				case mt == nil || mt.Partition(rp.Partition) == nil:
					p.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case v.Subscribed[rt.Topic]:
					p.ErrorCode = kerr.GroupSubscribedToTopic.Code
				default:
					op.Partitions = append(op.Partitions, meta.GroupPartition{Topic: mt.ID, Partition: rp.Partition})
				}
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
	})
	var ops []meta.Op
	if len(op.Partitions) > 0 {
		ops = append(ops, op)
	}
	return whenApplied(ctx, s.submit(ctx, ops...), len(ops), resp, func(_ int, err error) {
		resp.ErrorCode = groupErrorCode(err)
		resp.Topics = nil
	})
}
