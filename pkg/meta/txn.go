package meta

import (
	"errors"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
)

// Transactions (Format7), as Kafka's transaction coordinator keeps them,
// but in the log: a transactional id's producer id and epoch, its status,
// the partitions and groups it has added and the offsets it will commit.
//
// Kafka's coordinator moves a transaction through PrepareCommit, writes
// the markers to every partition, then CompleteCommit, and must resume
// that after a crash. Here ending a transaction is one op, EndTxn, that
// carries a marker object (one control batch per partition, written to
// the bucket before the op) and, applied, gives every marker its offset,
// resolves the partitions' open transactions, commits or drops the
// pending offsets and completes the transaction, all in one entry: a
// coordinator that dies before the entry lands leaves the transaction
// open (its client retries, or the timeout aborts it), never half done.
// Every check is made against the logged state, so any agent may serve
// any transactional request; the coordinator a client is given (by
// rendezvous, as for groups) is the one that aborts its timed-out
// transactions.
//
// Per partition the state keeps, for each producer with a transaction
// open in it, the offset of its first batch there (the last stable offset
// is the smallest, or the high watermark), and the aborted transactions'
// offset ranges, which read_committed fetches return so that clients drop
// aborted batches (Kafka's aborted-transaction index).

// Errors of the transactional ops, mapped by pkg/protocol to Kafka's codes.
var (
	// ErrInvalidTxnState: the transaction is not in a state the op needs
	// (INVALID_TXN_STATE), or a transactional batch for a partition the
	// transaction did not add (KIP-890's verification).
	ErrInvalidTxnState = errors.New("meta: invalid transaction state")
	// ErrProducerFenced: a newer epoch of the transactional id exists.
	ErrProducerFenced = errors.New("meta: producer fenced by a newer epoch")
	// ErrInvalidProducerIDMapping: no such transactional id, or another
	// producer id holds it.
	ErrInvalidProducerIDMapping = errors.New("meta: producer id does not hold the transactional id")
	// ErrConcurrentTransactions: the transaction changed between the
	// writing of its markers and their op (CONCURRENT_TRANSACTIONS: the
	// client retries).
	ErrConcurrentTransactions = errors.New("meta: the transaction changed meanwhile")
)

// Bounds of the transaction state, so that no client can grow it without
// limit: transactional ids, and partitions and groups in one transaction.
const (
	MaxTransactionalIDs = 1 << 20
	MaxTxnPartitions    = 100_000
	MaxTxnGroups        = 1000
	// MaxOpenTxnPartitions bounds the partitions of all open
	// transactions together.
	MaxOpenTxnPartitions = 1 << 20
)

// TxnStatus is a transaction's state, by Kafka's names (Status.String).
type TxnStatus uint8

const (
	TxnEmpty TxnStatus = iota
	TxnOngoing
	TxnCompleteCommit
	TxnCompleteAbort
)

func (s TxnStatus) String() string {
	switch s {
	case TxnOngoing:
		return "Ongoing"
	case TxnCompleteCommit:
		return "CompleteCommit"
	case TxnCompleteAbort:
		return "CompleteAbort"
	}
	return "Empty"
}

// Txn is what the log knows of one transactional id.
type Txn struct {
	ProducerID int64
	Epoch      int16
	TimeoutMs  int32
	Status     TxnStatus
	StartMs    int64 // when the open transaction began; -1 if none is open
	LastMs     int64 // the last change
	// LastProducerID and LastEpoch are the producer id and epoch before
	// the last KIP-360 bump (InitTxn with the current ones), so that a
	// retry of that bump, whose answer was lost, gets the same answer;
	// -1 otherwise, as in Kafka.
	LastProducerID int64
	LastEpoch      int16
	Partitions     []GroupPartition // added to the open transaction, sorted
	Groups         []string         // whose offsets it commits, sorted
	offsets        []CommitOffsets  // pending, per group (Generation and Member unused)
}

