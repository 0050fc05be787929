package meta

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// txnState is a Format7 state whose writer "test" is a member, with topic
// "t" (testID(1)) of n partitions.
func txnState(t *testing.T, n int32) *State {
	t.Helper()
	s := NewState()
	apply(s, AgentHeartbeat{Addr: "a:9092"})
	apply(s, SetFormat{Version: Format7})
	if r := apply(s, CreateTopic{Name: "t", ID: testID(1), Partitions: n}); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	return s
}

func txnBatch(pid int64, epoch int16, seq, records int32) CommitBatch {
	b := idem(pid, epoch, seq, records)
	b.Transactional = true
	return b
}

// markers is the marker object a coordinator writes for txn id's open
// transaction as s shows it.
func markers(s *State, id string, object string) Commit {
	t, _ := s.Txn(id)
	if len(t.Partitions) == 0 {
		return Commit{}
	}
	m := Commit{Object: object, Size: int64(100 * len(t.Partitions))}
	for i, gp := range t.Partitions {
		m.Parts = append(m.Parts, CommitPart{Topic: gp.Topic, Partition: gp.Partition, Batches: []CommitBatch{{
			Pos: int64(100 * i), Len: 100, Records: 1, ProducerID: t.ProducerID, ProducerEpoch: t.Epoch, BaseSequence: -1,
			Transactional: true, Control: true}}})
	}
	return m
}

func initTxn(t *testing.T, s *State, id string) (int64, int16) {
	t.Helper()
	r := apply(s, InitTxn{TxnID: id, TimeoutMs: 60000, ProducerID: -1, Epoch: -1, Markers: markers(s, id, "seg/abort-"+id)})
	if r[0].Err != nil {
		t.Fatalf("InitTxn %s: %v", id, r[0].Err)
	}
	return r[0].FirstProducerID, r[0].ProducerEpoch
}

func mustApply(t *testing.T, s *State, op Op) Result {
	t.Helper()
	r := apply(s, op)[0]
	if r.Err != nil {
		t.Fatalf("%s: %v", OpName(op), r.Err)
	}
	return r
}

func commitBatches(t *testing.T, s *State, object string, p int32, bs ...CommitBatch) []BatchResult {
	t.Helper()
	return apply(s, commitOf(object, part(testID(1), p, bs...)))[0].Parts[0]
}

func TestTxnOpsNeedFormat7(t *testing.T) {
	s := NewState()
	s.format = Format6
	r := apply(s, InitTxn{TxnID: "x", TimeoutMs: 1000, ProducerID: -1, Epoch: -1})
	if !errors.Is(r[0].Err, ErrFormat) {
		t.Fatalf("InitTxn before Format7: %v, want ErrFormat", r[0].Err)
	}
}

