package protocol

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/groups"
	"github.com/bargehq/barge/pkg/meta"
)

// DescribeGroups, versions 0-5.
//
// State, protocol and members (client id, host, metadata and, once
// Stable, assignment) from the coordinator's memory; a group the log
// knows but no member has joined since this agent started is Empty; an
// unknown group is Dead with no error, as Kafka answers before v6.
// An empty group id is INVALID_GROUP_ID. v3: authorized operations
// (when asked for; else -2^31); v4: group.instance.id; v5: flexible.
func init() {
	register(15, 0, 5, routedMany(describeGroupsGroups, describeGroupsSubset, describeGroupsMerge, deferred(handleDescribeGroups)))
}

func handleDescribeGroups(ctx context.Context, s *Server, req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	z := s.authzOf(ctx)
	for _, name := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = name
		if name == "" {
			rg.ErrorCode = kerr.InvalidGroupID.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		if !z.group(meta.OpDescribe, name) {
			rg.ErrorCode = errGroupAuth.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		if req.IncludeAuthorizedOperations {
			rg.AuthorizedOperations = z.ops(meta.ResourceGroup, name)
		}
		if !s.coordinates(name) {
			rg.ErrorCode = kerr.NotCoordinator.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		v, ok := s.groups.View(name)
		if !ok {
			rg.State = groups.Dead
		} else {
			rg.State, rg.ProtocolType, rg.Protocol, rg.Members = v.State, v.ProtocolType, v.Protocol, v.Members
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
