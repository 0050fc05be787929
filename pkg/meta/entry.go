package meta

import "fmt"

// Entry layout, the unit appended to the log as one object:
//
//	offset  size      field
//	0       4         magic "BRGE"
//	4       1         version: the cluster format it is encoded in (format.go)
//	5       uvarint   writer id length, then bytes (the agent that wrote it)
//	.       8         tag (random per append; with the writer, recognises a retry)
//	.       8         unix milliseconds at the writer when encoded
//	.       uvarint   (Format5) the writer's append number (sequencer.go)
//	.       uvarint   op count, then each op: 1 byte kind + kind's fields
//	end-4   4         CRC-32C (Castagnoli) of all bytes before it
//
// The op kinds are listed in ops.go. A reader that meets a version or an op
// kind it does not know stops with a *FormatError rather than guess: an
// agent that is too old must not apply a log it does not understand.
const entryMagic = "BRGE"

// Entry is one slot of the log.
type Entry struct {
	Writer string
	Tag    uint64
	TimeMs int64
	// Num is the writer's append number (Format5): each append of one
	// writer process takes the next, and the state applies a writer's
	// appends only in increasing Num, so that one that lands twice (once
	// by a sequencer, once directly) or late is applied once at most.
	// 0 means none (before Format5, or a writer that does not count).
	Num uint64
	Ops []Op
}

// Op is one state change inside an entry. Its kind is its number in the
// registry (ops.go); encode writes its fields in the encoder's format.
type Op interface {
	kind() uint8
	encode(e *encoder)
}

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
	// Since is the slot the writer had applied before it began writing
	// the object (Format2; condemn.go).
	Since uint64
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
	// Transactional and Control are the batch's attribute bits (Format7;
	// txn.go): a transactional batch opens or continues its producer's
	// transaction; a control batch is a marker, only ever in an EndTxn's
	// or InitTxn's markers.
	Transactional, Control bool
}

// ReserveProducers reserves Count producer ids for the writer.
type ReserveProducers struct{ Count int32 }

func (CreateTopic) kind() uint8      { return kindCreateTopic }
func (DeleteTopic) kind() uint8      { return kindDeleteTopic }
func (CreatePartitions) kind() uint8 { return kindCreatePartitions }
func (Commit) kind() uint8           { return kindCommit }
func (ReserveProducers) kind() uint8 { return kindReserveProducers }

// Encode returns the entry's bytes in the newest format this build knows.
func (en *Entry) Encode() []byte { return en.EncodeAt(MaxFormat) }

// EncodeAt returns the entry's bytes in format f. Fields that f does not
// have are left out.
func (en *Entry) EncodeAt(f Format) []byte {
	e := encoder{b: make([]byte, 0, 256), format: f}
	e.b = append(e.b, entryMagic...)
	e.u8(uint8(f))
	e.str(en.Writer)
	e.i64(int64(en.Tag))
	e.i64(en.TimeMs)
	if f >= Format5 {
		e.uvar(en.Num)
	}
	encodeOps(&e, en.Ops)
	return e.seal()
}

// DecodeEntry parses bytes written by Encode, for a reader of MaxFormat.
func DecodeEntry(b []byte) (*Entry, error) { return decodeEntry(b, MaxFormat) }

// decodeEntry parses an entry for a reader that understands formats up to
// maxFormat. Bytes that fail the checksum or are not an entry are
// ErrCorrupt; an entry of a format above maxFormat, or with an op kind the
// build does not know, is a *FormatError.
func decodeEntry(b []byte, maxFormat Format) (*Entry, error) {
	d, err := newDecoder(b)
	if err != nil {
		return nil, err
	}
	if len(d.b) < 5 || string(d.b[:4]) != entryMagic {
		return nil, fmt.Errorf("%w: not a log entry", ErrCorrupt)
	}
	v := Format(d.b[4])
	if v < Format1 {
		return nil, fmt.Errorf("%w: entry version %d", ErrCorrupt, v)
	}
	if v > maxFormat {
		return nil, &FormatError{Need: v, What: "a log entry", Max: maxFormat}
	}
	d.b, d.format, d.max = d.b[5:], v, maxFormat
	en := &Entry{Writer: d.str(), Tag: uint64(d.i64()), TimeMs: d.i64()}
	if v >= Format5 {
		en.Num = d.uvar()
	}
	if en.Ops, err = decodeOps(d); err != nil {
		return nil, err
	}
	if d.err != nil {
		if fe, ok := d.err.(*FormatError); ok {
			return nil, fe
		}
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return en, nil
}

// decodeOps reads an op count and the ops.
func decodeOps(d *decoder) ([]Op, error) {
	var ops []Op
	n := d.count(1)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.u8()
		if d.err != nil {
			break
		}
		op, err := decodeOp(d, k)
		if err != nil {
			if fe, ok := err.(*FormatError); ok {
				fe.Max = d.max
			}
			return nil, err
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// encodeOps writes an op count and the ops.
func encodeOps(e *encoder, ops []Op) {
	e.uvar(uint64(len(ops)))
	for _, op := range ops {
		e.u8(op.kind())
		op.encode(e)
	}
}

func (op CreateTopic) encode(e *encoder) {
	e.str(op.Name)
	e.id(op.ID)
	e.svar(int64(op.Partitions))
	e.svar(int64(op.ReplicationFactor))
	encodeConfigs(e, op.Configs)
}

func decodeCreateTopic(d *decoder) Op {
	return CreateTopic{Name: d.str(), ID: d.id(), Partitions: d.i32(), ReplicationFactor: int16(d.i32()), Configs: decodeConfigs(d)}
}

func (op DeleteTopic) encode(e *encoder) { e.id(op.ID) }

func decodeDeleteTopic(d *decoder) Op { return DeleteTopic{ID: d.id()} }

func (op CreatePartitions) encode(e *encoder) {
	e.id(op.ID)
	e.svar(int64(op.Count))
}

func decodeCreatePartitions(d *decoder) Op { return CreatePartitions{ID: d.id(), Count: d.i32()} }

func (op Commit) encode(e *encoder) {
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
			if e.format >= Format7 {
				e.u8(batchFlags(b))
			}
		}
	}
	if e.format >= Format2 {
		e.uvar(op.Since)
	}
}

func decodeCommit(d *decoder) Op {
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
			if d.format >= Format7 {
				f := d.u8()
				p.Batches[x].Transactional, p.Batches[x].Control = f&flagTransactional != 0, f&flagControl != 0
			}
		}
		op.Parts = append(op.Parts, p)
	}
	if d.format >= Format2 {
		op.Since = d.uvar()
	}
	return op
}

// A batch's flags in a Commit (Format7).
const (
	flagTransactional = 1 << 0
	flagControl       = 1 << 1
)

func batchFlags(b CommitBatch) uint8 {
	var f uint8
	if b.Transactional {
		f |= flagTransactional
	}
	if b.Control {
		f |= flagControl
	}
	return f
}

func (op ReserveProducers) encode(e *encoder) { e.svar(int64(op.Count)) }

func decodeReserveProducers(d *decoder) Op { return ReserveProducers{Count: d.i32()} }