// AbortedTxn is one aborted transaction's range in a partition: from its
// first batch to its marker.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// InitTxn gives a transactional id its producer id and next epoch
// (InitProducerId with a transactional id), fencing any older producer of
// it. An open transaction is aborted by it, with Markers (written for the
// transaction as the state showed it; ErrConcurrentTransactions if it has
// changed since). ProducerID and Epoch are KIP-360's: the caller's current
// ones, -1 when it has none.
type InitTxn struct {
	TxnID      string
	TimeoutMs  int32
	ProducerID int64
	Epoch      int16
	Markers    Commit
}

// AddToTxn adds partitions (AddPartitionsToTxn) and groups
// (AddOffsetsToTxn) to the transaction, opening it if none is open.
type AddToTxn struct {
	TxnID      string
	ProducerID int64
	Epoch      int16
	Partitions []GroupPartition
	Groups     []string
}

// TxnCommitOffsets stores offsets the transaction commits to a group it
// added, when it commits. A Generation >= 0 must be the group's logged one.
type TxnCommitOffsets struct {
	TxnID      string
	ProducerID int64
	Epoch      int16
	Offsets    CommitOffsets
}

// EndTxn commits or aborts the open transaction with Markers (Commit
// naming a control batch per partition the transaction added, in its
// order). Timeout marks the coordinator's abort of a transaction past its
// timeout, which also bumps the epoch: the producer is fenced, as Kafka
// fences it.
type EndTxn struct {
	TxnID      string
	ProducerID int64
	Epoch      int16
	Commit     bool
	Timeout    bool
	// StartMs is, for a Timeout, the start of the transaction the
	// coordinator saw time out: a newer one of the same epoch (EndTxn
	// before v5 does not bump it) is not aborted in its place.
	StartMs int64
	Markers Commit
}

// ExpireTxns forgets the transactional ids with no open transaction whose
// last change is before BeforeMs (transactional.id.expiration.ms).
type ExpireTxns struct{ BeforeMs int64 }

func (InitTxn) kind() uint8          { return kindInitTxn }
func (AddToTxn) kind() uint8         { return kindAddToTxn }
func (TxnCommitOffsets) kind() uint8 { return kindTxnCommitOffsets }
func (EndTxn) kind() uint8           { return kindEndTxn }
func (ExpireTxns) kind() uint8       { return kindExpireTxns }

// Txn returns a copy of the transactional id's state.
func (s *State) Txn(id string) (Txn, bool) {
	t := s.txns[id]
	if t == nil {
		return Txn{}, false
	}
	c := *t
	c.Partitions = slices.Clone(t.Partitions)
	c.Groups = slices.Clone(t.Groups)
	c.offsets = nil
	return c, true
}

