package meta

import (
	"fmt"
	"sort"
)

// Snapshot layout (version 12), stored as meta/snap/<20-digit seq>:
//
//	magic "BRGN", version byte, then: seq (uvarint), next producer id
//	(varint), the distinct object keys (count, strings) that chunks refer to
//	by index, then the topics sorted by name, each with its partitions,
//	chunks and producers (sorted by id), then (version 2) the consumer
//	groups (groups.go), then (version 3) the agents (agents.go), then
//	(version 4) the released objects (retention.go), then (version 5)
//	the job leases (leases.go), then (version 6) key compaction's
//	per-partition boundaries (clean.go), then (version 7) the cluster
//	format, the agents' announced formats and the condemned objects
//	(format.go), then (version 8) the agents' peer addresses (agents.go),
//	then (version 9) the membership epoch and who is out (membership.go),
//	then (version 10) the writers' append numbers (sequencer.go),
//	then (version 11) the SCRAM credentials and ACLs (security.go),
//	then (version 12) the transactions (txn.go),
//	and a CRC-32C trailer. Older snapshots, which end after
//	an earlier section, are still read. Per-object chunk counts and the
//	partition count are rebuilt, not stored.
//
// A state of cluster format 1 is written as version 6, so that agents
// built before formats existed can read the snapshots of a cluster they
// may still be part of (format.go); it holds nothing version 7 adds
// except the announcements, which their agents repeat; a state of format 2
// is written as version 7, for the builds of Format2, one of format 3
// as version 8, one of format 4 as version 9 and one of format 5 as
// version 10.
//
// The encoding is deterministic: two agents snapshotting the same state
// write the same bytes.
const (
	snapMagic   = "BRGN"
	snapVersion = 12
)

// snapVersionFor returns the snapshot version a state of format f is
// written in.
func snapVersionFor(f Format) uint8 {
	switch {
	case f < Format2:
		return 6
	case f < Format3:
		return 7
	case f < Format4:
		return 8
	case f < Format5:
		return 9
	case f < Format6:
		return 10
	case f < Format7:
		return 11
	}
	return snapVersion
}

// EncodeSnapshot serialises the state.
func (s *State) EncodeSnapshot() []byte {
	version := snapVersionFor(s.format)
	e := encoder{b: make([]byte, 0, 4096), format: s.format}
	e.b = append(e.b, snapMagic...)
	e.u8(version)
	e.uvar(s.Seq)
	e.svar(s.nextProducerID)

	names := s.TopicNames()
	objIndex := map[string]uint64{}
	var objects []string
	for _, n := range names {
		for _, p := range s.topics[n].Partitions {
			for _, c := range p.Chunks {
				if _, ok := objIndex[c.Object]; !ok {
					objIndex[c.Object] = uint64(len(objects))
					objects = append(objects, c.Object)
				}
			}
		}
	}
	e.uvar(uint64(len(objects)))
	for _, o := range objects {
		e.str(o)
	}
	e.uvar(uint64(len(names)))
	for _, n := range names {
		t := s.topics[n]
		e.str(t.Name)
		e.id(t.ID)
		e.svar(int64(t.ReplicationFactor))
		keys := make([]string, 0, len(t.Configs))
		for k := range t.Configs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		e.uvar(uint64(len(keys)))
		for _, k := range keys {
			e.str(k)
			e.str(t.Configs[k])
		}
		e.uvar(uint64(len(t.Partitions)))
		for _, p := range t.Partitions {
			e.svar(p.LogStart)
			e.svar(p.HighWatermark)
			e.uvar(uint64(len(p.Chunks)))
			for _, c := range p.Chunks {
				e.uvar(objIndex[c.Object])
				e.svar(c.Pos)
				e.svar(c.Len)
				e.svar(c.BaseOffset)
				e.svar(c.NextOffset)
				e.svar(c.MaxTimestamp)
			}
			pids := make([]int64, 0, len(p.producers))
			for id := range p.producers {
				pids = append(pids, id)
			}
			sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
			e.uvar(uint64(len(pids)))
			for _, id := range pids {
				ps := p.producers[id]
				e.svar(id)
				e.svar(int64(ps.epoch))
				e.svar(ps.lastMs)
				e.uvar(uint64(ps.n))
				for _, r := range ps.batches() {
					e.svar(int64(r.first))
					e.svar(int64(r.last))
					e.svar(r.baseOffset)
				}
			}
		}
	}
	s.encodeGroups(&e)
	s.encodeAgents(&e)
	s.encodeReleased(&e)
	s.encodeLeases(&e)
	s.encodeCleaner(&e)
	if version >= 7 {
		s.encodeFormat(&e)
	}
	if version >= 8 {
		s.encodePeers(&e)
	}
	if version >= 9 {
		s.encodeMembership(&e)
	}
	if version >= 10 {
		s.encodeNums(&e)
	}
	if version >= 11 {
		s.encodeSecurity(&e)
	}
	if version >= 12 {
		s.encodeTxns(&e)
	}
	return e.seal()
}

