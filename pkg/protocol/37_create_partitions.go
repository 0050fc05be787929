package protocol

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// CreatePartitions, versions 0-3. Partitions can be added, never removed:
// a count not above the current one is INVALID_PARTITIONS, as in Kafka.
// Manual assignments are accepted and ignored (any agent serves any
// partition). Submitted in phase one, in the connection's order
// (order.go), so the connection's next request sees the new partitions.
// v2: flexible.
func init() { register(37, 0, 3, twoPhase(handleCreatePartitions)) }

func handleCreatePartitions(ctx context.Context, s *Server, req *kmsg.CreatePartitionsRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	var ops []meta.Op
	var opIndex []int
	added := 0
	z := s.authzOf(ctx)
	s.log.View(func(st *meta.State) {
		for i, rt := range req.Topics {
			t := kmsg.NewCreatePartitionsResponseTopic()
			t.Topic = rt.Topic
			topic := st.Topic(rt.Topic)
			switch {
			case !z.topic(meta.OpAlter, rt.Topic):
				t.ErrorCode = errTopicAuth.Code
			case topic == nil:
				t.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case topic.Internal():
				t.ErrorCode, t.ErrorMessage = internalTopic(topic.Name)
			case rt.Count < int32(len(topic.Partitions)):
				t.ErrorCode = kerr.InvalidPartitions.Code
				t.ErrorMessage = strp(fmt.Sprintf("Topic currently has %d partitions, which is higher than the requested %d.", len(topic.Partitions), rt.Count))
			case rt.Count == int32(len(topic.Partitions)):
				t.ErrorCode = kerr.InvalidPartitions.Code
				t.ErrorMessage = strp(fmt.Sprintf("Topic already has %d partitions.", rt.Count))
			case rt.Assignment != nil && len(rt.Assignment) != int(rt.Count)-len(topic.Partitions):
				t.ErrorCode = kerr.InvalidReplicaAssignment.Code
				t.ErrorMessage = strp("Increasing the number of partitions needs an assignment for each new partition.")
			default:
				if err := s.checkPartitionLimits(st, int32(len(topic.Partitions)), rt.Count, added); err != nil {
					t.ErrorCode, t.ErrorMessage = err.code, strp(err.msg)
					break
				}
				added += int(rt.Count) - len(topic.Partitions)
				if !req.ValidateOnly {
					ops = append(ops, meta.CreatePartitions{ID: topic.ID, Count: rt.Count})
					opIndex = append(opIndex, i)
				}
			}
			resp.Topics = append(resp.Topics, t)
		}
	})
	return whenApplied(ctx, s.submit(ctx, ops...), len(ops), resp, func(k int, err error) {
		t := &resp.Topics[opIndex[k]]
		t.ErrorCode, t.ErrorMessage = errorCode(err), strp(err.Error())
	})
}
