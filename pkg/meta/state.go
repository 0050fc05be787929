package meta

import (
	"errors"
	"maps"
	"math"
	"sort"
)

// TopicID is Kafka's topic UUID (KIP-516).
type TopicID [16]byte

// Errors the state machine records in results. They are outcomes of
// applying an op, not I/O failures; protocol maps them to Kafka codes.
var (
	ErrTopicExists          = errors.New("meta: topic already exists")
	ErrUnknownTopic         = errors.New("meta: unknown topic or partition")
	ErrInvalidPartitions    = errors.New("meta: invalid partition count")
	ErrOutOfOrderSequence   = errors.New("meta: out of order sequence number")
	ErrInvalidProducerEpoch = errors.New("meta: invalid producer epoch")
	ErrInvalidBatch         = errors.New("meta: batch with no records or no bytes")
)

// producerExpiryMs is Kafka's producer.id.expiration.ms default: an
// idempotent producer silent for this long is forgotten.
const producerExpiryMs = 24 * 60 * 60 * 1000

// recentBatches is how many batches per producer and partition are
// remembered for de-duplication, as in Kafka (max.in.flight 5).
const recentBatches = 5

// State is everything the log describes. Apply is its only mutator and is a
// pure function of the state and the entry: no clocks, no I/O, no map order.
type State struct {
	Seq            uint64 // the last applied slot
	topics         map[string]*Topic
	byID           map[TopicID]*Topic
	groups         map[string]*Group
	nextProducerID int64
	agents         map[string]*Agent // by writer id
	nodeByAddr     map[string]int32
	nextNodeID     int32
	objRefs        map[string]int   // object → chunks referring to it
	released       map[string]int64 // object → when no chunk referred to it any more
	leases         map[string]Lease // job → its lease (leases.go)
}

// Topic is one topic and its partitions.
type Topic struct {
	Name              string
	ID                TopicID
	ReplicationFactor int16
	Configs           map[string]string // only the explicitly set ones
	Partitions        []*Partition
}

// Partition is one partition's log: its offsets and where its batches live.
type Partition struct {
	LogStart      int64
	HighWatermark int64
	Chunks        []Chunk // ascending and contiguous in offsets
	CleanedTo     int64   // key compaction's clean/dirty boundary (clean.go)
	DeleteHorizon int64   // when the cleaned part's first tombstone may go (clean.go)
	producers     map[int64]*producerState
}

// Chunk is a run of contiguous batches of one partition in one object.
type Chunk struct {
	Object       string
	Pos, Len     int64
	BaseOffset   int64 // offset of the first batch
	NextOffset   int64 // one past the last offset
	MaxTimestamp int64
}

type producerState struct {
	epoch  int16
	lastMs int64
	recent []seqRange // oldest first, at most recentBatches
}

type seqRange struct {
	first, last int32
	baseOffset  int64
}

// Result is the outcome of one op, in the order of the entry's ops.
type Result struct {
	Err             error
	FirstProducerID int64           // ReserveProducers
	Parts           [][]BatchResult // Commit: per part, per batch
	OffsetErrs      []error         // CommitOffsets: per offset (unknown topics)
	NodeID          int32           // AgentHeartbeat: the writer's broker id
	LogStart        int64           // AdvanceLogStart: the log start after it
}

// BatchResult is the fate of one committed batch.
type BatchResult struct {
	BaseOffset int64 // assigned, or the original one for a duplicate
	Err        error
}

// NewState returns the empty state before slot 1.
func NewState() *State {
	return &State{topics: map[string]*Topic{}, byID: map[TopicID]*Topic{}, groups: map[string]*Group{}, nextProducerID: 1000,
		agents: map[string]*Agent{}, nodeByAddr: map[string]int32{}, objRefs: map[string]int{}, released: map[string]int64{},
		leases: map[string]Lease{}}
}

// Topic returns the topic by name.
func (s *State) Topic(name string) *Topic { return s.topics[name] }