// A committed transaction: its batches hold the last stable offset at
// their first offset until its marker, which takes the next offset in
// every partition it added and commits its offsets to the group.
func TestTxnCommit(t *testing.T) {
	s := txnState(t, 2)
	pid, epoch := initTxn(t, s, "tx")
	if epoch != 0 {
		t.Fatalf("a new transactional id's epoch %d, want 0", epoch)
	}
	commitBatches(t, s, "seg/0", 0, plain(0, 10, 3)) // offsets 0-2, not in a transaction
	mustApply(t, s, AddToTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch,
		Partitions: []GroupPartition{{testID(1), 1}, {testID(1), 0}}, Groups: []string{"g"}})
	if res := commitBatches(t, s, "seg/1", 0, txnBatch(pid, epoch, 0, 5)); res[0].Err != nil || res[0].BaseOffset != 3 {
		t.Fatalf("transactional batch: %+v", res[0])
	}
	p0 := partition(t, s, "t", 0)
	if p0.LastStable() != 3 || p0.HighWatermark != 8 {
		t.Fatalf("LSO %d HWM %d, want 3 and 8", p0.LastStable(), p0.HighWatermark)
	}
	r := mustApply(t, s, TxnCommitOffsets{TxnID: "tx", ProducerID: pid, Epoch: epoch, Offsets: CommitOffsets{Group: "g", Generation: -1,
		Offsets: []GroupOffset{{Topic: testID(1), Partition: 0, Offset: 42, LeaderEpoch: -1}}}})
	if r.OffsetErrs[0] != nil {
		t.Fatal(r.OffsetErrs[0])
	}
	if !s.PendingTxnOffset("g", testID(1), 0) {
		t.Fatal("no pending offset while the transaction is open")
	}
	if _, ok := s.CommittedOffset("g", testID(1), 0); ok {
		t.Fatal("a transaction's offset committed before its commit")
	}
	before := s.Clone()
	mustApply(t, s, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Commit: true, Markers: markers(s, "tx", "seg/m1")})
	if p0.HighWatermark != 9 || p0.LastStable() != 9 {
		t.Fatalf("after the commit: HWM %d LSO %d, want 9 and 9", p0.HighWatermark, p0.LastStable())
	}
	if p1 := partition(t, s, "t", 1); p1.HighWatermark != 1 {
		t.Fatalf("partition 1 (added, never written) HWM %d, want 1: its marker", p1.HighWatermark)
	}
	if c := p0.Chunks[len(p0.Chunks)-1]; c.Object != "seg/m1" || c.BaseOffset != 8 || c.NextOffset != 9 {
		t.Fatalf("marker chunk %+v", c)
	}
	if o, ok := s.CommittedOffset("g", testID(1), 0); !ok || o.Offset != 42 {
		t.Fatalf("committed offset %+v %v, want 42", o, ok)
	}
	if len(p0.Aborted(0, 100)) != 0 {
		t.Fatal("a committed transaction listed as aborted")
	}
	if tx, _ := s.Txn("tx"); tx.Status != TxnCompleteCommit || len(tx.Partitions) != 0 {
		t.Fatalf("transaction after commit: %+v", tx)
	}
	// The clone taken before is untouched (snapshots encode clones).
	if bp := partition(t, before, "t", 0); bp.LastStable() != 3 || len(bp.openTxns) != 1 {
		t.Fatalf("the clone changed: LSO %d", bp.LastStable())
	}
	if tx, _ := before.Txn("tx"); tx.Status != TxnOngoing {
		t.Fatal("the clone's transaction changed")
	}
	// A retried EndTxn of the same outcome succeeds; the other outcome,
	// or a second end of nothing open, is INVALID_TXN_STATE.
	if r := apply(s, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Commit: true}); r[0].Err != nil {
		t.Fatalf("retried commit: %v", r[0].Err)
	}
	if r := apply(s, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Commit: false}); !errors.Is(r[0].Err, ErrInvalidTxnState) {
		t.Fatalf("abort after commit: %v, want ErrInvalidTxnState", r[0].Err)
	}
}

// An aborted transaction's range is listed for read_committed fetches, and
// forgotten once the log start passes its marker.
func TestTxnAbort(t *testing.T) {
	s := txnState(t, 1)
	pid, epoch := initTxn(t, s, "tx")
	mustApply(t, s, AddToTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []GroupPartition{{testID(1), 0}}, Groups: []string{"g"}})
	commitBatches(t, s, "seg/1", 0, txnBatch(pid, epoch, 0, 4)) // 0-3
	commitBatches(t, s, "seg/2", 0, plain(0, 10, 2))            // 4-5, another producer's
	commitBatches(t, s, "seg/3", 0, txnBatch(pid, epoch, 4, 1)) // 6
	mustApply(t, s, TxnCommitOffsets{TxnID: "tx", ProducerID: pid, Epoch: epoch, Offsets: CommitOffsets{Group: "g", Generation: -1,
		Offsets: []GroupOffset{{Topic: testID(1), Partition: 0, Offset: 7}}}})
	mustApply(t, s, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Commit: false, Markers: markers(s, "tx", "seg/m")})
	p := partition(t, s, "t", 0)
	want := []AbortedTxn{{ProducerID: pid, FirstOffset: 0, LastOffset: 7}}
	if got := p.Aborted(0, 8); !reflect.DeepEqual(got, want) {
		t.Fatalf("aborted %+v, want %+v", got, want)
	}
	if got := p.Aborted(8, 9); len(got) != 0 {
		t.Fatalf("aborted after the marker: %+v", got)
	}
	if _, ok := s.CommittedOffset("g", testID(1), 0); ok {
		t.Fatal("an aborted transaction's offset was committed")
	}
	if p.LastStable() != 8 {
		t.Fatalf("LSO %d after the abort, want 8", p.LastStable())
	}
	mustApply(t, s, AdvanceLogStart{Topic: testID(1), Partition: 0, Offset: 8})
	if len(p.Aborted(0, 100)) != 0 {
		t.Fatal("an aborted range below the log start is kept")
	}
}