// TxnIDs returns every transactional id the log knows, sorted.
func (s *State) TxnIDs() []string {
	ids := make([]string, 0, len(s.txns))
	for id := range s.txns {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// TxnOfProducer returns the transactional id a producer id holds.
func (s *State) TxnOfProducer(pid int64) (string, bool) {
	id, ok := s.txnByPID[pid]
	return id, ok
}

// PendingTxnOffset reports whether an open transaction will commit an
// offset of the group's partition (OffsetFetch's RequireStable).
func (s *State) PendingTxnOffset(group string, topic TopicID, partition int32) bool {
	return s.pendingTxnOffsets[pendingKey{group, GroupPartition{topic, partition}}] > 0
}

// LastStable returns the partition's last stable offset: the first offset
// of its oldest open transaction, or the high watermark.
func (p *Partition) LastStable() int64 {
	lso := p.HighWatermark
	for _, first := range p.openTxns {
		lso = min(lso, first)
	}
	return max(lso, p.LogStart) // as Kafka: retention may pass an open transaction's start
}

// Aborted returns the aborted transactions whose range meets offsets
// [from, to), oldest marker first.
func (p *Partition) Aborted(from, to int64) []AbortedTxn {
	i := sort.Search(len(p.aborted), func(i int) bool { return p.aborted[i].LastOffset >= from })
	var out []AbortedTxn
	for _, a := range p.aborted[i:] {
		if a.FirstOffset < to {
			out = append(out, a)
		}
	}
	return out
}

// HasPartition reports whether the transaction added the partition.
func (t *Txn) HasPartition(gp GroupPartition) bool {
	_, ok := slices.BinarySearchFunc(t.Partitions, gp, cmpGroupPartition)
	return ok
}

func cmpGroupPartition(a, b GroupPartition) int {
	if c := compareIDs(a.Topic, b.Topic); c != 0 {
		return c
	}
	return int(a.Partition) - int(b.Partition)
}

func compareIDs(a, b TopicID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// CheckTxnProducer checks that pid and epoch are the transaction's (t
// nil: no such transactional id): ErrInvalidProducerIDMapping or
// ErrProducerFenced otherwise.
func CheckTxnProducer(t *Txn, pid int64, epoch int16) error {
	switch {
	case t == nil || t.ProducerID != pid:
		return ErrInvalidProducerIDMapping
	case epoch != t.Epoch:
		return ErrProducerFenced
	}
	return nil
}

func (s *State) initTxn(writer string, nowMs int64, op InitTxn) (int64, int16, error) {
	t := s.txns[op.TxnID]
	if t == nil {
		if len(s.txns) >= MaxTransactionalIDs || s.nextProducerID == math.MaxInt64 {
			return -1, -1, ErrLimit
		}
		if op.TxnID == "" {
			return -1, -1, ErrInvalidTxnState
		}
		t = &Txn{ProducerID: s.nextProducerID, TimeoutMs: op.TimeoutMs, StartMs: -1, LastMs: nowMs, LastProducerID: -1, LastEpoch: -1}
		s.nextProducerID++
		s.txns[op.TxnID] = t
		s.txnByPID[t.ProducerID] = op.TxnID
		return t.ProducerID, t.Epoch, nil
	}
	kip360 := op.ProducerID >= 0
	if kip360 && op.ProducerID == t.LastProducerID && op.Epoch == t.LastEpoch && t.Status != TxnOngoing {
		return t.ProducerID, t.Epoch, nil // a retry of the bump that made the current epoch
	}
	if kip360 && (op.ProducerID != t.ProducerID || op.Epoch != t.Epoch) {
		return -1, -1, ErrProducerFenced
	}
	if t.Status == TxnOngoing {
		if err := s.finishTxn(writer, nowMs, t, false, op.Markers); err != nil {
			return -1, -1, err
		}
	}
	pid, epoch := t.ProducerID, t.Epoch
	if err := s.bumpEpoch(op.TxnID, t); err != nil {
		return -1, -1, err
	}
	t.LastProducerID, t.LastEpoch = -1, -1
	if kip360 {
		t.LastProducerID, t.LastEpoch = pid, epoch
	}
	t.TimeoutMs, t.Status, t.LastMs = op.TimeoutMs, TxnEmpty, nowMs
	return t.ProducerID, t.Epoch, nil
}

// bumpEpoch gives the transactional id its next epoch, or a new producer
// id at epoch 0 when the epochs are used up, as Kafka does.
func (s *State) bumpEpoch(id string, t *Txn) error {
	if t.Epoch < math.MaxInt16-1 {
		t.Epoch++
		return nil
	}
	if s.nextProducerID == math.MaxInt64 {
		return ErrLimit
	}
	delete(s.txnByPID, t.ProducerID)
	t.ProducerID, t.Epoch = s.nextProducerID, 0
	s.nextProducerID++
	s.txnByPID[t.ProducerID] = id
	return nil
}

func (s *State) addToTxn(nowMs int64, op AddToTxn) error {
	t := s.txns[op.TxnID]
	if err := CheckTxnProducer(t, op.ProducerID, op.Epoch); err != nil {
		return err
	}
	for _, gp := range op.Partitions {
		if tp := s.byID[gp.Topic]; tp == nil || tp.Partition(gp.Partition) == nil {
			return ErrUnknownTopic
		}
	}
	parts := t.Partitions
	groups := t.Groups
	if t.Status != TxnOngoing {
		parts, groups = nil, nil
	}
	if len(op.Partitions) > MaxTxnPartitions || len(op.Groups) > MaxTxnGroups {
		return ErrLimit
	}
	parts = mergeSorted(parts, op.Partitions, cmpGroupPartition)
	groups = mergeSorted(groups, op.Groups, strings.Compare)
	added := len(parts) - len(t.Partitions)
	if t.Status != TxnOngoing {
		added = len(parts)
	}
	if len(parts) > MaxTxnPartitions || len(groups) > MaxTxnGroups || s.openTxnParts+added > MaxOpenTxnPartitions {
		return ErrLimit
	}
	if t.Status != TxnOngoing {
		t.Status, t.StartMs, t.offsets = TxnOngoing, nowMs, nil
	}
	s.openTxnParts += added
	t.Partitions, t.Groups, t.LastMs = parts, groups, nowMs
	return nil
}

// mergeSorted returns the sorted union of a sorted slice and more, as a
// new slice (a Txn's slices are shared with clones and never changed in
// place), in O(n log n) of more and O(n) of have.
func mergeSorted[T any](have, more []T, cmp func(a, b T) int) []T {
	add := slices.SortedFunc(slices.Values(more), cmp)
	add = slices.CompactFunc(add, func(a, b T) bool { return cmp(a, b) == 0 })
	out := make([]T, 0, len(have)+len(add))
	i, j := 0, 0
	for i < len(have) || j < len(add) {
		switch {
		case j == len(add) || i < len(have) && cmp(have[i], add[j]) < 0:
			out = append(out, have[i])
			i++
		case i == len(have) || cmp(have[i], add[j]) > 0:
			out = append(out, add[j])
			j++
		default: // equal
			out = append(out, have[i])
			i, j = i+1, j+1
		}
	}
	return out
}

func (s *State) txnCommitOffsets(nowMs int64, op TxnCommitOffsets) ([]error, error) {
	t := s.txns[op.TxnID]
	if err := CheckTxnProducer(t, op.ProducerID, op.Epoch); err != nil {
		return nil, err
	}
	group := op.Offsets.Group
	if _, ok := slices.BinarySearch(t.Groups, group); t.Status != TxnOngoing || !ok {
		return nil, ErrInvalidTxnState
	}
	if g := s.groups[group]; op.Offsets.Generation >= 0 && (g == nil || g.Generation != op.Offsets.Generation) {
		return nil, ErrIllegalGeneration
	}
	errs := make([]error, len(op.Offsets.Offsets))
	i := slices.IndexFunc(t.offsets, func(co CommitOffsets) bool { return co.Group == group })
	t.offsets = slices.Clone(t.offsets) // shared with clones: replaced, not changed
	if i < 0 {
		t.offsets = append(t.offsets, CommitOffsets{Group: group})
		i = len(t.offsets) - 1
	}
	pending := slices.Clone(t.offsets[i].Offsets)
	at := make(map[GroupPartition]int, len(pending))
	for k, o := range pending {
		at[GroupPartition{o.Topic, o.Partition}] = k
	}
	for k, o := range op.Offsets.Offsets {
		if tp := s.byID[o.Topic]; tp == nil || tp.Partition(o.Partition) == nil {
			errs[k] = ErrUnknownTopic
			continue
		}
		if o.Metadata != nil {
			m := *o.Metadata
			o.Metadata = &m
		}
		gp := GroupPartition{o.Topic, o.Partition}
		if j, ok := at[gp]; ok {
			pending[j] = o
			continue
		}
		at[gp] = len(pending)
		pending = append(pending, o)
		s.pendingTxnOffsets[pendingKey{group, gp}]++
	}
	t.offsets[i].Offsets = pending
	t.LastMs = nowMs
	return errs, nil
}

// pendingKey is one group's partition that an open transaction will
// commit an offset of.
type pendingKey struct {
	group string
	gp    GroupPartition
}

// forgetPending drops t's pending offsets from the index.
func (s *State) forgetPending(t *Txn) {
	for _, co := range t.offsets {
		for _, o := range co.Offsets {
			k := pendingKey{co.Group, GroupPartition{o.Topic, o.Partition}}
			if s.pendingTxnOffsets[k]--; s.pendingTxnOffsets[k] <= 0 {
				delete(s.pendingTxnOffsets, k)
			}
		}
	}
}

func (s *State) endTxn(writer string, nowMs int64, op EndTxn) error {
	t := s.txns[op.TxnID]
	if err := CheckTxnProducer(t, op.ProducerID, op.Epoch); err != nil {
		return err
	}
	if op.Timeout {
		// Only the transaction the coordinator saw time out, judged by
		// this entry's time, so every agent decides alike.
		if t.Status != TxnOngoing || t.StartMs != op.StartMs || nowMs-t.StartMs <= int64(t.TimeoutMs) {
			return ErrConcurrentTransactions
		}
		if err := s.finishTxn(writer, nowMs, t, false, op.Markers); err != nil {
			return err
		}
		t.LastProducerID, t.LastEpoch = -1, -1 // the producer is fenced, not retried (Kafka's PrepareEpochFence)
		return s.bumpEpoch(op.TxnID, t)
	}
	switch t.Status {
	case TxnOngoing:
		return s.finishTxn(writer, nowMs, t, op.Commit, op.Markers)
	case TxnCompleteCommit:
		if op.Commit {
			return nil // a retry of the commit that completed it
		}
	case TxnCompleteAbort:
		if !op.Commit {
			return nil
		}
	}
	return ErrInvalidTxnState
}

// finishTxn ends t's open transaction with markers m: every marker takes
// its partition's next offset, the partitions' open transactions of t's
// producer are resolved (an abort's range recorded), and a commit's
// offsets are committed. It changes nothing unless m is t's.
func (s *State) finishTxn(writer string, nowMs int64, t *Txn, commit bool, m Commit) error {
	if !markersMatch(t, m) {
		return ErrConcurrentTransactions
	}
	if m.Object != "" {
		switch {
		case s.refused(m.Object, m.Since):
			return ErrCondemned
		case s.fenced(writer):
			return ErrFenced
		}
	}
	for _, part := range m.Parts {
		tp := s.byID[part.Topic]
		if tp == nil {
			continue // deleted meanwhile: nothing to mark
		}
		p := tp.Partition(part.Partition)
		if p == nil || p.HighWatermark == math.MaxInt64 {
			continue // never for a partition the transaction added; no entry may crash the state
		}
		b := part.Batches[0]
		base := p.HighWatermark
		p.HighWatermark++
		p.Chunks = append(p.Chunks, Chunk{Object: m.Object, Pos: b.Pos, Len: b.Len, BaseOffset: base,
			NextOffset: p.HighWatermark, MaxTimestamp: b.MaxTimestamp})
		s.ref(m.Object)
		if first, open := p.openTxns[t.ProducerID]; open {
			if !commit {
				p.aborted = append(slices.Clip(p.aborted), AbortedTxn{ProducerID: t.ProducerID, FirstOffset: first, LastOffset: base})
			}
			p.openTxns = cloneWithout(p.openTxns, t.ProducerID)
		}
	}
	s.forgetPending(t)
	s.openTxnParts -= len(t.Partitions)
	if commit {
		for _, co := range t.offsets {
			g := s.groups[co.Group]
			if g == nil {
				g = newGroup()
				s.groups[co.Group] = g
			}
			for _, o := range co.Offsets {
				if tp := s.byID[o.Topic]; tp == nil || tp.Partition(o.Partition) == nil {
					continue
				}
				if g.offsets == nil {
					g.offsets = map[GroupPartition]GroupOffset{}
				}
				o.CommitMs = nowMs
				g.offsets[GroupPartition{o.Topic, o.Partition}] = o
			}
		}
	}
	t.Status = TxnCompleteAbort
	if commit {
		t.Status = TxnCompleteCommit
	}
	t.Partitions, t.Groups, t.offsets, t.StartMs, t.LastMs = nil, nil, nil, -1, nowMs
	return nil
}

// cloneWithout returns m without key k: a partition's open transactions
// are shared with clones of the state, so they are replaced, not changed.
func cloneWithout(m map[int64]int64, k int64) map[int64]int64 {
	c := maps.Clone(m)
	delete(c, k)
	if len(c) == 0 {
		return nil // as a snapshot decodes it
	}
	return c
}

// markersMatch reports whether m holds exactly one control batch of t's
// producer and epoch for each partition t added, in t's order; no object
// when it added none.
func markersMatch(t *Txn, m Commit) bool {
	if len(t.Partitions) == 0 {
		return m.Object == "" && len(m.Parts) == 0
	}
	if m.Object == "" || len(m.Parts) != len(t.Partitions) {
		return false
	}
	for i, part := range m.Parts {
		if (GroupPartition{part.Topic, part.Partition}) != t.Partitions[i] || len(part.Batches) != 1 {
			return false
		}
		b := part.Batches[0]
		if !b.Control || b.Records != 1 || b.ProducerID != t.ProducerID || b.ProducerEpoch != t.Epoch ||
			b.Pos < 0 || b.Len <= 0 || b.Len > m.Size-b.Pos {
			return false
		}
	}
	return true
}

// checkTxnBatch applies a transactional batch's rules when it is
// committed: its producer's transaction is open, at its epoch, and has
// added the partition.
func (s *State) checkTxnBatch(topic TopicID, partition int32, b CommitBatch) error {
	id, ok := s.txnByPID[b.ProducerID]
	if !ok {
		return ErrInvalidTxnState
	}
	t := s.txns[id]
	switch {
	case t == nil:
		return ErrInvalidTxnState // never in a state the log made; no entry may crash it
	case b.ProducerEpoch < t.Epoch:
		return ErrInvalidProducerEpoch
	case b.ProducerEpoch > t.Epoch, t.Status != TxnOngoing, !t.HasPartition(GroupPartition{topic, partition}):
		return ErrInvalidTxnState
	}
	return nil
}

// openTxn records that a transactional batch at base opened (or
// continues) its producer's transaction in the partition.
func (p *Partition) openTxn(pid, base int64) {
	if _, open := p.openTxns[pid]; open {
		return
	}
	c := maps.Clone(p.openTxns) // shared with clones: replaced, not changed
	if c == nil {
		c = map[int64]int64{}
	}
	c[pid] = base
	p.openTxns = c
}

// trimAborted forgets aborted ranges wholly below the log start.
func (p *Partition) trimAborted() { p.trimAbortedBelow(p.LogStart) }

// trimAbortedBelow forgets aborted ranges that end (their marker) before
// offset.
func (p *Partition) trimAbortedBelow(offset int64) {
	i := sort.Search(len(p.aborted), func(i int) bool { return p.aborted[i].LastOffset >= offset })
	if i > 0 {
		p.aborted = slices.Clone(p.aborted[i:])
		if len(p.aborted) == 0 {
			p.aborted = nil
		}
	}
}

func (s *State) expireTxns(op ExpireTxns) int {
	// Only ids with nothing open go, so the pending index and the open
	// partition count are untouched.
	n := 0
	for id, t := range s.txns {
		if t.Status != TxnOngoing && t.LastMs < op.BeforeMs {
			delete(s.txns, id)
			delete(s.txnByPID, t.ProducerID)
			n++
		}
	}
	return n
}

// TimedOutTxns returns the ids of the open transactions begun more than
// their timeout before nowMs, sorted.
func (s *State) TimedOutTxns(nowMs int64) []string {
	var ids []string
	for id, t := range s.txns {
		if t.Status == TxnOngoing && nowMs-t.StartMs > int64(t.TimeoutMs) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// OldestIdleTxnMs returns the last change of the longest-idle
// transactional id with no open transaction, or -1 if there is none.
func (s *State) OldestIdleTxnMs() int64 {
	oldest := int64(-1)
	for _, t := range s.txns {
		if t.Status != TxnOngoing && (oldest < 0 || t.LastMs < oldest) {
			oldest = t.LastMs
		}
	}
	return oldest
}

// Encodings.

func (op InitTxn) encode(e *encoder) {
	e.str(op.TxnID)
	e.svar(int64(op.TimeoutMs))
	e.svar(op.ProducerID)
	e.svar(int64(op.Epoch))
	op.Markers.encode(e)
}

func decodeInitTxn(d *decoder) Op {
	return InitTxn{TxnID: d.str(), TimeoutMs: d.i32(), ProducerID: d.svar(), Epoch: int16(d.i32()), Markers: decodeCommit(d).(Commit)}
}

func encodePartitions(e *encoder, ps []GroupPartition) {
	e.uvar(uint64(len(ps)))
	for _, p := range ps {
		e.id(p.Topic)
		e.svar(int64(p.Partition))
	}
}

func decodePartitions(d *decoder) []GroupPartition {
	n := d.count(17)
	if n == 0 {
		return nil
	}
	ps := make([]GroupPartition, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		ps = append(ps, GroupPartition{Topic: d.id(), Partition: d.i32()})
	}
	return ps
}

func (op AddToTxn) encode(e *encoder) {
	e.str(op.TxnID)
	e.svar(op.ProducerID)
	e.svar(int64(op.Epoch))
	encodePartitions(e, op.Partitions)
	e.strs(op.Groups)
}

func decodeAddToTxn(d *decoder) Op {
	return AddToTxn{TxnID: d.str(), ProducerID: d.svar(), Epoch: int16(d.i32()), Partitions: decodePartitions(d), Groups: d.strs()}
}

func (op TxnCommitOffsets) encode(e *encoder) {
	e.str(op.TxnID)
	e.svar(op.ProducerID)
	e.svar(int64(op.Epoch))
	op.Offsets.encode(e)
}

func decodeTxnCommitOffsets(d *decoder) Op {
	return TxnCommitOffsets{TxnID: d.str(), ProducerID: d.svar(), Epoch: int16(d.i32()), Offsets: decodeCommitOffsets(d).(CommitOffsets)}
}

func (op EndTxn) encode(e *encoder) {
	e.str(op.TxnID)
	e.svar(op.ProducerID)
	e.svar(int64(op.Epoch))
	e.bool(op.Commit)
	e.bool(op.Timeout)
	e.svar(op.StartMs)
	op.Markers.encode(e)
}

func decodeEndTxn(d *decoder) Op {
	return EndTxn{TxnID: d.str(), ProducerID: d.svar(), Epoch: int16(d.i32()), Commit: d.bool(), Timeout: d.bool(), StartMs: d.svar(),
		Markers: decodeCommit(d).(Commit)}
}

func (op ExpireTxns) encode(e *encoder) { e.svar(op.BeforeMs) }

func decodeExpireTxns(d *decoder) Op { return ExpireTxns{BeforeMs: d.svar()} }

// Snapshot section (version 12): the transactional ids (sorted), each
// with its producer id, epoch, timeout, status, start and last change,
// partitions, groups and pending offsets; then every partition with open
// or aborted transactions: topic id, partition, the open ones (producer id,
// first offset; sorted by producer id) and the aborted ranges.
func (s *State) encodeTxns(e *encoder) {
	ids := s.TxnIDs()
	e.uvar(uint64(len(ids)))
	for _, id := range ids {
		t := s.txns[id]
		e.str(id)
		e.svar(t.ProducerID)
		e.svar(int64(t.Epoch))
		e.svar(int64(t.TimeoutMs))
		e.u8(uint8(t.Status))
		e.svar(t.StartMs)
		e.svar(t.LastMs)
		e.svar(t.LastProducerID)
		e.svar(int64(t.LastEpoch))
		encodePartitions(e, t.Partitions)
		e.strs(t.Groups)
		e.uvar(uint64(len(t.offsets)))
		for _, co := range t.offsets {
			co.encode(e)
		}
	}
	type part struct {
		id TopicID
		i  int32
		p  *Partition
	}
	var parts []part
	for _, n := range s.TopicNames() {
		t := s.topics[n]
		for i, p := range t.Partitions {
			if len(p.openTxns) > 0 || len(p.aborted) > 0 {
				parts = append(parts, part{t.ID, int32(i), p})
			}
		}
	}
	e.uvar(uint64(len(parts)))
	for _, pt := range parts {
		e.id(pt.id)
		e.svar(int64(pt.i))
		pids := make([]int64, 0, len(pt.p.openTxns))
		for id := range pt.p.openTxns {
			pids = append(pids, id)
		}
		slices.Sort(pids)
		e.uvar(uint64(len(pids)))
		for _, id := range pids {
			e.svar(id)
			e.svar(pt.p.openTxns[id])
		}
		e.uvar(uint64(len(pt.p.aborted)))
		for _, a := range pt.p.aborted {
			e.svar(a.ProducerID)
			e.svar(a.FirstOffset)
			e.svar(a.LastOffset)
		}
	}
}

func (s *State) decodeTxns(d *decoder) {
	n := d.count(8)
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		id := d.str()
		t := &Txn{ProducerID: d.svar(), Epoch: int16(d.i32()), TimeoutMs: d.i32(), Status: TxnStatus(d.u8()),
			StartMs: d.svar(), LastMs: d.svar(), LastProducerID: d.svar(), LastEpoch: int16(d.i32()),
			Partitions: decodePartitions(d), Groups: d.strs()}
		if _, dup := s.txnByPID[t.ProducerID]; t.Status > TxnCompleteAbort || i > 0 && id <= prev || dup {
			d.fail("transaction") // what EncodeSnapshot writes: sorted ids, one per producer id
			return
		}
		prev = id
		no := d.count(3)
		for k := 0; k < no && d.err == nil; k++ {
			t.offsets = append(t.offsets, decodeCommitOffsets(d).(CommitOffsets))
		}
		s.txns[id] = t
		s.txnByPID[t.ProducerID] = id
		if t.Status == TxnOngoing {
			s.openTxnParts += len(t.Partitions)
			for _, co := range t.offsets {
				for _, o := range co.Offsets {
					s.pendingTxnOffsets[pendingKey{co.Group, GroupPartition{o.Topic, o.Partition}}]++
				}
			}
		}
	}
	np := d.count(19)
	for i := 0; i < np && d.err == nil; i++ {
		tid, pi := d.id(), d.i32()
		var p *Partition
		if t := s.byID[tid]; t != nil {
			p = t.Partition(pi)
		}
		if p == nil {
			d.fail("transaction partition")
			return
		}
		if no := d.count(2); no > 0 {
			p.openTxns = make(map[int64]int64, no)
			for k := 0; k < no && d.err == nil; k++ {
				pid := d.svar()
				p.openTxns[pid] = d.svar()
			}
		}
		na := d.count(3)
		for k := 0; k < na && d.err == nil; k++ {
			p.aborted = append(p.aborted, AbortedTxn{ProducerID: d.svar(), FirstOffset: d.svar(), LastOffset: d.svar()})
		}
	}
}

// ProducerView is one idempotent or transactional producer's state in a
// partition (DescribeProducers).
type ProducerView struct {
	ID           int64
	Epoch        int16
	LastSequence int32
	LastMs       int64
	TxnStart     int64 // first offset of its open transaction here; -1 if none
}

// Producers returns the producers the partition remembers, by id.
func (p *Partition) Producers() []ProducerView {
	out := make([]ProducerView, 0, len(p.producers))
	for id, ps := range p.producers {
		v := ProducerView{ID: id, Epoch: ps.epoch, LastSequence: -1, LastMs: ps.lastMs, TxnStart: -1}
		if ps.n > 0 {
			v.LastSequence = ps.recent[ps.n-1].last
		}
		if first, ok := p.openTxns[id]; ok {
			v.TxnStart = first
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
