package meta

import (
	"maps"
	"slices"
)

// Clone returns a deep copy of the state that shares nothing mutable with
// it, so that it can be encoded (a snapshot) on another goroutine while
// the log goes on applying entries to the original. Copying is a fraction
// of encoding's cost: no sorting, no varints, no object index.
func (s *State) Clone() *State {
	c := *s
	c.topics = make(map[string]*Topic, len(s.topics))
	c.byID = make(map[TopicID]*Topic, len(s.byID))
	for name, t := range s.topics {
		ct := &Topic{Name: t.Name, ID: t.ID, ReplicationFactor: t.ReplicationFactor, Configs: maps.Clone(t.Configs),
			Partitions: make([]*Partition, len(t.Partitions))}
		slab := make([]Partition, len(t.Partitions)) // one allocation for a topic's partitions
		for i, p := range t.Partitions {
			cp := &slab[i]
			*cp = *p
			// Apply never changes a chunk an earlier entry made: it
			// appends (beyond this copy's length), or replaces the
			// slice. So the chunks are shared, capped at their length.
			cp.Chunks = p.Chunks[:len(p.Chunks):len(p.Chunks)]
			cp.producers = maps.Clone(p.producers) // of values
			ct.Partitions[i] = cp
		}
		c.topics[name] = ct
		c.byID[ct.ID] = ct
	}
	c.groups = make(map[string]*Group, len(s.groups))
	for name, g := range s.groups {
		cg := *g
		cg.Members = slices.Clone(g.Members)
		cg.offsets = maps.Clone(g.offsets) // Metadata strings are never changed in place

		c.groups[name] = &cg
	}
	c.agents = make(map[string]*Agent, len(s.agents))
	for id, a := range s.agents {
		ca := *a
		c.agents[id] = &ca
	}
	c.nodeByAddr = maps.Clone(s.nodeByAddr)
	c.objRefs = maps.Clone(s.objRefs)
	c.released = maps.Clone(s.released)
	c.leases = maps.Clone(s.leases)
	c.condemned = maps.Clone(s.condemned)
	c.members = maps.Clone(s.members)
	c.nums = maps.Clone(s.nums)
	c.scram = maps.Clone(s.scram) // credentials' slices are never changed in place; acls is immutable
	c.txns = make(map[string]*Txn, len(s.txns))
	for id, t := range s.txns {
		ct := *t // its slices are replaced on change, never changed in place
		c.txns[id] = &ct
	}
	c.txnByPID = maps.Clone(s.txnByPID)
	c.pendingTxnOffsets = maps.Clone(s.pendingTxnOffsets)
	return &c
}