// Key compaction drops aborted batches, so a pass's boundary past an
// aborted range's marker forgets the range (a compacted topic's log start
// never moves); a range the boundary cuts through stays.
func TestTxnAbortedForgottenBelowCleanBoundary(t *testing.T) {
	s := txnState(t, 1)
	pid, epoch := initTxn(t, s, "tx")
	abort := func(seq int32) {
		mustApply(t, s, AddToTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []GroupPartition{{testID(1), 0}}})
		if res := commitBatches(t, s, fmt.Sprintf("seg/%d", seq), 0, txnBatch(pid, epoch, seq, 2)); res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		mustApply(t, s, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Markers: markers(s, "tx", fmt.Sprintf("seg/m%d", seq))})
	}
	abort(0) // 0-1, marker 2
	abort(2) // 3-4, marker 5
	p := partition(t, s, "t", 0)
	mustApply(t, s, CleanChunks{Topic: testID(1), Partition: 0, Boundary: true, CleanedTo: 4})
	if got := p.Aborted(0, 100); len(got) != 1 || got[0].FirstOffset != 3 {
		t.Fatalf("aborted ranges after a boundary at 4: %+v, want the one from 3 only", got)
	}
}

// Zombie fencing: InitTxn again aborts the open transaction and bumps the
// epoch; the old epoch's requests and batches are refused.
func TestTxnFencing(t *testing.T) {
	s := txnState(t, 1)
	pid, epoch := initTxn(t, s, "tx")
	mustApply(t, s, AddToTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []GroupPartition{{testID(1), 0}}})
	commitBatches(t, s, "seg/1", 0, txnBatch(pid, epoch, 0, 2))
	// Markers written before the transaction changed do not fit it.
	stale := markers(s, "tx", "seg/stale")
	stale.Parts[0].Batches[0].ProducerEpoch = 5
	if r := apply(s, InitTxn{TxnID: "tx", TimeoutMs: 1000, ProducerID: -1, Epoch: -1, Markers: stale}); !errors.Is(r[0].Err, ErrConcurrentTransactions) {
		t.Fatalf("InitTxn with markers of another epoch: %v, want ErrConcurrentTransactions", r[0].Err)
	}
	pid2, epoch2 := initTxn(t, s, "tx")
	if pid2 != pid || epoch2 != epoch+1 {
		t.Fatalf("second InitTxn: %d/%d, want %d/%d", pid2, epoch2, pid, epoch+1)
	}
	p := partition(t, s, "t", 0)
	if p.HighWatermark != 3 || p.LastStable() != 3 || len(p.Aborted(0, 3)) != 1 {
		t.Fatalf("the zombie's transaction was not aborted: HWM %d LSO %d aborted %v", p.HighWatermark, p.LastStable(), p.Aborted(0, 3))
	}
	if r := apply(s, AddToTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []GroupPartition{{testID(1), 0}}}); !errors.Is(r[0].Err, ErrProducerFenced) {
		t.Fatalf("the zombie's AddToTxn: %v, want ErrProducerFenced", r[0].Err)
	}
	if res := commitBatches(t, s, "seg/2", 0, txnBatch(pid, epoch, 2, 1)); !errors.Is(res[0].Err, ErrInvalidProducerEpoch) {
		t.Fatalf("the zombie's batch: %v, want ErrInvalidProducerEpoch", res[0].Err)
	}
	if r := apply(s, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Commit: true}); !errors.Is(r[0].Err, ErrProducerFenced) {
		t.Fatalf("the zombie's EndTxn: %v, want ErrProducerFenced", r[0].Err)
	}
	if r := apply(s, InitTxn{TxnID: "tx", TimeoutMs: 1000, ProducerID: pid, Epoch: epoch}); !errors.Is(r[0].Err, ErrProducerFenced) {
		t.Fatalf("KIP-360 InitTxn with the old epoch: %v, want ErrProducerFenced", r[0].Err)
	}
	// KIP-360: the current producer bumps its own epoch, and a retry of
	// that bump (its answer lost) gets the same answer, not a fence.
	bump := InitTxn{TxnID: "tx", TimeoutMs: 1000, ProducerID: pid2, Epoch: epoch2}
	r := mustApply(t, s, bump)
	if r.FirstProducerID != pid2 || r.ProducerEpoch != epoch2+1 {
		t.Fatalf("KIP-360 bump: %d/%d", r.FirstProducerID, r.ProducerEpoch)
	}
	if r := mustApply(t, s, bump); r.FirstProducerID != pid2 || r.ProducerEpoch != epoch2+1 {
		t.Fatalf("a retried KIP-360 bump: %d/%d, want %d/%d", r.FirstProducerID, r.ProducerEpoch, pid2, epoch2+1)
	}
}

