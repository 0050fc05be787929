package protocol

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/bargehq/barge/pkg/meta"
)

// Partition limits are this agent's policy (--max-partitions-per-topic,
// --max-partitions), checked before a topic is created or grown, inside
// the state machine's hard bounds (meta/bounds.go), which refuse whatever
// gets past a misconfigured agent. Kafka has no per-topic limit, but since
// 4.0 refuses more than 10,000 partitions in one request (KAFKA-17870);
// the cluster-wide one is KIP-578's max.partitions, defaulting to the
// 200,000 partitions a cluster is advised to stay under.
const (
	DefaultMaxPartitionsPerTopic = 10_000
	DefaultMaxPartitions         = 200_000
)

// checkPartitionLimits checks that a topic may go from have to want
// partitions, added being what earlier topics of the same request add.
func (s *Server) checkPartitionLimits(st *meta.State, have, want int32, added int) *codedError {
	if want > s.cfg.MaxPartitionsPerTopic {
		return &codedError{kerr.InvalidPartitions.Code, fmt.Sprintf("Number of partitions %d exceeds the limit of %d partitions per topic (--max-partitions-per-topic).", want, s.cfg.MaxPartitionsPerTopic)}
	}
	if total := st.Partitions() - st.InternalPartitions() + added + int(want-have); total > s.cfg.MaxPartitions {
		return &codedError{kerr.PolicyViolation.Code, fmt.Sprintf("Adding %d partitions would take the cluster to %d, over its limit of %d (--max-partitions).", want-have, total, s.cfg.MaxPartitions)}
	}
	return nil
}
