package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// LeaveGroup, versions 0-5.
//
// Removes members and rebalances the rest. v3+ batches members, each by
// member id or group.instance.id (KIP-345), with an error per member:
// UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID when both are given and do not
// match. v4: flexible; v5: reason.
func init() { register(13, 0, 5, routed(leaveGroups, twoPhase(handleLeaveGroup))) }

// handleLeaveGroup runs whole in phase one, in the connection's order: it
// only touches the group in memory.
func handleLeaveGroup(ctx context.Context, s *Server, req *kmsg.LeaveGroupRequest) func() kmsg.Response {
	resp := leave(ctx, s, req)
	return func() kmsg.Response { return resp }
}

func leave(ctx context.Context, s *Server, req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	members := req.Members
	if req.Version < 3 {
		members = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	if !s.authzOf(ctx).group(meta.OpRead, req.Group) {
		resp.ErrorCode = errGroupAuth.Code
		return resp
	}
	if req.Group != "" && !s.coordinates(req.Group) {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	}
	code, codes := s.groups.Leave(req.Group, members)
	resp.ErrorCode = code
	if req.Version < 3 {
		if code == 0 {
			resp.ErrorCode = codes[0]
		}
		return resp
	}
	if code != 0 {
		return resp
	}
	for i, m := range members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, codes[i]
		resp.Members = append(resp.Members, rm)
	}
	return resp
}