// The last stable offset never falls below the log start, as in Kafka.
func TestTxnLastStableAboveLogStart(t *testing.T) {
	s := txnState(t, 1)
	pid, epoch := initTxn(t, s, "tx")
	mustApply(t, s, AddToTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []GroupPartition{{testID(1), 0}}, Groups: []string{"g"}})
	commitBatches(t, s, "seg/1", 0, txnBatch(pid, epoch, 0, 4))
	commitBatches(t, s, "seg/2", 0, plain(0, 10, 2))
	mustApply(t, s, AdvanceLogStart{Topic: testID(1), Partition: 0, Offset: 5})
	if p := partition(t, s, "t", 0); p.LastStable() != 5 {
		t.Fatalf("LSO %d with the log start at 5 past an open transaction at 0", p.LastStable())
	}
	mustApply(t, s, TxnCommitOffsets{TxnID: "tx", ProducerID: pid, Epoch: epoch, Offsets: CommitOffsets{Group: "g", Generation: -1,
		Offsets: []GroupOffset{{Topic: testID(1), Partition: 0, Offset: 1}, {Topic: testID(1), Partition: 0, Offset: 2}}}})
	if !s.PendingTxnOffset("g", testID(1), 0) {
		t.Fatal("no pending offset")
	}
	dec, err := DecodeSnapshot(s.EncodeSnapshot())
	if err != nil || !dec.PendingTxnOffset("g", testID(1), 0) || !sameAsSnapshot(s, dec) {
		t.Fatalf("snapshot of pending offsets: %v", err)
	}
	mustApply(t, s, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Markers: markers(s, "tx", "seg/m")})
	if s.PendingTxnOffset("g", testID(1), 0) || len(s.pendingTxnOffsets) != 0 || s.openTxnParts != 0 {
		t.Fatalf("after the abort: pending %v, open partitions %d", s.pendingTxnOffsets, s.openTxnParts)
	}
}

