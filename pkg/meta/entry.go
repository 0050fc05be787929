package meta

import (
	"fmt"
	"sort"
)

// Entry layout (version 1), the unit appended to the log as one object:
//
//	offset  size      field
//	0       4         magic "BRGE"
//	4       1         version = 1
//	5       uvarint   writer id length, then bytes (the agent that wrote it)
//	.       8         tag (random per append; with the writer, recognises a retry)
//	.       8         unix milliseconds at the writer when encoded
//	.       uvarint   op count, then each op: 1 byte kind + kind's fields
//	end-4   4         CRC-32C (Castagnoli) of all bytes before it
//
// Op kinds: 1 CreateTopic, 2 DeleteTopic, 3 CreatePartitions, 4 Commit,
// 5 ReserveProducers, 6 GroupGeneration, 7 CommitOffsets, 8 DeleteGroups,
// 9 DeleteOffsets (groups.go), 10 AgentHeartbeat (agents.go), 11
// SetTopicConfigs, 12 AdvanceLogStart, 13 ForgetObjects (retention.go), 14
// ReplaceChunks (compaction.go), 15 AcquireLease, 16 ReleaseLease (leases.go),
// 17 CleanChunks (clean.go). New kinds are added, never renumbered.
//
// A reader that meets an unknown version or op kind stops and reports
// ErrCorrupt rather than guess: an agent that is too old must not apply a log
// it does not understand.
const (
	entryMagic   = "BRGE"
	entryVersion = 1
)

// Entry is one slot of the log.
type Entry struct {
	Writer string
	Tag    uint64
	TimeMs int64
	Ops    []Op
}

// Op is one state change inside an entry.
type Op interface{ kind() uint8 }

const (
	kindCreateTopic      = 1
	kindDeleteTopic      = 2
	kindCreatePartitions = 3
	kindCommit           = 4
	kindReserveProducers = 5
)

// CreateTopic creates a topic unless one of that name exists.
type CreateTopic struct {
	Name              string
	ID                TopicID
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
}

// DeleteTopic removes a topic and its partitions' index.
type DeleteTopic struct{ ID TopicID }

// CreatePartitions grows a topic to Count partitions.
type CreatePartitions struct {
	ID    TopicID
	Count int32
}

// Commit makes the batches of one segment object part of their partitions'
// logs. Offsets are not in the entry: applying it assigns them.
type Commit struct {
	Object string
	Size   int64
	Parts  []CommitPart
}

// CommitPart lists one partition's batches in the object, in order.
type CommitPart struct {
	Topic     TopicID
	Partition int32
	Batches   []CommitBatch
}

// CommitBatch is what the state machine needs to know of one batch.
type CommitBatch struct {
	Pos, Len      int64 // byte range in the object
	Records       int32 // lastOffsetDelta + 1: offsets the batch takes
	MaxTimestamp  int64
	ProducerID    int64 // -1 when not idempotent
	ProducerEpoch int16
	BaseSequence  int32
}

// ReserveProducers reserves Count producer ids for the writer.
type ReserveProducers struct{ Count int32 }

func (CreateTopic) kind() uint8      { return kindCreateTopic }
func (DeleteTopic) kind() uint8      { return kindDeleteTopic }
func (CreatePartitions) kind() uint8 { return kindCreatePartitions }
func (Commit) kind() uint8           { return kindCommit }
func (ReserveProducers) kind() uint8 { return kindReserveProducers }

