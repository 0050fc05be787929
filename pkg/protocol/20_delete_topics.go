package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// DeleteTopics, versions 1-6. The topics leave the metadata at once; their
// bytes stay in segment objects shared with other partitions until the
// collector removes objects nothing refers to. Submitted in phase one, in
// the connection's order (order.go). v4: flexible; v6: by id.
func init() { register(20, 1, 6, twoPhase(handleDeleteTopics)) }

func handleDeleteTopics(ctx context.Context, s *Server, req *kmsg.DeleteTopicsRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	reqs := req.Topics
	for _, n := range req.TopicNames { // v0-5 name topics in a plain list
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = strp(n)
		reqs = append(reqs, rt)
	}
	var ops []meta.Op
	var opIndex []int
	z := s.authzOf(ctx)
	s.log.View(func(st *meta.State) {
		for i, rt := range reqs {
			t := kmsg.NewDeleteTopicsResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			var topic *meta.Topic
			if rt.Topic != nil {
				topic = st.Topic(*rt.Topic)
			} else {
				topic = st.TopicByID(meta.TopicID(rt.TopicID))
			}
			switch {
			case (topic != nil || rt.Topic != nil) && !z.topic(meta.OpDelete, topicName(topic, rt.Topic)):
				t.ErrorCode = errTopicAuth.Code
				if rt.Topic == nil {
					t.TopicID = [16]byte{}
				}
			case topic != nil && topic.Internal():
				t.Topic, t.TopicID = strp(topic.Name), topic.ID
				t.ErrorCode, t.ErrorMessage = internalTopic(topic.Name)
			case topic != nil:
				t.Topic, t.TopicID = strp(topic.Name), topic.ID
				ops = append(ops, meta.DeleteTopic{ID: topic.ID})
				opIndex = append(opIndex, i)
			case rt.Topic == nil:
				t.ErrorCode = kerr.UnknownTopicID.Code
			default:
				t.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			resp.Topics = append(resp.Topics, t)
		}
	})
	return whenApplied(ctx, s.submit(ctx, ops...), len(ops), resp, func(k int, err error) {
		t := &resp.Topics[opIndex[k]]
		t.ErrorCode, t.ErrorMessage = errorCode(err), strp(err.Error())
	})
}
