package meta

import (
	"errors"
	"maps"
	"math"
	"slices"
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
	objRefs        map[string]int               // object → chunks referring to it
	released       map[string]int64             // object → when no chunk referred to it any more
	leases         map[string]Lease             // job → its lease (leases.go)
	format         Format                       // the cluster format (format.go)
	condemned      map[string]condemnation      // orphans condemned, not yet forgotten (condemn.go)
	commitFloor    uint64                       // ops whose Since is below it are refused (condemn.go)
	partitions     int                          // of all topics, against the hard bounds (bounds.go)
	members        map[string]member            // every writer, for the format (format.go)
	nums           map[string]appendNum         // every writer's newest append number (sequencer.go)
	membersSince   int64                        // when members became complete: 0 from the start, -1 not yet
	memberEpoch    int32                        // changes of the member set (membership.go)
	scram          map[scramKey]ScramCredential // (security.go)
	acls           *ACLs                        // immutable; replaced on change (security.go)
	txns           map[string]*Txn              // by transactional id (txn.go)
	txnByPID       map[int64]string             // the transactional id each producer id holds
	// Of the open transactions (txn.go): the partitions they added, and
	// how many will commit an offset of each group's partition.
	openTxnParts      int
	pendingTxnOffsets map[pendingKey]int
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
	producers     map[int64]producerState
	openTxns      map[int64]int64 // producer id → first offset of its open transaction (txn.go); replaced, never changed
	aborted       []AbortedTxn    // by marker offset; appended to a clipped copy, never changed in place
}

// Chunk is a run of contiguous batches of one partition in one object.
type Chunk struct {
	Object       string
	Pos, Len     int64
	BaseOffset   int64 // offset of the first batch
	NextOffset   int64 // one past the last offset
	MaxTimestamp int64
}

// Result is the outcome of one op, in the order of the entry's ops.
type Result struct {
	Err             error
	FirstProducerID int64           // ReserveProducers
	Parts           [][]BatchResult // Commit: per part, per batch
	OffsetErrs      []error         // CommitOffsets: per offset (unknown topics)
	NodeID          int32           // AgentHeartbeat: the writer's broker id
	LogStart        int64           // AdvanceLogStart: the log start after it
	Keys            []string        // CondemnObjects: the objects it condemned
	Expired         int             // ExpireProducers: producer states dropped
	Contributed     []Result        // Contribute: its ops' results
	ACLErrs         []error         // CreateACLs: per binding
	DeletedACLs     [][]ACL         // DeleteACLs: per filter, what it matched
	ProducerEpoch   int16           // InitTxn, with FirstProducerID: the producer id and epoch
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
		leases: map[string]Lease{}, format: Format1, condemned: map[string]condemnation{}, members: map[string]member{},
		nums: map[string]appendNum{}, scram: map[scramKey]ScramCredential{}, txns: map[string]*Txn{}, txnByPID: map[int64]string{},
		pendingTxnOffsets: map[pendingKey]int{}}
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
	return s.applyAppend(seq, en.Writer, en.TimeMs, en.Num, en.Ops)
}

