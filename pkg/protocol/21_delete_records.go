package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// DeleteRecords, versions 0-2. Moves each partition's log start offset up
// to the given offset (-1: the high watermark) and answers the log start
// after it as the low watermark; an offset past the high watermark (or
// below -1) is OFFSET_OUT_OF_RANGE, one at or below the log start changes
// nothing, and a topic whose cleanup.policy lacks delete answers
// POLICY_VIOLATION, as in Kafka. Fetches below the new start answer OFFSET_OUT_OF_RANGE; the
// objects whose data all lies below it are deleted later by the collector.
// All partitions of one request are written in one log entry, submitted in
// phase one in the connection's order (order.go). v2: flexible.
func init() { register(21, 0, 2, twoPhase(handleDeleteRecords)) }

func handleDeleteRecords(ctx context.Context, s *Server, req *kmsg.DeleteRecordsRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	var ops []meta.Op
	var at []*kmsg.DeleteRecordsResponseTopicPartition
	resp.Topics = make([]kmsg.DeleteRecordsResponseTopic, len(req.Topics))
	z := s.authzOf(ctx)
	s.log.View(func(st *meta.State) {
		for i, rt := range req.Topics {
			t := &resp.Topics[i]
			*t = kmsg.NewDeleteRecordsResponseTopic()
			t.Topic = rt.Topic
			topic := st.Topic(rt.Topic)
			denied := !z.topic(meta.OpDelete, rt.Topic)
			t.Partitions = make([]kmsg.DeleteRecordsResponseTopicPartition, len(rt.Partitions))
			for j, rp := range rt.Partitions {
				p := &t.Partitions[j]
				*p = kmsg.NewDeleteRecordsResponseTopicPartition()
				p.Partition, p.LowWatermark = rp.Partition, -1
				var part *meta.Partition
				if topic != nil {
					part = topic.Partition(rp.Partition)
				}
				if denied {
					p.ErrorCode = errTopicAuth.Code
					continue
				}
				if part == nil {
					p.ErrorCode = kerr.UnknownTopicOrPartition.Code
					continue
				}
				if topic.Internal() {
					p.ErrorCode, _ = internalTopic(topic.Name)
					continue
				}
				if !topic.Deletes() {
					p.ErrorCode = kerr.PolicyViolation.Code // as Kafka, for compacted topics
					continue
				}
				offset := rp.Offset
				if offset == -1 {
					offset = part.HighWatermark
				}
				if offset < 0 || offset > part.HighWatermark {
					p.ErrorCode = kerr.OffsetOutOfRange.Code
					continue
				}
				ops = append(ops, meta.AdvanceLogStart{Topic: topic.ID, Partition: rp.Partition, Offset: offset})
				at = append(at, p)
			}
		}
	})
	pending := s.submit(ctx, ops...)
	return func() kmsg.Response {
		settle(ctx, pending, len(ops), func(k int, res meta.Result, err error) {
			if err != nil {
				at[k].ErrorCode = errorCode(err)
			} else {
				at[k].LowWatermark = res.LogStart
			}
		})
		return resp
	}
}