// Encode returns the entry's bytes.
func (en *Entry) Encode() []byte {
	e := encoder{b: make([]byte, 0, 256)}
	e.b = append(e.b, entryMagic...)
	e.u8(entryVersion)
	e.str(en.Writer)
	e.i64(int64(en.Tag))
	e.i64(en.TimeMs)
	e.uvar(uint64(len(en.Ops)))
	for _, op := range en.Ops {
		e.u8(op.kind())
		switch op := op.(type) {
		case CreateTopic:
			e.str(op.Name)
			e.id(op.ID)
			e.svar(int64(op.Partitions))
			e.svar(int64(op.ReplicationFactor))
			keys := make([]string, 0, len(op.Configs))
			for k := range op.Configs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			e.uvar(uint64(len(keys)))
			for _, k := range keys {
				e.str(k)
				e.str(op.Configs[k])
			}
		case DeleteTopic:
			e.id(op.ID)
		case CreatePartitions:
			e.id(op.ID)
			e.svar(int64(op.Count))
		case Commit:
			e.str(op.Object)
			e.svar(op.Size)
			e.uvar(uint64(len(op.Parts)))
			for _, p := range op.Parts {
				e.id(p.Topic)
				e.svar(int64(p.Partition))
				e.uvar(uint64(len(p.Batches)))
				for _, b := range p.Batches {
					e.svar(b.Pos)
					e.svar(b.Len)
					e.svar(int64(b.Records))
					e.svar(b.MaxTimestamp)
					e.svar(b.ProducerID)
					e.svar(int64(b.ProducerEpoch))
					e.svar(int64(b.BaseSequence))
				}
			}
		case ReserveProducers:
			e.svar(int64(op.Count))
		default:
			if encodeGroupOp(&e, op) || encodeAgentOp(&e, op) || encodeJobOp(&e, op) || encodeCompactionOp(&e, op) || encodeCleanOp(&e, op) || encodeLeaseOp(&e, op) {
				continue
			}
			panic(fmt.Sprintf("meta: unknown op %T", op))
		}
	}
	return e.seal()
}

// DecodeEntry parses bytes written by Encode.
func DecodeEntry(b []byte) (*Entry, error) {
	d, err := newDecoder(b)
	if err != nil {
		return nil, err
	}
	if len(d.b) < 5 || string(d.b[:4]) != entryMagic {
		return nil, fmt.Errorf("%w: not a log entry", ErrCorrupt)
	}
	if v := d.b[4]; v != entryVersion {
		return nil, fmt.Errorf("%w: entry version %d", ErrCorrupt, v)
	}
	d.b = d.b[5:]
	en := &Entry{Writer: d.str(), Tag: uint64(d.i64()), TimeMs: d.i64()}
	n := d.count(1)
	for i := 0; i < n && d.err == nil; i++ {
		switch k := d.u8(); k {
		case kindCreateTopic:
			op := CreateTopic{Name: d.str(), ID: d.id(), Partitions: d.i32(), ReplicationFactor: int16(d.i32())}
			if nc := d.count(2); nc > 0 {
				op.Configs = make(map[string]string, nc)
				for j := 0; j < nc; j++ {
					k := d.str()
					op.Configs[k] = d.str()
				}
			}
			en.Ops = append(en.Ops, op)
		case kindDeleteTopic:
			en.Ops = append(en.Ops, DeleteTopic{ID: d.id()})
		case kindCreatePartitions:
			en.Ops = append(en.Ops, CreatePartitions{ID: d.id(), Count: d.i32()})
		case kindCommit:
			op := Commit{Object: d.str(), Size: d.svar()}
			np := d.count(18)
			op.Parts = make([]CommitPart, 0, np)
			for j := 0; j < np && d.err == nil; j++ {
				p := CommitPart{Topic: d.id(), Partition: d.i32()}
				nb := d.count(7)
				p.Batches = make([]CommitBatch, nb)
				for x := range p.Batches {
					p.Batches[x] = CommitBatch{Pos: d.svar(), Len: d.svar(), Records: d.i32(), MaxTimestamp: d.svar(),
						ProducerID: d.svar(), ProducerEpoch: int16(d.i32()), BaseSequence: d.i32()}
				}
				op.Parts = append(op.Parts, p)
			}
			en.Ops = append(en.Ops, op)
		case kindReserveProducers:
			en.Ops = append(en.Ops, ReserveProducers{Count: d.i32()})
		default:
			op, ok := decodeGroupOp(d, k)
			if !ok {
				op, ok = decodeAgentOp(d, k)
			}
			if !ok {
				op, ok = decodeJobOp(d, k)
			}
			if !ok {
				op, ok = decodeCompactionOp(d, k)
			}
			if !ok {
				op, ok = decodeCleanOp(d, k)
			}
			if !ok {
				op, ok = decodeLeaseOp(d, k)
			}
			if !ok {
				return nil, fmt.Errorf("%w: unknown op kind %d", ErrCorrupt, k)
			}
			en.Ops = append(en.Ops, op)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return en, nil
}
