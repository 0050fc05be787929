package protocol

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// ListGroups, versions 0-5.
//
// Every group in this agent's memory or in the metadata log (the latter
// as Empty). v3: flexible; v4: states filter (case-insensitive, KIP-518);
// v5: types filter (KIP-848): all groups here are "classic". With a shared
// address, the agent reached also lists the others' groups (fannedOut).
func init() { register(16, 0, 5, fannedOut(deferred(handleListGroups))) }

func handleListGroups(ctx context.Context, s *Server, req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	// Kafka lists every group to a principal that may DESCRIBE the
	// cluster, and otherwise the groups it may DESCRIBE.
	z := s.authzOf(ctx)
	all := z.cluster(meta.OpDescribe)
	match := func(filter []string, v string) bool {
		return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
	}
	if !match(req.TypesFilter, "classic") {
		return resp
	}
	for _, name := range s.groups.Names() {
		if !s.coordinates(name) {
			continue // each agent lists the groups it coordinates, as Kafka's brokers do
		}
		if !all && !z.group(meta.OpDescribe, name) {
			continue
		}
		v, ok := s.groups.View(name)
		if !ok || !match(req.StatesFilter, v.State) {
			continue
		}
		g := kmsg.NewListGroupsResponseGroup()
		g.Group, g.ProtocolType, g.GroupState, g.GroupType = name, v.ProtocolType, v.State, "classic"
		resp.Groups = append(resp.Groups, g)
	}
	return resp
}
