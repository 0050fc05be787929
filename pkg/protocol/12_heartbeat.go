package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// Heartbeat, versions 0-4.
//
// Restarts the member's session timer. REBALANCE_IN_PROGRESS tells a
// member to rejoin; UNKNOWN_MEMBER_ID (session expired, left, or the agent
// restarted), ILLEGAL_GENERATION and FENCED_INSTANCE_ID as in Kafka.
// v3: group.instance.id; v4: flexible.
func init() { register(12, 0, 4, routed(heartbeatGroups, twoPhase(handleHeartbeat))) }

// handleHeartbeat runs whole in phase one, in the connection's order: it
// only touches the group in memory.
func handleHeartbeat(ctx context.Context, s *Server, req *kmsg.HeartbeatRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if !s.authzOf(ctx).group(meta.OpRead, req.Group) {
		resp.ErrorCode = errGroupAuth.Code
	} else if req.Group != "" && !s.coordinates(req.Group) {
		resp.ErrorCode = kerr.NotCoordinator.Code
	} else {
		resp.ErrorCode = s.groups.Heartbeat(req)
	}
	return func() kmsg.Response { return resp }
}
