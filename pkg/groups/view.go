package groups

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/meta"
)

// GroupView is a snapshot of one group, for DescribeGroups, ListGroups and
// OffsetDelete.
type GroupView struct {
	Name, State, ProtocolType, Protocol string
	Members                             []kmsg.DescribeGroupsResponseGroupMember
	// Subscribed is nil exactly when the group is Empty, whatever its
	// protocol type (OffsetDelete relies on it to refuse an active group
	// that is not a consumer group); for a consumer group, it holds the
	// topics of the members' subscriptions.
	Subscribed map[string]bool
}

// View describes a group from memory, or from the log (an Empty group
// that only has offsets or a past generation), or reports it unknown.
func (c *Coordinator) View(name string) (GroupView, bool) {
	c.mu.Lock()
	g := c.groups[name]
	if g != nil {
		v := GroupView{Name: name, State: g.state.String(), ProtocolType: g.protocolType, Protocol: g.protocol}
		if g.state != groupEmpty {
			v.Subscribed = map[string]bool{}
		}
		for _, id := range g.memberIDs() {
			m := g.members[id]
			dm := kmsg.NewDescribeGroupsResponseGroupMember()
			dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
			dm.ProtocolMetadata = m.metadataFor(g.protocol)
			if g.state == groupStable {
				dm.MemberAssignment = m.assignment
			}
			v.Members = append(v.Members, dm)
			if g.protocolType == "consumer" {
				for _, p := range m.protocols {
					var md kmsg.ConsumerMemberMetadata
					if md.ReadFrom(p.Metadata) == nil {
						for _, t := range md.Topics {
							v.Subscribed[t] = true
						}
					}
				}
			}
		}
		c.mu.Unlock()
		return v, true
	}
	c.mu.Unlock()
	var v GroupView
	var ok bool
	c.log.View(func(st *meta.State) {
		var lg meta.Group
		if lg, ok = st.Group(name); ok {
			v = GroupView{Name: name, State: groupEmpty.String(), ProtocolType: lg.ProtocolType}
		}
	})
	return v, ok
}

// Names lists the groups in memory and in the log.
func (c *Coordinator) Names() []string {
	set := map[string]bool{}
	c.mu.Lock()
	for n, g := range c.groups {
		if g.state != groupDead {
			set[n] = true
		}
	}
	c.mu.Unlock()
	c.log.View(func(st *meta.State) {
		for _, n := range st.GroupNames() {
			set[n] = true
		}
	})
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Remove marks a group Dead and forgets it, unless it has members: the
// caller then deletes it from the log. NON_EMPTY_GROUP while it has
// members, GROUP_ID_NOT_FOUND if neither memory nor the log knows it.
func (c *Coordinator) Remove(name string) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[name]
	if g != nil && g.state != groupEmpty && g.state != groupDead {
		return kerr.NonEmptyGroup.Code
	}
	known := g != nil
	if !known {
		c.log.View(func(st *meta.State) { _, known = st.Group(name) })
	}
	if !known {
		return kerr.GroupIDNotFound.Code
	}
	if g != nil {
		g.state = groupDead
		g.stopTimer()
		for _, t := range g.pending {
			t.Stop()
		}
		delete(c.groups, name)
	}
	return 0
}
