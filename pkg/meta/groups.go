package meta

import (
	"bytes"
	"errors"
	"slices"
	"sort"
)

// Consumer groups in the log. The coordinator (pkg/protocol) keeps each
// group's join and sync state in memory; what must survive it is logged
// here: the generation a completed rebalance produced (GroupGeneration) and
// the committed offsets (CommitOffsets). A commit names the generation it
// was validated against and Apply rejects it unless that is the logged one,
// so a coordinator that lost its group to another agent cannot overwrite
// offsets even when its entry reaches the log.

// ErrIllegalGeneration rejects a CommitOffsets whose generation is not the
// group's logged one (Kafka's ILLEGAL_GENERATION), or a GroupGeneration that
// does not advance it.
var ErrIllegalGeneration = errors.New("meta: illegal generation")

// GroupGeneration records a completed rebalance: the group's generation,
// its protocol and its members (none when the group became empty).
type GroupGeneration struct {
	Group        string
	Generation   int32
	ProtocolType string
	Protocol     string
	Leader       string
	Members      []string
}

// CommitOffsets stores committed offsets for one group. Generation -1 is a
// commit from outside group management (admin clients, simple consumers).
type CommitOffsets struct {
	Group      string
	Generation int32
	Member     string
	Offsets    []GroupOffset
}

// GroupOffset is one partition's committed offset.
type GroupOffset struct {
	Topic       TopicID
	Partition   int32
	Offset      int64
	LeaderEpoch int32
	Metadata    *string // nil is Kafka's null metadata
	CommitMs    int64
}

// DeleteGroups forgets groups: their generation and their offsets.
type DeleteGroups struct{ Groups []string }

// DeleteOffsets forgets some committed offsets of one group.
type DeleteOffsets struct {
	Group      string
	Partitions []GroupPartition
}

// GroupPartition names one partition of a topic.
type GroupPartition struct {
	Topic     TopicID
	Partition int32
}

func (GroupGeneration) kind() uint8 { return kindGroupGeneration }
func (CommitOffsets) kind() uint8   { return kindCommitOffsets }
func (DeleteGroups) kind() uint8    { return kindDeleteGroups }
func (DeleteOffsets) kind() uint8   { return kindDeleteOffsets }

// Group is what the log knows of one consumer group.
type Group struct {
	Generation   int32 // -1 until a rebalance is logged
	ProtocolType string
	Protocol     string
	Leader       string
	Members      []string
	offsets      map[GroupPartition]GroupOffset
}

func newGroup() *Group { return &Group{Generation: -1} }

// Group returns a copy of the group's logged state without its offsets, and
// whether the log knows the group at all.
func (s *State) Group(name string) (Group, bool) {
	g := s.groups[name]
	if g == nil {
		return Group{Generation: -1}, false
	}
	c := *g
	c.Members = slices.Clone(g.Members)
	c.offsets = nil
	return c, true
}

