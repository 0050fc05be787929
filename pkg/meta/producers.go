package meta

import "math"

// Idempotent producers' state, per partition: the epoch and the last few
// batches' sequence ranges of each producer id, checked when a commit is
// applied so that two agents cannot both accept a sequence.
//
// A producer silent for producerExpiryMs is treated as unknown (it may
// start at any sequence), as Kafka forgets it after producer.id.expiration.ms.
// Forgetting its state is a separate op, ExpireProducers (Format2), that a
// background job appends with a cutoff from its agent's configuration:
// the cutoff is in the op, so every agent drops the same producers, and
// the state and its snapshots stay in proportion to the producers active
// within the expiration, not to every producer id ever seen.

// producerExpiryMs is Kafka's producer.id.expiration.ms default: an
// idempotent producer silent for this long is treated as unknown.
const producerExpiryMs = 24 * 60 * 60 * 1000

// recentBatches is how many batches per producer and partition are
// remembered for de-duplication, as in Kafka (max.in.flight 5).
const recentBatches = 5

// maxReserveProducers bounds one ReserveProducers, so that no entry can
// exhaust the id space.
const maxReserveProducers = 1 << 20

// producerState is a value, held by value in the partitions' maps, so that
// a copy of a map (State.Clone) shares nothing with it.
type producerState struct {
	epoch  int16
	n      uint8 // batches in recent
	lastMs int64
	recent [recentBatches]seqRange // oldest first
}

// batches returns the remembered batches, oldest first.
func (ps *producerState) batches() []seqRange { return ps.recent[:ps.n] }

// remember adds a batch, forgetting the oldest past recentBatches.
func (ps *producerState) remember(r seqRange) {
	if int(ps.n) == recentBatches {
		copy(ps.recent[:], ps.recent[1:])
		ps.n--
	}
	ps.recent[ps.n] = r
	ps.n++
}

type seqRange struct {
	first, last int32
	baseOffset  int64
}

// ExpireProducers forgets the state of every idempotent producer not heard
// from (by entry time) since BeforeMs, in every partition.
type ExpireProducers struct{ BeforeMs int64 }

func (ExpireProducers) kind() uint8 { return kindExpireProducers }

func (op ExpireProducers) encode(e *encoder) { e.svar(op.BeforeMs) }

func decodeExpireProducers(d *decoder) Op { return ExpireProducers{BeforeMs: d.svar()} }

func (s *State) expireProducers(op ExpireProducers) int {
	n := 0
	for _, t := range s.topics {
		for _, p := range t.Partitions {
			for id, ps := range p.producers {
				if ps.lastMs < op.BeforeMs {
					delete(p.producers, id)
					n++
				}
			}
			if len(p.producers) == 0 {
				p.producers = nil // as a snapshot decodes it
			}
		}
	}
	return n
}

// ProducerStates returns how many producer states the partitions hold.
func (s *State) ProducerStates() int {
	n := 0
	for _, t := range s.topics {
		for _, p := range t.Partitions {
			n += len(p.producers)
		}
	}
	return n
}

// OldestProducerMs returns the entry time of the longest-silent producer
// state, or -1 if there is none: what tells a job whether ExpireProducers
// has anything to do.
func (s *State) OldestProducerMs() int64 {
	oldest := int64(-1)
	for _, t := range s.topics {
		for _, p := range t.Partitions {
			for _, ps := range p.producers {
				if oldest < 0 || ps.lastMs < oldest {
					oldest = ps.lastMs
				}
			}
		}
	}
	return oldest
}

func (s *State) reserveProducers(op ReserveProducers) (int64, error) {
	first, n := s.nextProducerID, int64(max(op.Count, 0)) // a negative count reserves none, as it always has
	if n > maxReserveProducers || first > math.MaxInt64-n {
		return first, ErrLimit
	}
	s.nextProducerID += n
	return first, nil
}

// checkProducer applies Kafka's idempotence rules. It returns the original
// base offset (>= 0) for a duplicate, -1 for a new batch, or an error.
func (p *Partition) checkProducer(nowMs int64, b CommitBatch) (int64, error) {
	if b.ProducerID < 0 {
		return -1, nil
	}
	ps, known := p.producers[b.ProducerID]
	if !known || nowMs-ps.lastMs > producerExpiryMs {
		return -1, nil // a producer we do not know may start anywhere
	}
	if b.ProducerEpoch < ps.epoch {
		return -1, ErrInvalidProducerEpoch
	}
	last := lastSeq(b)
	if b.ProducerEpoch == ps.epoch {
		for _, r := range ps.batches() {
			if r.first == b.BaseSequence && r.last == last {
				return r.baseOffset, nil
			}
		}
		next := int32(0) // after MaxInt32 comes 0; prev+1 would overflow to MinInt32
		if prev := ps.recent[ps.n-1].last; prev != math.MaxInt32 {
			next = prev + 1
		}
		if b.BaseSequence != next {
			return -1, ErrOutOfOrderSequence
		}
		return -1, nil
	}
	if b.BaseSequence != 0 { // a new epoch starts at sequence 0
		return -1, ErrOutOfOrderSequence
	}
	return -1, nil
}

func lastSeq(b CommitBatch) int32 {
	// Sequences wrap at MaxInt32 like Kafka's.
	return int32((int64(b.BaseSequence) + int64(b.Records) - 1) % (math.MaxInt32 + 1))
}

func (p *Partition) recordProducer(nowMs int64, b CommitBatch, base int64) {
	if b.ProducerID < 0 {
		return
	}
	if p.producers == nil {
		p.producers = map[int64]producerState{}
	}
	ps, ok := p.producers[b.ProducerID]
	if !ok || ps.epoch != b.ProducerEpoch || nowMs-ps.lastMs > producerExpiryMs {
		ps = producerState{epoch: b.ProducerEpoch}
	}
	ps.lastMs = max(ps.lastMs, nowMs)
	ps.remember(seqRange{first: b.BaseSequence, last: lastSeq(b), baseOffset: base})
	p.producers[b.ProducerID] = ps
}
