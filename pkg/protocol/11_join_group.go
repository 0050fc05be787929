package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"

	"github.com/bargehq/barge/pkg/groups"
)

// JoinGroup, versions 0-9 (pkg/groups has the coordinator).
//
// A new dynamic member on v4+ gets MEMBER_ID_REQUIRED with its member id
// and joins with it (KIP-394). The answer waits until the join phase
// completes: every member rejoined, or the rebalance timeout passed (those
// that did not rejoin are removed), or for the first members of an empty
// group group.initial.rebalance.delay (--group-initial-rebalance-delay).
// The leader's answer lists the members and their metadata for the
// selected protocol. A restarted static member (v5+, KIP-345) takes its
// instance's place without a rebalance while the group is Stable and still
// supports the selected protocol; as leader it gets SkipAssignment (v9,
// KIP-814), before v9 a leader's restart rebalances.
//
// Errors: INVALID_GROUP_ID (empty id), INVALID_SESSION_TIMEOUT (outside
// 6 s-30 min, Kafka's group.min/max.session.timeout.ms),
// INCONSISTENT_GROUP_PROTOCOL (no protocol type or protocols, another type,
// or no protocol in common), INVALID_REQUEST (protocol metadata over
// 1 MiB), UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID.
// v1: rebalance timeout; v5: group.instance.id; v6: flexible; v7: protocol
// type in the answer; v8: reason; v9: SkipAssignment.
func init() { register(11, 0, 9, routed(joinGroups, twoPhase(handleJoinGroup))) }

// handleJoinGroup changes the group in phase one, in the connection's
// order (a LeaveGroup then a JoinGroup of one static member on one
// connection take effect in that order), and waits for the rebalance in
// phase two.
func handleJoinGroup(ctx context.Context, s *Server, req *kmsg.JoinGroupRequest) func() kmsg.Response {
	if !s.authzOf(ctx).group(meta.OpRead, req.Group) {
		resp := groups.JoinError(req, errGroupAuth.Code)
		return func() kmsg.Response { return resp }
	}
	if req.Group != "" && !s.coordinates(req.Group) {
		resp := groups.JoinError(req, kerr.NotCoordinator.Code)
		return func() kmsg.Response { return resp }
	}
	j := s.groups.Join(req, clientOf(ctx))
	return func() kmsg.Response {
		resp := j.Answer(ctx)
		resp.Version = req.Version
		return resp
	}
}
