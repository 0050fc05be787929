package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// OffsetForLeaderEpoch, versions 2-4. Leadership never moves data here, so
// every partition has had one leader epoch, 0, since offset 0: the end
// offset of epoch 0 is the high watermark. A client asking about a later
// epoch than ours gets UNDEFINED (-1, -1); one whose current epoch is newer
// than ours gets UNKNOWN_LEADER_EPOCH, as from a lagging Kafka leader.
// The high watermark is read after the log's tail (lag.go): an end offset
// below the client's position reads as truncation; if the tail cannot be
// read, KAFKA_STORAGE_ERROR, which clients retry. v4: flexible.
func init() { register(23, 2, 4, deferred(handleOffsetForLeaderEpoch)) }

func handleOffsetForLeaderEpoch(ctx context.Context, s *Server, req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	synced := s.syncTail(ctx)
	s.log.View(func(st *meta.State) {
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
				case !synced:
					p.ErrorCode = kerr.KafkaStorageError.Code
				case part == nil:
					p.ErrorCode = kerr.UnknownTopicOrPartition.Code
				case rp.CurrentLeaderEpoch > 0:
					p.ErrorCode = kerr.UnknownLeaderEpoch.Code
				case rp.LeaderEpoch == 0:
					p.LeaderEpoch, p.EndOffset = 0, part.HighWatermark
				}
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
	})
	return resp
}
