package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// SyncGroup, versions 0-5.
//
// Followers wait for the leader's SyncGroup; the leader's assignments go
// to every member once the new generation is appended to the metadata log
// (meta.GroupGeneration), so offsets committed in it can be checked there.
// A member that syncs after that gets its assignment at once. Errors:
// UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS (a member
// joined or left meanwhile: rejoin), FENCED_INSTANCE_ID,
// INCONSISTENT_GROUP_PROTOCOL (v5: protocol type or name differ), and
// COORDINATOR_NOT_AVAILABLE when the log append failed.
// v3: group.instance.id; v4: flexible; v5: protocol type and name.
func init() { register(14, 0, 5, routed(syncGroups, twoPhase(handleSyncGroup))) }

// handleSyncGroup changes the group in phase one, in the connection's
// order, and waits for the leader's assignment and the generation's log
// entry in phase two.
func handleSyncGroup(ctx context.Context, s *Server, req *kmsg.SyncGroupRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if !s.authzOf(ctx).group(meta.OpRead, req.Group) {
		resp.ErrorCode = errGroupAuth.Code
		return func() kmsg.Response { return resp }
	}
	if req.Group != "" && !s.coordinates(req.Group) {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return func() kmsg.Response { return resp }
	}
	sync := s.groups.Sync(req)
	return func() kmsg.Response { return sync.Answer(ctx) }
}
