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
func init() { register(47, 0, 0, deferred(handleOffsetDelete)) }

func handleOffsetDelete(ctx context.Context, s *Server, req *kmsg.OffsetDeleteRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	if !s.coordinates(req.Group) {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	v, ok := s.groups.view(req.Group)
	switch {
	case !ok:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	case v.subscribed != nil && v.protocolType != "consumer":
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return resp
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
				case mt == nil || mt.Partition(rp.Partition) == nil:
					p.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case v.subscribed[rt.Topic]:
					p.ErrorCode = kerr.GroupSubscribedToTopic.Code
				default:
					op.Partitions = append(op.Partitions, meta.GroupPartition{Topic: mt.ID, Partition: rp.Partition})
				}
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
	})
	if len(op.Partitions) > 0 {
		res, err := s.log.Append(ctx, op)
		if err == nil {
			err = res[0].Err
		}
		if err != nil {
			resp.ErrorCode = groupErrorCode(err)
			resp.Topics = nil
		}
	}
	return resp
}