// Bad input: batches and requests outside an open transaction.
func TestTxnRefusals(t *testing.T) {
	s := txnState(t, 2)
	pid, epoch := initTxn(t, s, "tx")
	if res := commitBatches(t, s, "seg/1", 0, txnBatch(pid, epoch, 0, 1)); !errors.Is(res[0].Err, ErrInvalidTxnState) {
		t.Fatalf("a transactional batch with no transaction open: %v", res[0].Err)
	}
	mustApply(t, s, AddToTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []GroupPartition{{testID(1), 0}}})
	if res := commitBatches(t, s, "seg/2", 1, txnBatch(pid, epoch, 0, 1)); !errors.Is(res[0].Err, ErrInvalidTxnState) {
		t.Fatalf("a transactional batch for a partition not added: %v", res[0].Err)
	}
	if res := commitBatches(t, s, "seg/3", 0, CommitBatch{Pos: 0, Len: 10, Records: 1, ProducerID: pid, ProducerEpoch: epoch,
		BaseSequence: -1, Control: true}); !errors.Is(res[0].Err, ErrInvalidBatch) {
		t.Fatalf("a control batch in a Commit: %v", res[0].Err)
	}
	if r := apply(s, AddToTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []GroupPartition{{testID(9), 0}}}); !errors.Is(r[0].Err, ErrUnknownTopic) {
		t.Fatalf("adding an unknown topic: %v", r[0].Err)
	}
	if r := apply(s, EndTxn{TxnID: "nope", ProducerID: pid, Epoch: epoch, Commit: true}); !errors.Is(r[0].Err, ErrInvalidProducerIDMapping) {
		t.Fatalf("EndTxn of an unknown id: %v", r[0].Err)
	}
	if r := apply(s, EndTxn{TxnID: "tx", ProducerID: pid + 1, Epoch: epoch, Commit: true}); !errors.Is(r[0].Err, ErrInvalidProducerIDMapping) {
		t.Fatalf("EndTxn by another producer id: %v", r[0].Err)
	}
	if r := apply(s, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Commit: true}); !errors.Is(r[0].Err, ErrConcurrentTransactions) {
		t.Fatalf("EndTxn without its markers: %v", r[0].Err)
	}
	if r := apply(s, TxnCommitOffsets{TxnID: "tx", ProducerID: pid, Epoch: epoch, Offsets: CommitOffsets{Group: "g", Generation: -1}}); !errors.Is(r[0].Err, ErrInvalidTxnState) {
		t.Fatalf("TxnCommitOffsets for a group not added: %v", r[0].Err)
	}
	pid2, epoch2 := initTxn(t, s, "other")
	if r := apply(s, EndTxn{TxnID: "other", ProducerID: pid2, Epoch: epoch2, Commit: true}); !errors.Is(r[0].Err, ErrInvalidTxnState) {
		t.Fatalf("EndTxn with nothing open: %v", r[0].Err)
	}
}

// The coordinator's abort of a timed-out transaction bumps the epoch.
func TestTxnTimeout(t *testing.T) {
	s := txnState(t, 1)
	pid, epoch := initTxn(t, s, "tx")
	applyAt(s, 1000, AddToTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []GroupPartition{{testID(1), 0}}})
	if ids := s.TimedOutTxns(1000 + 60000); len(ids) != 0 {
		t.Fatalf("timed out at its timeout: %v", ids)
	}
	if ids := s.TimedOutTxns(1000 + 60001); !reflect.DeepEqual(ids, []string{"tx"}) {
		t.Fatalf("timed out: %v", ids)
	}
	// Judged by the entry's time: not yet timed out, nothing happens.
	if r := applyAt(s, 1000+60000, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Timeout: true, StartMs: 1000,
		Markers: markers(s, "tx", "seg/early")}); !errors.Is(r[0].Err, ErrConcurrentTransactions) {
		t.Fatalf("a timeout abort before the timeout: %v", r[0].Err)
	}
	// The coordinator saw this transaction time out, but the client ended
	// it and began the next meanwhile (same epoch, same partitions): the
	// stale abort must not take the new one.
	applyAt(s, 2000, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Commit: true, Markers: markers(s, "tx", "seg/c")})
	applyAt(s, 3000, AddToTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Partitions: []GroupPartition{{testID(1), 0}}})
	if r := applyAt(s, 1000+60001, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Timeout: true, StartMs: 1000,
		Markers: markers(s, "tx", "seg/stale")}); !errors.Is(r[0].Err, ErrConcurrentTransactions) {
		t.Fatalf("a stale timeout abort of a newer transaction: %v", r[0].Err)
	}
	if tx, _ := s.Txn("tx"); tx.Status != TxnOngoing || tx.Epoch != epoch {
		t.Fatalf("the newer transaction after a stale abort: %+v", tx)
	}
	if r := applyAt(s, 3000+60001, EndTxn{TxnID: "tx", ProducerID: pid, Epoch: epoch, Timeout: true, StartMs: 3000,
		Markers: markers(s, "tx", "seg/m")}); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	tx, _ := s.Txn("tx")
	if tx.Status != TxnCompleteAbort || tx.Epoch != epoch+1 {
		t.Fatalf("after the timeout: %+v", tx)
	}
	if n := apply(s, ExpireTxns{BeforeMs: -1})[0].Expired; n != 0 {
		t.Fatalf("expired %d before the cutoff", n)
	}
	if n := apply(s, ExpireTxns{BeforeMs: 1 << 40})[0].Expired; n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	if _, ok := s.TxnOfProducer(pid); ok {
		t.Fatal("an expired id's producer still maps to it")
	}
}

