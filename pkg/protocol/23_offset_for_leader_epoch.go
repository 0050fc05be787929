package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// OffsetForLeaderEpoch, versions 2-4. Leadership never moves data here, so
// no leader change ever truncates a partition: every batch is stamped with
// leader epoch 0 (pkg/tiered), and epoch 0 runs from offset 0 to the high
// watermark. A client asking about any epoch is told epoch 0 ends at the
// high watermark, which is never below its position, so it never sees
// truncation: even about an epoch above this agent's (a client may have
// it from a newer agent while its current epoch matches this lagging one),
// where Kafka would answer UNDEFINED and the client reset its offset. The
// request's CurrentLeaderEpoch is checked as Fetch checks it
// (checkLeaderEpoch). The high watermark is read after the log's tail
// (lag.go): an end offset below the client's position reads as
// truncation; if the tail cannot be read, KAFKA_STORAGE_ERROR, which
// clients retry. v4: flexible.
func init() { register(23, 2, 4, deferred(handleOffsetForLeaderEpoch)) }

func handleOffsetForLeaderEpoch(ctx context.Context, s *Server, req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	synced := s.syncTail(ctx)
	z := s.authzOf(ctx)
	s.log.View(func(st *meta.State) {
		epoch := s.fleet.Epoch(st)
		for _, rt := range req.Topics {
			t := kmsg.NewOffsetForLeaderEpochResponseTopic()
			t.Topic = rt.Topic
			topic := st.Topic(rt.Topic)
			for _, rp := range rt.Partitions {
				p := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				p.Partition = rp.Partition
				p.LeaderEpoch, p.EndOffset = -1, -1
				var part *meta.Partition
				if topic != nil {
					part = topic.Partition(rp.Partition)
				}
				switch {
				case !z.topic(meta.OpDescribe, rt.Topic):
					p.ErrorCode = errTopicAuth.Code
				case !synced:
					p.ErrorCode = kerr.KafkaStorageError.Code
				case part == nil:
					p.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case checkLeaderEpoch(rp.CurrentLeaderEpoch, epoch) != 0:
					p.ErrorCode = checkLeaderEpoch(rp.CurrentLeaderEpoch, epoch)
				case rp.LeaderEpoch >= 0:
					p.LeaderEpoch, p.EndOffset = 0, part.HighWatermark
				}
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
	})
	return resp
}