// applyAppend applies one writer's append: an entry, or a contribution in
// the sequencer's entry (sequencer.go), which holds no other.
func (s *State) applyAppend(seq uint64, writer string, timeMs int64, num uint64, ops []Op) []Result {
	results := make([]Result, len(ops))
	s.heard(writer, timeMs)
	s.heardMember(writer, timeMs)
	if !s.advanceNum(writer, num, timeMs) {
		for i := range results {
			results[i].Err = ErrDuplicate
		}
		return results
	}
	for i, op := range ops {
		if f := OpFormat(op); f > s.format {
			// Never written by a correct agent (Log.write checks); an
			// agent of the old format would not apply it either.
			results[i].Err = ErrFormat
			continue
		}
		switch op := op.(type) {
		case CreateTopic:
			results[i].Err = s.createTopic(op)
		case DeleteTopic:
			if t := s.byID[op.ID]; t != nil {
				delete(s.topics, t.Name)
				delete(s.byID, t.ID)
				s.partitions -= len(t.Partitions)
				s.dropChunks(timeMs, t)
				s.dropTopicOffsets(t.ID)
			} else {
				results[i].Err = ErrUnknownTopic
			}
		case CreatePartitions:
			results[i].Err = s.createPartitions(op)
		case Commit:
			results[i].Parts = s.commit(writer, timeMs, op)
		case ReserveProducers:
			results[i].FirstProducerID, results[i].Err = s.reserveProducers(op)
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
			results[i].NodeID = s.agentHeartbeat(writer, timeMs, op)
		case SetTopicConfigs:
			results[i].Err = s.setTopicConfigs(op)
		case AdvanceLogStart:
			results[i].LogStart, results[i].Err = s.advanceLogStart(timeMs, op)
		case ForgetObjects:
			for _, k := range op.Keys {
				delete(s.released, k)
				s.forgetCondemned(k)
			}
		case ReplaceChunks:
			results[i].Err = s.replaceChunks(timeMs, op)
		case AcquireLease:
			results[i].Err = s.acquireLease(writer, timeMs, op)
		case ReleaseLease:
			s.releaseLease(writer, timeMs, op)
		case CleanChunks:
			results[i].Err = s.cleanChunks(timeMs, op)
		case AnnounceFormat:
			s.announceFormat(writer, op)
		case SetFormat:
			s.setFormat(timeMs, op)
		case LeaveCluster:
			s.leaveCluster(writer)
		case ExpireAgent:
			results[i].Err = s.expireAgent(op)
		case CondemnObjects:
			results[i].Keys = s.condemnObjects(seq, timeMs, op)
		case ExpireProducers:
			results[i].Expired = s.expireProducers(op)
		case SetScramCredential:
			results[i].Err = s.setScramCredential(op)
		case DeleteScramCredential:
			results[i].Err = s.deleteScramCredential(op)
		case CreateACLs:
			results[i].ACLErrs = s.createACLs(op)
		case DeleteACLs:
			results[i].DeletedACLs = s.deleteACLs(op)
		case InitTxn:
			results[i].FirstProducerID, results[i].ProducerEpoch, results[i].Err = s.initTxn(writer, timeMs, op)
			s.releaseUnused(timeMs, op.Markers.Object) // markers the op did not take
		case AddToTxn:
			results[i].Err = s.addToTxn(timeMs, op)
		case TxnCommitOffsets:
			results[i].OffsetErrs, results[i].Err = s.txnCommitOffsets(timeMs, op)
		case EndTxn:
			results[i].Err = s.endTxn(writer, timeMs, op)
			s.releaseUnused(timeMs, op.Markers.Object)
		case ExpireTxns:
			results[i].Expired = s.expireTxns(op)
		case Contribute:
			results[i].Contributed = s.applyAppend(seq, op.Writer, op.TimeMs, op.Num, op.Ops)
		}
	}
	return results
}

func (s *State) createTopic(op CreateTopic) error {
	if s.topics[op.Name] != nil || s.byID[op.ID] != nil {
		return ErrTopicExists
	}
	if err := CheckTopicName(op.Name); err != nil {
		return err
	}
	if err := s.checkPartitions(0, op.Partitions); err != nil {
		return err
	}
	// Copy the configs: the op's map belongs to the caller (or the entry).
	t := &Topic{Name: op.Name, ID: op.ID, ReplicationFactor: op.ReplicationFactor, Configs: maps.Clone(op.Configs)}
	s.grow(t, op.Partitions)
	s.topics[t.Name] = t
	s.byID[t.ID] = t
	return nil
}

// grow adds partitions up to n, which checkPartitions has bounded.
func (s *State) grow(t *Topic, n int32) {
	add := int(n) - len(t.Partitions)
	s.partitions += add
	t.Partitions = slices.Grow(t.Partitions, add)
	slab := make([]Partition, add) // one allocation, not one per partition
	for i := range slab {
		t.Partitions = append(t.Partitions, &slab[i])
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
	if err := s.checkPartitions(len(t.Partitions), op.Count); err != nil {
		return err
	}
	s.grow(t, op.Count)
	return nil
}

func (s *State) commit(writer string, nowMs int64, op Commit) [][]BatchResult {
	out := make([][]BatchResult, len(op.Parts))
	var refuse error
	switch {
	case s.refused(op.Object, op.Since):
		refuse = ErrCondemned
	case s.fenced(writer):
		refuse = ErrFenced
	}
	if refuse != nil {
		for i, part := range op.Parts {
			out[i] = make([]BatchResult, len(part.Batches))
			for j := range out[i] {
				out[i][j].Err = refuse
			}
		}
		s.releaseUnused(nowMs, op.Object)
		return out
	}
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
			if b.Records <= 0 || b.Len <= 0 || b.Pos < 0 || b.Len > op.Size-b.Pos || p.HighWatermark > math.MaxInt64-int64(b.Records) {
				// Only a faulty writer sends this; taking it would move
				// the high watermark back. Refused like a bad sequence,
				// so the log goes on for everyone.
				res[j].Err = ErrInvalidBatch
				extend = false
				continue
			}
			dupOffset, err := p.checkProducer(nowMs, b)
			if err == nil && dupOffset < 0 && (b.Transactional || b.Control) {
				err = ErrInvalidBatch // markers come only with EndTxn and InitTxn
				if b.Transactional && !b.Control && b.ProducerID >= 0 {
					err = s.checkTxnBatch(part.Topic, part.Partition, b)
				}
			}
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
			if b.Transactional {
				p.openTxn(b.ProducerID, base)
			}
			if n := len(p.Chunks); extend && n > 0 {
				// Only a chunk this op appended is extended: no chunk an
				// earlier entry made is ever changed in place, which lets
				// State.Clone share the chunk slices.
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
	s.releaseUnused(nowMs, op.Object) // if nothing in it was accepted
	return out
}