// GroupNames returns every group the log knows, sorted.
func (s *State) GroupNames() []string {
	names := make([]string, 0, len(s.groups))
	for n := range s.groups {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CommittedOffset returns a group's committed offset for one partition.
func (s *State) CommittedOffset(group string, topic TopicID, partition int32) (GroupOffset, bool) {
	g := s.groups[group]
	if g == nil {
		return GroupOffset{}, false
	}
	o, ok := g.offsets[GroupPartition{topic, partition}]
	return o, ok
}

// CommittedOffsets returns all of a group's committed offsets, sorted by
// topic id and partition.
func (s *State) CommittedOffsets(group string) []GroupOffset {
	g := s.groups[group]
	if g == nil {
		return nil
	}
	out := make([]GroupOffset, 0, len(g.offsets))
	for _, o := range g.offsets {
		out = append(out, o)
	}
	sortOffsets(out)
	return out
}

func sortOffsets(os []GroupOffset) {
	sort.Slice(os, func(i, j int) bool {
		if c := bytes.Compare(os[i].Topic[:], os[j].Topic[:]); c != 0 {
			return c < 0
		}
		return os[i].Partition < os[j].Partition
	})
}

func (s *State) groupGeneration(op GroupGeneration) error {
	g := s.groups[op.Group]
	if g == nil {
		g = newGroup()
		s.groups[op.Group] = g
	}
	if op.Generation <= g.Generation {
		return ErrIllegalGeneration
	}
	g.Generation, g.ProtocolType, g.Protocol, g.Leader = op.Generation, op.ProtocolType, op.Protocol, op.Leader
	g.Members = nil
	if len(op.Members) > 0 {
		g.Members = slices.Clone(op.Members)
	}
	return nil
}

// commitOffsets applies a commit whole or not at all for a wrong
// generation; partitions of unknown topics are skipped one by one.
func (s *State) commitOffsets(op CommitOffsets) ([]error, error) {
	g := s.groups[op.Group]
	if op.Generation >= 0 && (g == nil || g.Generation != op.Generation) {
		return nil, ErrIllegalGeneration
	}
	if g == nil {
		g = newGroup()
		s.groups[op.Group] = g
	}
	errs := make([]error, len(op.Offsets))
	for i, o := range op.Offsets {
		t := s.byID[o.Topic]
		if t == nil || t.Partition(o.Partition) == nil {
			errs[i] = ErrUnknownTopic
			continue
		}
		if g.offsets == nil {
			g.offsets = map[GroupPartition]GroupOffset{}
		}
		if o.Metadata != nil {
			m := *o.Metadata
			o.Metadata = &m
		}
		g.offsets[GroupPartition{o.Topic, o.Partition}] = o
	}
	return errs, nil
}

func (s *State) deleteOffsets(op DeleteOffsets) error {
	g := s.groups[op.Group]
	if g == nil {
		return ErrUnknownGroup
	}
	for _, p := range op.Partitions {
		delete(g.offsets, p)
	}
	if len(g.offsets) == 0 {
		g.offsets = nil // as a snapshot decodes it
	}
	return nil
}

// ErrUnknownGroup reports a group the log does not know.
var ErrUnknownGroup = errors.New("meta: unknown group")

// dropTopicOffsets forgets every group's offsets of a deleted topic.
func (s *State) dropTopicOffsets(id TopicID) {
	for _, g := range s.groups {
		for k := range g.offsets {
			if k.Topic == id {
				delete(g.offsets, k)
			}
		}
		if len(g.offsets) == 0 {
			g.offsets = nil
		}
	}
}

func (op GroupGeneration) encode(e *encoder) {
	e.str(op.Group)
	e.svar(int64(op.Generation))
	e.str(op.ProtocolType)
	e.str(op.Protocol)
	e.str(op.Leader)
	e.strs(op.Members)
}

func (op CommitOffsets) encode(e *encoder) {
	e.str(op.Group)
	e.svar(int64(op.Generation))
	e.str(op.Member)
	e.uvar(uint64(len(op.Offsets)))
	for _, o := range op.Offsets {
		encodeOffset(e, o)
	}
}

func (op DeleteGroups) encode(e *encoder) { e.strs(op.Groups) }

func (op DeleteOffsets) encode(e *encoder) {
	e.str(op.Group)
	e.uvar(uint64(len(op.Partitions)))
	for _, p := range op.Partitions {
		e.id(p.Topic)
		e.svar(int64(p.Partition))
	}
}

// Group offset layout: topic id (16), partition, offset, leader epoch
// (varints), metadata null flag (1) then string, commit time (varint).
func encodeOffset(e *encoder, o GroupOffset) {
	e.id(o.Topic)
	e.svar(int64(o.Partition))
	e.svar(o.Offset)
	e.svar(int64(o.LeaderEpoch))
	e.bool(o.Metadata == nil)
	if o.Metadata != nil {
		e.str(*o.Metadata)
	}
	e.svar(o.CommitMs)
}

func decodeOffset(d *decoder) GroupOffset {
	o := GroupOffset{Topic: d.id(), Partition: d.i32(), Offset: d.svar(), LeaderEpoch: d.i32()}
	if !d.bool() {
		m := d.str()
		o.Metadata = &m
	}
	o.CommitMs = d.svar()
	return o
}

const minOffsetSize = 16 + 5

func decodeGroupGeneration(d *decoder) Op {
	return GroupGeneration{Group: d.str(), Generation: d.i32(), ProtocolType: d.str(), Protocol: d.str(), Leader: d.str(), Members: d.strs()}
}

func decodeCommitOffsets(d *decoder) Op {
	op := CommitOffsets{Group: d.str(), Generation: d.i32(), Member: d.str()}
	if n := d.count(minOffsetSize); n > 0 {
		op.Offsets = make([]GroupOffset, n)
		for i := range op.Offsets {
			op.Offsets[i] = decodeOffset(d)
		}
	}
	return op
}

func decodeDeleteGroups(d *decoder) Op { return DeleteGroups{Groups: d.strs()} }

func decodeDeleteOffsets(d *decoder) Op {
	op := DeleteOffsets{Group: d.str()}
	if n := d.count(17); n > 0 {
		op.Partitions = make([]GroupPartition, n)
		for i := range op.Partitions {
			op.Partitions[i] = GroupPartition{Topic: d.id(), Partition: d.i32()}
		}
	}
	return op
}

// Snapshot groups section (version 2): group count, then per group sorted
// by name: name, generation, protocol type, protocol, leader, members
// (count, strings), offsets (count, each as in an entry) sorted by topic id
// and partition.
func (s *State) encodeGroups(e *encoder) {
	names := s.GroupNames()
	e.uvar(uint64(len(names)))
	for _, n := range names {
		g := s.groups[n]
		e.str(n)
		e.svar(int64(g.Generation))
		e.str(g.ProtocolType)
		e.str(g.Protocol)
		e.str(g.Leader)
		e.uvar(uint64(len(g.Members)))
		for _, m := range g.Members {
			e.str(m)
		}
		offs := s.CommittedOffsets(n)
		e.uvar(uint64(len(offs)))
		for _, o := range offs {
			encodeOffset(e, o)
		}
	}
}

func (s *State) decodeGroups(d *decoder) {
	n := d.count(7)
	for i := 0; i < n && d.err == nil; i++ {
		name := d.str()
		g := &Group{Generation: d.i32(), ProtocolType: d.str(), Protocol: d.str(), Leader: d.str()}
		if nm := d.count(1); nm > 0 {
			g.Members = make([]string, nm)
			for j := range g.Members {
				g.Members[j] = d.str()
			}
		}
		if no := d.count(minOffsetSize); no > 0 {
			g.offsets = make(map[GroupPartition]GroupOffset, no)
			for j := 0; j < no && d.err == nil; j++ {
				o := decodeOffset(d)
				g.offsets[GroupPartition{o.Topic, o.Partition}] = o
			}
		}
		s.groups[name] = g
	}
}