// DecodeSnapshot parses bytes written by EncodeSnapshot.
func DecodeSnapshot(b []byte) (*State, error) {
	d, err := newDecoder(b)
	if err != nil {
		return nil, err
	}
	if len(d.b) < 5 || string(d.b[:4]) != snapMagic {
		return nil, fmt.Errorf("%w: not a snapshot", ErrCorrupt)
	}
	version := d.b[4]
	if version < 1 {
		return nil, fmt.Errorf("%w: snapshot version %d", ErrCorrupt, version)
	}
	if version > snapVersion {
		return nil, &FormatError{What: fmt.Sprintf("a snapshot of version %d", version), Max: MaxFormat}
	}
	d.b = d.b[5:]
	s := NewState()
	s.Seq = d.uvar()
	s.nextProducerID = d.svar()
	objects := make([]string, d.count(1))
	for i := range objects {
		objects[i] = d.str()
	}
	nt := d.count(20)
	for i := 0; i < nt && d.err == nil; i++ {
		t := &Topic{Name: d.str(), ID: d.id(), ReplicationFactor: int16(d.i32())}
		if nc := d.count(2); nc > 0 {
			t.Configs = make(map[string]string, nc)
			for j := 0; j < nc; j++ {
				k := d.str()
				t.Configs[k] = d.str()
			}
		}
		np := d.count(4)
		for j := 0; j < np && d.err == nil; j++ {
			p := &Partition{LogStart: d.svar(), HighWatermark: d.svar()}
			p.Chunks = make([]Chunk, d.count(6))
			for k := range p.Chunks {
				oi := d.uvar()
				if oi >= uint64(len(objects)) {
					d.fail("object index")
					break
				}
				p.Chunks[k] = Chunk{Object: objects[oi], Pos: d.svar(), Len: d.svar(),
					BaseOffset: d.svar(), NextOffset: d.svar(), MaxTimestamp: d.svar()}
			}
			if npr := d.count(4); npr > 0 {
				p.producers = make(map[int64]producerState, npr)
				for k := 0; k < npr && d.err == nil; k++ {
					id := d.svar()
					ps := producerState{epoch: int16(d.i32()), lastMs: d.svar()}
					nr := d.count(3)
					if nr > recentBatches {
						d.fail("producer state")
					}
					for x := 0; x < nr && d.err == nil; x++ {
						ps.remember(seqRange{first: d.i32(), last: d.i32(), baseOffset: d.svar()})
					}
					if ps.n == 0 {
						d.fail("producer state")
					}
					p.producers[id] = ps
				}
			}
			t.Partitions = append(t.Partitions, p)
		}
		s.partitions += len(t.Partitions)
		s.topics[t.Name] = t
		s.byID[t.ID] = t
	}
	if version >= 2 {
		s.decodeGroups(d)
	}
	if version >= 3 {
		s.decodeAgents(d)
	}
	if version >= 4 {
		s.decodeReleased(d)
	}
	if version >= 5 {
		s.decodeLeases(d)
	}
	if version >= 6 {
		s.decodeCleaner(d)
	}
	if version >= 7 {
		s.decodeFormat(d)
	} else {
		s.membersSince = -1 // who wrote before this snapshot is not in it
	}
	if version >= 8 {
		s.decodePeers(d)
	}
	if version >= 9 {
		s.decodeMembership(d)
	}
	if version >= 10 {
		s.decodeNums(d)
	}
	if version >= 11 {
		s.decodeSecurity(d)
	}
	if version >= 12 {
		s.decodeTxns(d)
	}
	s.rebuildRefs()
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return s, nil
}
