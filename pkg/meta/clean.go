package meta

// Key compaction (cleanup.policy=compact): CleanChunks swaps runs of a
// partition's chunks for chunks of new objects that hold the same offset
// ranges with the superseded records left out, and moves the partition's
// clean/dirty boundary. Unlike ReplaceChunks' outputs, a cleaned chunk's
// batches keep their real base offsets and may leave gaps between them, so
// readers must trust the offsets stored in the batches (tiered.CleanedPrefix
// names such objects).
//
// The op is all or nothing: if any run changed since the cleaner read it,
// or another cleaner moved the boundary past this one's, Apply rejects it
// with ErrConflict and releases every output, as ReplaceChunks does.

// CleanRun is one run of chunks a cleaner rewrote.
type CleanRun struct {
	Inputs []ChunkRef
	Output Chunk
}

// CleanChunks records one key-compaction pass over a partition.
type CleanChunks struct {
	Topic     TopicID
	Partition int32
	Runs      []CleanRun // ascending, not overlapping; unchanged runs are left out
	// Boundary says the op ends a pass: CleanedTo and DeleteHorizon are
	// set. A pass commits its runs as it writes them, then the boundary.
	Boundary bool
	// CleanedTo is the first offset the pass did not clean (Kafka's cleaner
	// checkpoint): records from it on are the dirty head.
	CleanedTo int64
	// DeleteHorizon is the earliest time (unix ms) at which a tombstone the
	// cleaned part still holds may be dropped, or 0 if it holds none; a
	// cleaner runs again then even if nothing is dirty.
	DeleteHorizon int64
	// Since is the slot the cleaner had applied before it began writing
	// the outputs (Format2; condemn.go).
	Since uint64
}

func (CleanChunks) kind() uint8 { return kindCleanChunks }

func (s *State) cleanChunks(nowMs int64, op CleanChunks) error {
	err := error(nil)
	for _, r := range op.Runs {
		if s.refused(r.Output.Object, op.Since) {
			err = ErrCondemned
		}
	}
	if err == nil {
		err = s.tryClean(nowMs, op)
	}
	if err != nil {
		for _, r := range op.Runs {
			s.releaseUnused(nowMs, r.Output.Object)
		}
	}
	return err
}

func (s *State) tryClean(nowMs int64, op CleanChunks) error {
	var p *Partition
	if t := s.byID[op.Topic]; t != nil {
		p = t.Partition(op.Partition)
	}
	if p == nil || op.Boundary && (op.CleanedTo < p.CleanedTo || op.CleanedTo > p.HighWatermark || op.DeleteHorizon < 0) {
		return ErrConflict
	}
	at := make([]int, len(op.Runs))
	next := 0 // the first chunk index the next run may start at
	outputs := map[string]bool{}
	for k, r := range op.Runs {
		i, err := s.findRun(p, r.Inputs, r.Output)
		if err != nil || i < next || outputs[r.Output.Object] {
			return ErrConflict
		}
		outputs[r.Output.Object] = true
		at[k], next = i, i+len(r.Inputs)
	}
	// Back to front, so that the indexes of the runs before stay valid.
	for k := len(op.Runs) - 1; k >= 0; k-- {
		s.swapRun(nowMs, p, at[k], len(op.Runs[k].Inputs), op.Runs[k].Output)
	}
	if op.Boundary {
		p.CleanedTo = op.CleanedTo
		p.DeleteHorizon = op.DeleteHorizon
		if s.format >= Format7 {
			// A pass drops every aborted batch it cleans (pkg/jobs), so
			// the aborted ranges wholly below the boundary mark nothing
			// any more: without this a compacted topic, whose log start
			// never moves, would keep one per aborted transaction.
			p.trimAbortedBelow(op.CleanedTo)
		}
	}
	return nil
}

func (op CleanChunks) encode(e *encoder) {
	e.id(op.Topic)
	e.svar(int64(op.Partition))
	e.uvar(uint64(len(op.Runs)))
	for _, r := range op.Runs {
		encodeRun(e, r.Inputs, r.Output)
	}
	e.bool(op.Boundary)
	e.svar(op.CleanedTo)
	e.svar(op.DeleteHorizon)
	if e.format >= Format2 {
		e.uvar(op.Since)
	}
}

func decodeCleanChunks(d *decoder) Op {
	op := CleanChunks{Topic: d.id(), Partition: d.i32()}
	nr := d.count(7)
	op.Runs = make([]CleanRun, 0, nr)
	for i := 0; i < nr && d.err == nil; i++ {
		var r CleanRun
		r.Inputs, r.Output = decodeRun(d)
		op.Runs = append(op.Runs, r)
	}
	op.Boundary = d.bool()
	op.CleanedTo, op.DeleteHorizon = d.svar(), d.svar()
	if d.format >= Format2 {
		op.Since = d.uvar()
	}
	return op
}

// Snapshot cleaner section (version 6): the partitions whose clean/dirty
// boundary or delete horizon is set, as topic id, partition, boundary,
// horizon, sorted by topic name and partition.
func (s *State) encodeCleaner(e *encoder) {
	type entry struct {
		id   TopicID
		part int
		p    *Partition
	}
	var set []entry
	for _, n := range s.TopicNames() {
		t := s.topics[n]
		for i, p := range t.Partitions {
			if p.CleanedTo != 0 || p.DeleteHorizon != 0 {
				set = append(set, entry{t.ID, i, p})
			}
		}
	}
	e.uvar(uint64(len(set)))
	for _, x := range set {
		e.id(x.id)
		e.svar(int64(x.part))
		e.svar(x.p.CleanedTo)
		e.svar(x.p.DeleteHorizon)
	}
}

func (s *State) decodeCleaner(d *decoder) {
	n := d.count(19)
	for i := 0; i < n && d.err == nil; i++ {
		id, part := d.id(), d.i32()
		cleaned, horizon := d.svar(), d.svar()
		t := s.byID[id]
		if t == nil || t.Partition(part) == nil {
			d.fail("cleaner partition")
			return
		}
		p := t.Partitions[part]
		p.CleanedTo, p.DeleteHorizon = cleaned, horizon
	}
}
