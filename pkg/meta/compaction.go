package meta

import "errors"

// File compaction: ReplaceChunks swaps a contiguous run of a partition's
// chunks for one chunk of a new object that holds the same batches, byte
// for byte, in the same order. The compactor reads the inputs, writes the
// output object and then appends the op; if anything about the run
// changed in between (retention dropped a chunk, another compactor
// replaced it, the topic was deleted), Apply rejects the op with
// ErrConflict and leaves the index as it was. The rejected output is
// released at once, as a commit whose batches were all refused is, so
// collection deletes it whatever the compactor learns of the outcome.
//
// On success the output gains one reference and each input chunk loses
// one; an input object that no chunk refers to any more is released and
// deleted by collection after the grace period.

// ErrConflict is ReplaceChunks' answer when the partition no longer holds
// exactly the input chunks as a contiguous run.
var ErrConflict = errors.New("meta: chunks changed since the job read them")

// ChunkRef names one chunk as the compactor saw it.
type ChunkRef struct {
	Object                 string
	Pos, Len               int64
	BaseOffset, NextOffset int64
}

// Ref returns the chunk's reference.
func (c Chunk) Ref() ChunkRef {
	return ChunkRef{Object: c.Object, Pos: c.Pos, Len: c.Len, BaseOffset: c.BaseOffset, NextOffset: c.NextOffset}
}

// ReplaceChunks replaces the contiguous run Inputs of a partition's chunks
// with Output.
type ReplaceChunks struct {
	Topic     TopicID
	Partition int32
	Inputs    []ChunkRef
	Output    Chunk
	// Since is the slot the compactor had applied before it began writing
	// Output (Format2; condemn.go).
	Since uint64
}

func (ReplaceChunks) kind() uint8 { return kindReplaceChunks }

func (s *State) replaceChunks(nowMs int64, op ReplaceChunks) error {
	err := ErrCondemned
	if !s.refused(op.Output.Object, op.Since) {
		err = s.tryReplace(nowMs, op)
	}
	if err != nil {
		s.releaseUnused(nowMs, op.Output.Object) // a rejected output is garbage
	}
	return err
}

func (s *State) tryReplace(nowMs int64, op ReplaceChunks) error {
	var p *Partition
	if t := s.byID[op.Topic]; t != nil {
		p = t.Partition(op.Partition)
	}
	i, err := s.findRun(p, op.Inputs, op.Output)
	if err != nil {
		return err
	}
	s.swapRun(nowMs, p, i, len(op.Inputs), op.Output)
	return nil
}

// findRun returns the index in p's chunks of the contiguous run inputs,
// or ErrConflict unless output may replace it: same offsets, a new object.
func (s *State) findRun(p *Partition, inputs []ChunkRef, output Chunk) (int, error) {
	if p == nil || len(inputs) == 0 {
		return -1, ErrConflict
	}
	first, last := inputs[0], inputs[len(inputs)-1]
	if output.BaseOffset != first.BaseOffset || output.NextOffset != last.NextOffset || output.Object == "" {
		return -1, ErrConflict
	}
	// The output must be a new object: a released one may be deleted already.
	if _, gone := s.released[output.Object]; gone || s.objRefs[output.Object] > 0 {
		return -1, ErrConflict
	}
	i := p.Find(first.BaseOffset)
	if i < 0 || i+len(inputs) > len(p.Chunks) {
		return -1, ErrConflict
	}
	for j, in := range inputs {
		if p.Chunks[i+j].Ref() != in {
			return -1, ErrConflict
		}
	}
	return i, nil
}

// swapRun replaces the n chunks from index i with output.
func (s *State) swapRun(nowMs int64, p *Partition, i, n int, output Chunk) {
	for _, c := range p.Chunks[i : i+n] {
		s.unref(nowMs, c.Object)
	}
	chunks := make([]Chunk, 0, len(p.Chunks)-n+1)
	chunks = append(chunks, p.Chunks[:i]...)
	chunks = append(chunks, output)
	chunks = append(chunks, p.Chunks[i+n:]...)
	p.Chunks = chunks
	s.ref(output.Object)
}

func (op ReplaceChunks) encode(e *encoder) {
	e.id(op.Topic)
	e.svar(int64(op.Partition))
	encodeRun(e, op.Inputs, op.Output)
	if e.format >= Format2 {
		e.uvar(op.Since)
	}
}

// encodeRun writes a run of input chunks and the chunk replacing them.
func encodeRun(e *encoder, inputs []ChunkRef, o Chunk) {
	e.uvar(uint64(len(inputs)))
	for _, in := range inputs {
		e.str(in.Object)
		e.svar(in.Pos)
		e.svar(in.Len)
		e.svar(in.BaseOffset)
		e.svar(in.NextOffset)
	}
	e.str(o.Object)
	e.svar(o.Pos)
	e.svar(o.Len)
	e.svar(o.BaseOffset)
	e.svar(o.NextOffset)
	e.svar(o.MaxTimestamp)
}

// decodeRun reads what encodeRun wrote.
func decodeRun(d *decoder) ([]ChunkRef, Chunk) {
	n := d.count(6)
	inputs := make([]ChunkRef, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		inputs = append(inputs, ChunkRef{Object: d.str(), Pos: d.svar(), Len: d.svar(), BaseOffset: d.svar(), NextOffset: d.svar()})
	}
	return inputs, Chunk{Object: d.str(), Pos: d.svar(), Len: d.svar(), BaseOffset: d.svar(), NextOffset: d.svar(), MaxTimestamp: d.svar()}
}

func decodeReplaceChunks(d *decoder) Op {
	op := ReplaceChunks{Topic: d.id(), Partition: d.i32()}
	op.Inputs, op.Output = decodeRun(d)
	if d.format >= Format2 {
		op.Since = d.uvar()
	}
	return op
}
