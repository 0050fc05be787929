package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// OffsetFetch, versions 1-9.
//
// Committed offsets come from the metadata log, so every agent answers the
// same and a restarted agent has them all. A partition without a commit,
// or of an unknown topic, gets offset -1 and no error, as in Kafka; no
// topics (v2+) means every committed offset of the group. RequireStable
// (v7): a partition an open transaction will commit an offset of answers
// UNSTABLE_OFFSET_COMMIT (clients retry until the transaction ends).
// A coordinator answers only after reading the log's tail (lag.go): it
// may have just become the group's coordinator, and the commits of the
// agent that was are in the log, not in its view. If it cannot read the
// tail, COORDINATOR_LOAD_IN_PROGRESS, as a Kafka coordinator still loading
// the group; clients retry. v2: all topics, top-level error; v5: leader
// epoch; v6: flexible;
// v8: several groups per request (KIP-709); v9: KIP-848 member epoch
// (ignored: classic groups only).
func init() {
	register(9, 1, 9, routedMany(offsetFetchGroups, offsetFetchSubset, offsetFetchMerge, deferred(handleOffsetFetch)))
}

func handleOffsetFetch(ctx context.Context, s *Server, req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	groups := req.Groups
	if req.Version < 8 {
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = req.Group
		if req.Topics != nil {
			g.Topics = make([]kmsg.OffsetFetchRequestGroupTopic, 0, len(req.Topics))
			for _, t := range req.Topics {
				g.Topics = append(g.Topics, kmsg.OffsetFetchRequestGroupTopic{Topic: t.Topic, Partitions: t.Partitions})
			}
		}
		groups = []kmsg.OffsetFetchRequestGroup{g}
	}
	mine := make([]bool, len(groups))
	coordinating := false
	for i, rg := range groups {
		mine[i] = s.coordinates(rg.Group)
		coordinating = coordinating || mine[i]
	}
	synced := coordinating && s.syncTail(ctx) // only a coordinator's answer needs the tail
	z := s.authzOf(ctx)
	s.log.View(func(st *meta.State) {
		for _, rg := range groups {
			resp.Groups = append(resp.Groups, fetchGroupOffsets(st, z, rg, req.RequireStable))
		}
	})
	for i := range resp.Groups {
		g := &resp.Groups[i]
		switch {
		case g.ErrorCode != 0:
		case !mine[i]:
			g.ErrorCode, g.Topics = kerr.NotCoordinator.Code, nil
		case !synced:
			g.ErrorCode, g.Topics = kerr.CoordinatorLoadInProgress.Code, nil
		}
	}
	if req.Version < 8 {
		g := resp.Groups[0]
		resp.Groups = nil
		resp.ErrorCode = g.ErrorCode
		for _, gt := range g.Topics {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = gt.Topic
			for _, gp := range gt.Partitions {
				t.Partitions = append(t.Partitions, kmsg.OffsetFetchResponseTopicPartition{Partition: gp.Partition,
					Offset: gp.Offset, LeaderEpoch: gp.LeaderEpoch, Metadata: gp.Metadata, ErrorCode: gp.ErrorCode})
			}
			resp.Topics = append(resp.Topics, t)
		}
	}
	return resp
}

func fetchGroupOffsets(st *meta.State, z authz, rg kmsg.OffsetFetchRequestGroup, requireStable bool) kmsg.OffsetFetchResponseGroup {
	g := kmsg.NewOffsetFetchResponseGroup()
	g.Group = rg.Group
	if rg.Group == "" {
		g.ErrorCode = kerr.InvalidGroupID.Code
		return g
	}
	if !z.group(meta.OpDescribe, rg.Group) {
		g.ErrorCode = errGroupAuth.Code
		return g
	}
	partition := func(o meta.GroupOffset, ok bool, p int32) kmsg.OffsetFetchResponseGroupTopicPartition {
		rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p, -1, -1, kmsg.StringPtr("")
		if ok {
			rp.Offset, rp.LeaderEpoch = o.Offset, o.LeaderEpoch
			if o.Metadata != nil {
				rp.Metadata = kmsg.StringPtr(*o.Metadata)
			}
		}
		return rp
	}
	if rg.Topics == nil { // every committed offset
		var cur *kmsg.OffsetFetchResponseGroupTopic
		for _, o := range st.CommittedOffsets(rg.Group) {
			t := st.TopicByID(o.Topic)
			if t == nil || !z.topic(meta.OpDescribe, t.Name) {
				continue // Kafka leaves out the topics the principal may not see
			}
			if cur == nil || cur.Topic != t.Name {
				g.Topics = append(g.Topics, kmsg.NewOffsetFetchResponseGroupTopic())
				cur = &g.Topics[len(g.Topics)-1]
				cur.Topic = t.Name
			}
			rp := partition(o, true, o.Partition)
			if requireStable && st.PendingTxnOffset(rg.Group, o.Topic, o.Partition) {
				rp.ErrorCode, rp.Offset = kerr.UnstableOffsetCommit.Code, -1
			}
			cur.Partitions = append(cur.Partitions, rp)
		}
		return g
	}
	for _, rt := range rg.Topics {
		t := kmsg.NewOffsetFetchResponseGroupTopic()
		t.Topic = rt.Topic
		mt := st.Topic(rt.Topic)
		denied := !z.topic(meta.OpDescribe, rt.Topic)
		for _, p := range rt.Partitions {
			var o meta.GroupOffset
			ok := false
			if mt != nil && !denied {
				o, ok = st.CommittedOffset(rg.Group, mt.ID, p)
			}
			rp := partition(o, ok, p)
			switch {
			case denied:
				rp.ErrorCode = errTopicAuth.Code
			case requireStable && mt != nil && st.PendingTxnOffset(rg.Group, mt.ID, p):
				rp.ErrorCode, rp.Offset = kerr.UnstableOffsetCommit.Code, -1
			}
			t.Partitions = append(t.Partitions, rp)
		}
		g.Topics = append(g.Topics, t)
	}
	return g
}