func TestTxnSnapshotRoundTrip(t *testing.T) {
	s := txnState(t, 2)
	pid, epoch := initTxn(t, s, "a")
	mustApply(t, s, AddToTxn{TxnID: "a", ProducerID: pid, Epoch: epoch, Partitions: []GroupPartition{{testID(1), 0}}, Groups: []string{"g"}})
	commitBatches(t, s, "seg/1", 0, txnBatch(pid, epoch, 0, 4))
	mustApply(t, s, TxnCommitOffsets{TxnID: "a", ProducerID: pid, Epoch: epoch, Offsets: CommitOffsets{Group: "g", Generation: -1,
		Offsets: []GroupOffset{{Topic: testID(1), Partition: 1, Offset: 3, LeaderEpoch: -1}}}})
	pid2, epoch2 := initTxn(t, s, "b")
	mustApply(t, s, AddToTxn{TxnID: "b", ProducerID: pid2, Epoch: epoch2, Partitions: []GroupPartition{{testID(1), 1}}})
	commitBatches(t, s, "seg/2", 1, txnBatch(pid2, epoch2, 0, 1))
	mustApply(t, s, EndTxn{TxnID: "b", ProducerID: pid2, Epoch: epoch2, Markers: markers(s, "b", "seg/m")})
	dec, err := DecodeSnapshot(s.EncodeSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsSnapshot(s, dec) {
		t.Fatal("snapshot round trip changed the transactions")
	}
	en := &Entry{Writer: "w", Ops: []Op{
		InitTxn{TxnID: "a", TimeoutMs: 5, ProducerID: 3, Epoch: 2, Markers: markers(s, "a", "seg/x")},
		AddToTxn{TxnID: "a", ProducerID: 3, Epoch: 2, Partitions: []GroupPartition{{testID(1), 1}}, Groups: []string{"g"}},
		TxnCommitOffsets{TxnID: "a", ProducerID: 3, Epoch: 2, Offsets: CommitOffsets{Group: "g", Generation: 4, Member: "m",
			Offsets: []GroupOffset{{Topic: testID(1), Partition: 1, Offset: 3}}}},
		EndTxn{TxnID: "a", ProducerID: 3, Epoch: 2, Commit: true, Timeout: true, Markers: markers(s, "a", "seg/y")},
		ExpireTxns{BeforeMs: 77},
		commitOf("seg/z", part(testID(1), 0, txnBatch(1, 2, 3, 4))),
	}}
	got, err := DecodeEntry(en.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Ops, en.Ops) {
		t.Fatalf("entry round trip:\n got %+v\nwant %+v", got.Ops, en.Ops)
	}
}
