package protocol

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// CreateTopics, versions 2-7.
//
// Names follow Kafka's rules; NumPartitions and ReplicationFactor of -1
// take the broker defaults (num.partitions, default.replication.factor).
// Any positive replication factor is accepted and reported back as given:
// durability comes from the bucket, not from replicas. A manual replica
// assignment fixes the partition count and replication factor. Every valid
// topic of the request is created by one log entry. v5: the answer carries
// the configs; v5+: flexible; v7: topic ids. Checked and submitted in
// phase one, in the connection's order (order.go).
func init() { register(19, 2, 7, twoPhase(handleCreateTopics)) }

func handleCreateTopics(ctx context.Context, s *Server, req *kmsg.CreateTopicsRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	resp.Topics = make([]kmsg.CreateTopicsResponseTopic, len(req.Topics))
	var ops []meta.Op
	var opIndex []int // response index of each op
	seen := map[string]int{}
	added := 0 // partitions the request's earlier topics add
	// Kafka's rule: CREATE on the cluster, or on each topic.
	z := s.authzOf(ctx)
	anyTopic := z.cluster(meta.OpCreate)
	s.log.View(func(st *meta.State) {
		for i, rt := range req.Topics {
			t := &resp.Topics[i]
			*t = kmsg.NewCreateTopicsResponseTopic()
			t.Topic = rt.Topic
			seen[rt.Topic]++
			if !anyTopic && !z.topic(meta.OpCreate, rt.Topic) {
				t.ErrorCode, t.ErrorMessage = errTopicAuth.Code, strp("Authorization failed.")
				continue
			}
			op, err := s.checkNewTopic(st, rt, added)
			switch {
			case seen[rt.Topic] > 1:
				t.ErrorCode, t.ErrorMessage = kerr.InvalidRequest.Code, strp("topic named more than once in the request")
			case err != nil:
				t.ErrorCode, t.ErrorMessage = err.code, strp(err.msg)
			default:
				t.NumPartitions, t.ReplicationFactor, t.TopicID = op.Partitions, op.ReplicationFactor, op.ID
				added += int(op.Partitions)
				if z.topic(meta.OpDescribeConfigs, rt.Topic) {
					t.Configs = describeNewTopicConfigs(op.Configs)
				} else {
					t.ConfigErrorCode = errTopicAuth.Code
				}
				if !req.ValidateOnly {
					ops = append(ops, op)
					opIndex = append(opIndex, i)
				}
			}
		}
	})
	return whenApplied(ctx, s.submit(ctx, ops...), len(ops), resp, func(k int, err error) {
		t := &resp.Topics[opIndex[k]]
		t.ErrorCode, t.ErrorMessage = errorCode(err), strp(err.Error())
		t.NumPartitions, t.ReplicationFactor, t.Configs = -1, -1, nil
		if t.ErrorCode == kerr.TopicAlreadyExists.Code {
			t.ErrorMessage = strp(fmt.Sprintf("Topic '%s' already exists.", t.Topic))
		}
	})
}

type codedError struct {
	code int16
	msg  string
}

func (s *Server) checkNewTopic(st *meta.State, rt kmsg.CreateTopicsRequestTopic, added int) (meta.CreateTopic, *codedError) {
	op := meta.CreateTopic{Name: rt.Topic, ID: meta.TopicID(uuid.New()), Partitions: rt.NumPartitions, ReplicationFactor: rt.ReplicationFactor}
	if err := validateTopicName(rt.Topic); err != nil {
		return op, &codedError{kerr.InvalidTopicException.Code, err.Error()}
	}
	if st.Topic(rt.Topic) != nil {
		return op, &codedError{kerr.TopicAlreadyExists.Code, fmt.Sprintf("Topic '%s' already exists.", rt.Topic)}
	}
	if other := collides(st, rt.Topic); other != "" {
		return op, &codedError{kerr.InvalidTopicException.Code, fmt.Sprintf("Topic '%s' collides with existing topic: %s", rt.Topic, other)}
	}
	if len(rt.ReplicaAssignment) > 0 {
		if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
			return op, &codedError{kerr.InvalidRequest.Code, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time."}
		}
		op.Partitions = int32(len(rt.ReplicaAssignment))
		op.ReplicationFactor = int16(len(rt.ReplicaAssignment[0].Replicas))
	}
	if op.Partitions == -1 {
		op.Partitions = s.cfg.DefaultPartitions
	}
	if op.ReplicationFactor == -1 {
		op.ReplicationFactor = s.cfg.DefaultReplicas
	}
	if op.Partitions <= 0 {
		return op, &codedError{kerr.InvalidPartitions.Code, "Number of partitions must be larger than 0."}
	}
	if op.ReplicationFactor <= 0 {
		return op, &codedError{kerr.InvalidReplicationFactor.Code, "Replication factor must be larger than 0."}
	}
	if err := s.checkPartitionLimits(st, 0, op.Partitions, added); err != nil {
		return op, err
	}
	if len(rt.Configs) > len(meta.TopicConfigs) {
		return op, &codedError{kerr.InvalidConfig.Code, fmt.Sprintf("%d configs given; a topic has %d.", len(rt.Configs), len(meta.TopicConfigs))}
	}
	for _, c := range rt.Configs {
		if c.Value == nil {
			return op, &codedError{kerr.InvalidConfig.Code, fmt.Sprintf("Null value not supported for topic configs: %s", c.Name)}
		}
		if err := meta.ValidateTopicConfig(c.Name, *c.Value); err != nil {
			return op, &codedError{kerr.InvalidConfig.Code, err.Error()}
		}
		if op.Configs == nil {
			op.Configs = map[string]string{}
		}
		op.Configs[c.Name] = *c.Value
	}
	return op, nil
}

// describeNewTopicConfigs lists every topic config with the value the new
// topic will have, as Kafka does in CreateTopics v5+.
func describeNewTopicConfigs(set map[string]string) []kmsg.CreateTopicsResponseTopicConfig {
	out := make([]kmsg.CreateTopicsResponseTopicConfig, 0, len(meta.TopicConfigs))
	for _, c := range meta.TopicConfigs {
		rc := kmsg.NewCreateTopicsResponseTopicConfig()
		rc.Name = c.Name
		rc.Value = strp(c.Default)
		rc.Source = int8(kmsg.ConfigSourceDefaultConfig)
		if v, ok := set[c.Name]; ok {
			rc.Value = strp(v)
			rc.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
		}
		out = append(out, rc)
	}
	return out
}
