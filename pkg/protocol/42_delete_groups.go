package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// DeleteGroups, versions 0-2.
//
// Deletes empty groups with their committed offsets (one meta.DeleteGroups
// entry for the request). NON_EMPTY_GROUP while a group has members,
// GROUP_ID_NOT_FOUND for a group neither in memory nor in the log,
// INVALID_GROUP_ID for an empty id. Submitted in phase one, in the
// connection's order (order.go). v2: flexible.
func init() {
	register(42, 0, 2, routedMany(deleteGroupsGroups, deleteGroupsSubset, deleteGroupsMerge, twoPhase(handleDeleteGroups)))
}

func handleDeleteGroups(ctx context.Context, s *Server, req *kmsg.DeleteGroupsRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	var op meta.DeleteGroups
	var idx []int
	seen := map[string]bool{}
	z := s.authzOf(ctx)
	for _, name := range req.Groups {
		g := kmsg.NewDeleteGroupsResponseGroup()
		g.Group = name
		if name == "" {
			g.ErrorCode = kerr.InvalidGroupID.Code
		} else if !z.group(meta.OpDelete, name) {
			g.ErrorCode = errGroupAuth.Code
		} else if !s.coordinates(name) {
			g.ErrorCode = kerr.NotCoordinator.Code
		} else if seen[name] {
			g.ErrorCode = kerr.GroupIDNotFound.Code // deleted just before, in this request
		} else {
			seen[name] = true
			if g.ErrorCode = s.groups.Remove(name); g.ErrorCode == 0 {
				op.Groups = append(op.Groups, name)
				idx = append(idx, len(resp.Groups))
			}
		}
		resp.Groups = append(resp.Groups, g)
	}
	var ops []meta.Op
	if len(op.Groups) > 0 {
		ops = append(ops, op)
	}
	return whenApplied(ctx, s.submit(ctx, ops...), len(ops), resp, func(_ int, err error) {
		for _, i := range idx {
			resp.Groups[i].ErrorCode = errorCode(err)
		}
	})
}
