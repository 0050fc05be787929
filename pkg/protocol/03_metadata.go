package protocol

import (
	"context"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/fleet"
	"github.com/bargehq/barge/pkg/meta"
)

// Metadata, versions 1-12.
//
// The brokers are the live agents (cluster.go). Every agent can serve every
// partition, so each answers as the leader of all of them, with leader
// epoch 0: a client stays on the agent it asked. Unknown topics are created with the
// broker defaults when auto-creation is on (--auto-create-topics) and the
// request allows it (v4+: AllowAutoTopicCreation); the creation is
// submitted in phase one, in the connection's order (order.go), so a
// Produce sent right after finds the topic. v10+: topic ids; v12: a
// request may name topics by id only.
func init() { register(3, 1, 12, twoPhase(handleMetadata)) }

func handleMetadata(ctx context.Context, s *Server, req *kmsg.MetadataRequest) func() kmsg.Response {
	var created *meta.Pending
	z := s.authzOf(ctx)
	autoCreate := req.Topics != nil && s.cfg.AutoCreateTopics && (req.AllowAutoTopicCreation || req.Version < 4)
	if autoCreate {
		created = s.autoCreate(ctx, z, req.Topics)
	}
	return func() kmsg.Response {
		if created != nil {
			if _, err := created.Wait(ctx); err != nil {
				s.cfg.Logger.Warn("auto-creating topics", "err", err)
			}
		}
		return s.metadata(req, z, autoCreate, fleet.ClientZone(clientOf(ctx).ID))
	}
}

// metadata answers from the state as it is now.
// A client that names its zone (fleet.ClientZone) is given leaders in it.
// Topics the principal may not DESCRIBE are left out of an all-topics
// answer and answered TOPIC_AUTHORIZATION_FAILED when named, existing or
// not, as Kafka does; so is an unknown one the request would have created
// but the principal may not CREATE.
func (s *Server) metadata(req *kmsg.MetadataRequest, z authz, autoCreate bool, zone string) *kmsg.MetadataResponse {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	all := s.fleet.Placement() // before View, which Live takes itself
	brokers := all.Brokers()
	for _, br := range brokers {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port, b.Rack = br.NodeID, br.Host, br.Port, rack(br.Zone)
		resp.Brokers = append(resp.Brokers, b)
	}
	resp.ClusterID = strp(s.cfg.ClusterID)
	resp.ControllerID = brokers[0].NodeID
	place := all.InZone(zone)
	resp.AuthorizedOperations = notRequested
	if req.IncludeClusterAuthorizedOperations && req.Version <= 10 {
		resp.AuthorizedOperations = z.clusterOps()
	}
	mayCreate := z.cluster(meta.OpCreate)
	describe := func(t *meta.Topic) kmsg.MetadataResponseTopic {
		mt := describeTopic(place, t)
		mt.AuthorizedOperations = notRequested
		if req.IncludeTopicAuthorizedOperations {
			mt.AuthorizedOperations = z.ops(meta.ResourceTopic, t.Name)
		}
		return mt
	}
	s.log.View(func(st *meta.State) {
		if req.Topics == nil {
			for _, name := range st.TopicNames() {
				if z.topic(meta.OpDescribe, name) {
					resp.Topics = append(resp.Topics, describe(st.Topic(name)))
				}
			}
			return
		}
		for _, rt := range req.Topics {
			var t *meta.Topic
			switch {
			case rt.Topic != nil:
				t = st.Topic(*rt.Topic)
			default:
				t = st.TopicByID(meta.TopicID(rt.TopicID))
			}
			if t != nil && z.topic(meta.OpDescribe, t.Name) {
				resp.Topics = append(resp.Topics, describe(t))
				continue
			}
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
			mt.AuthorizedOperations = notRequested
			if (t != nil || rt.Topic != nil) && (!z.topic(meta.OpDescribe, topicName(t, rt.Topic)) ||
				t == nil && autoCreate && !mayCreate && !z.topic(meta.OpCreate, *rt.Topic)) {
				mt.ErrorCode = errTopicAuth.Code
				if rt.Topic == nil {
					mt.TopicID = [16]byte{} // Kafka does not confirm an id
				}
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if rt.Topic == nil {
				mt.ErrorCode = kerr.UnknownTopicID.Code
			} else if validateTopicName(*rt.Topic) != nil {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, mt)
		}
	})
	return resp
}

// describeTopic names each partition's leader by the fleet's placement;
// the bucket is the only replica, so the leader is the one replica and in
// sync.
func describeTopic(place fleet.Placement, t *meta.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = strp(t.Name)
	mt.TopicID = t.ID
	mt.IsInternal = t.Internal()
	for i := range t.Partitions {
		p := kmsg.NewMetadataResponseTopicPartition()
		p.Partition = int32(i)
		leader := place.Leader(t.ID, int32(i)).NodeID
		p.Leader = leader
		p.LeaderEpoch = place.Epoch
		p.Replicas = []int32{leader}
		p.ISR = []int32{leader}
		mt.Partitions = append(mt.Partitions, p)
	}
	return mt
}

// autoCreate submits the creation of the valid, unknown topics of a
// metadata request as one log entry (nil: none to create). Losing a race to
// another agent is fine: the topic exists.
func (s *Server) autoCreate(ctx context.Context, z authz, topics []kmsg.MetadataRequestTopic) *meta.Pending {
	var ops []meta.Op
	anyTopic := z.cluster(meta.OpCreate)
	s.log.View(func(st *meta.State) {
		seen := map[string]bool{}
		added := 0
		for _, rt := range topics {
			if rt.Topic == nil || seen[*rt.Topic] || st.Topic(*rt.Topic) != nil {
				continue
			}
			name := *rt.Topic
			seen[name] = true
			if !z.topic(meta.OpDescribe, name) || !anyTopic && !z.topic(meta.OpCreate, name) {
				continue // answered TOPIC_AUTHORIZATION_FAILED (metadata)
			}
			if validateTopicName(name) != nil || collides(st, name) != "" || s.checkPartitionLimits(st, 0, s.cfg.DefaultPartitions, added) != nil {
				continue
			}
			added += int(s.cfg.DefaultPartitions)
			ops = append(ops, meta.CreateTopic{Name: name, ID: meta.TopicID(uuid.New()),
				Partitions: s.cfg.DefaultPartitions, ReplicationFactor: s.cfg.DefaultReplicas})
		}
	})
	return s.submit(ctx, ops...)
}

// topicName is a known topic's name, else the requested one.
func topicName(t *meta.Topic, requested *string) string {
	if t != nil {
		return t.Name
	}
	return *requested
}