// TopicByID returns the topic by id.
func (s *State) TopicByID(id TopicID) *Topic { return s.byID[id] }

// TopicNames returns all topic names, sorted.
func (s *State) TopicNames() []string {
	names := make([]string, 0, len(s.topics))
	for n := range s.topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Partition returns a partition or nil.
func (t *Topic) Partition(p int32) *Partition {
	if p < 0 || int(p) >= len(t.Partitions) {
		return nil
	}
	return t.Partitions[p]
}

// Find returns the index of the chunk holding offset, or -1.
func (p *Partition) Find(offset int64) int {
	i := sort.Search(len(p.Chunks), func(i int) bool { return p.Chunks[i].NextOffset > offset })
	if i == len(p.Chunks) || p.Chunks[i].BaseOffset > offset {
		return -1
	}
	return i
}

// Apply folds one entry into the state at slot seq.
func (s *State) Apply(seq uint64, en *Entry) []Result {
	s.Seq = seq
	results := make([]Result, len(en.Ops))
	s.heard(en.Writer, en.TimeMs)
	for i, op := range en.Ops {
		switch op := op.(type) {
		case CreateTopic:
			results[i].Err = s.createTopic(op)
		case DeleteTopic:
			if t := s.byID[op.ID]; t != nil {
				delete(s.topics, t.Name)
				delete(s.byID, t.ID)
				s.dropChunks(en.TimeMs, t)
				s.dropTopicOffsets(t.ID)
			} else {
				results[i].Err = ErrUnknownTopic
			}
		case CreatePartitions:
			results[i].Err = s.createPartitions(op)
		case Commit:
			results[i].Parts = s.commit(en.TimeMs, op)
		case ReserveProducers:
			results[i].FirstProducerID = s.nextProducerID
			s.nextProducerID += int64(max(op.Count, 0))
		case GroupGeneration:
			results[i].Err = s.groupGeneration(op)
		case CommitOffsets:
			results[i].OffsetErrs, results[i].Err = s.commitOffsets(op)
		case DeleteGroups:
			for _, g := range op.Groups {
				delete(s.groups, g)
			}
		case DeleteOffsets:
			results[i].Err = s.deleteOffsets(op)
		case AgentHeartbeat:
			results[i].NodeID = s.agentHeartbeat(en.Writer, en.TimeMs, op)
		case SetTopicConfigs:
			results[i].Err = s.setTopicConfigs(op)
		case AdvanceLogStart:
			results[i].LogStart, results[i].Err = s.advanceLogStart(en.TimeMs, op)
		case ForgetObjects:
			for _, k := range op.Keys {
				delete(s.released, k)
			}
		case ReplaceChunks:
			results[i].Err = s.replaceChunks(en.TimeMs, op)
		case AcquireLease:
			results[i].Err = s.acquireLease(en.Writer, en.TimeMs, op)
		case ReleaseLease:
			s.releaseLease(en.Writer, op)
		case CleanChunks:
			results[i].Err = s.cleanChunks(en.TimeMs, op)
		}
	}
	return results
}

func (s *State) createTopic(op CreateTopic) error {
	if s.topics[op.Name] != nil || s.byID[op.ID] != nil {
		return ErrTopicExists
	}
	if op.Partitions < 1 {
		return ErrInvalidPartitions
	}
	// Copy the configs: the op's map belongs to the caller (or the entry).
	t := &Topic{Name: op.Name, ID: op.ID, ReplicationFactor: op.ReplicationFactor, Configs: maps.Clone(op.Configs)}
	t.grow(op.Partitions)
	s.topics[t.Name] = t
	s.byID[t.ID] = t
	return nil
}

func (t *Topic) grow(n int32) {
	for int32(len(t.Partitions)) < n {
		t.Partitions = append(t.Partitions, &Partition{})
	}
}

func (s *State) createPartitions(op CreatePartitions) error {
	t := s.byID[op.ID]
	if t == nil {
		return ErrUnknownTopic
	}
	if op.Count <= int32(len(t.Partitions)) {
		return ErrInvalidPartitions
	}
	t.grow(op.Count)
	return nil
}

func (s *State) commit(nowMs int64, op Commit) [][]BatchResult {
	out := make([][]BatchResult, len(op.Parts))
	for i, part := range op.Parts {
		res := make([]BatchResult, len(part.Batches))
		out[i] = res
		var p *Partition
		if t := s.byID[part.Topic]; t != nil {
			p = t.Partition(part.Partition)
		}
		if p == nil {
			for j := range res {
				res[j].Err = ErrUnknownTopic
			}
			continue
		}
		extend := false // may the next accepted batch extend the last chunk?
		for j, b := range part.Batches {
			if b.Records <= 0 || b.Len <= 0 || b.Pos < 0 {
				// Only a faulty writer sends this; taking it would move
				// the high watermark back. Refused like a bad sequence,
				// so the log goes on for everyone.
				res[j].Err = ErrInvalidBatch
				extend = false
				continue
			}
			dupOffset, err := p.checkProducer(nowMs, b)
			if err != nil {
				res[j].Err = err
				extend = false
				continue
			}
			if dupOffset >= 0 {
				res[j].BaseOffset = dupOffset
				extend = false
				continue
			}
			base := p.HighWatermark
			res[j].BaseOffset = base
			p.HighWatermark += int64(b.Records)
			p.recordProducer(nowMs, b, base)
			if n := len(p.Chunks); extend && n > 0 {
				c := &p.Chunks[n-1]
				c.Len += b.Len
				c.NextOffset = p.HighWatermark
				c.MaxTimestamp = max(c.MaxTimestamp, b.MaxTimestamp)
			} else {
				p.Chunks = append(p.Chunks, Chunk{Object: op.Object, Pos: b.Pos, Len: b.Len,
					BaseOffset: base, NextOffset: p.HighWatermark, MaxTimestamp: b.MaxTimestamp})
				s.ref(op.Object)
			}
			// Only a batch that directly follows in the object may join the chunk.
			extend = j+1 < len(part.Batches) && part.Batches[j+1].Pos == b.Pos+b.Len
		}
	}
	if s.objRefs[op.Object] == 0 && op.Object != "" {
		s.release(nowMs, op.Object) // nothing in it was accepted
	}
	return out
}

// checkProducer applies Kafka's idempotence rules. It returns the original
// base offset (>= 0) for a duplicate, -1 for a new batch, or an error.
func (p *Partition) checkProducer(nowMs int64, b CommitBatch) (int64, error) {
	if b.ProducerID < 0 {
		return -1, nil
	}
	ps := p.producers[b.ProducerID]
	if ps != nil && nowMs-ps.lastMs > producerExpiryMs {
		ps = nil
	}
	if ps == nil {
		return -1, nil // a producer we do not know may start anywhere
	}
	if b.ProducerEpoch < ps.epoch {
		return -1, ErrInvalidProducerEpoch
	}
	last := lastSeq(b)
	if b.ProducerEpoch == ps.epoch {
		for _, r := range ps.recent {
			if r.first == b.BaseSequence && r.last == last {
				return r.baseOffset, nil
			}
		}
		next := int32(0) // after MaxInt32 comes 0; prev+1 would overflow to MinInt32
		if prev := ps.recent[len(ps.recent)-1].last; prev != math.MaxInt32 {
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
		p.producers = map[int64]*producerState{}
	}
	ps := p.producers[b.ProducerID]
	if ps == nil || ps.epoch != b.ProducerEpoch || nowMs-ps.lastMs > producerExpiryMs {
		ps = &producerState{epoch: b.ProducerEpoch}
		p.producers[b.ProducerID] = ps
	}
	ps.lastMs = max(ps.lastMs, nowMs)
	if len(ps.recent) == recentBatches {
		copy(ps.recent, ps.recent[1:])
		ps.recent = ps.recent[:recentBatches-1]
	}
	ps.recent = append(ps.recent, seqRange{first: b.BaseSequence, last: lastSeq(b), baseOffset: base})
}
