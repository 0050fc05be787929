package meta

import (
	"bytes"
	"runtime"
	"testing"
)

// FuzzApplyEntry: whatever bytes sit in a log slot, decoding them and
// applying the entry never panics, never allocates more than a small
// multiple of the bytes (no op may amplify a few bytes into gigabytes, as
// CreatePartitions of 2^31-1 partitions once did), and leaves a state
// that snapshots and decodes to itself.
//
//	go test -run X -fuzz FuzzApplyEntry -fuzztime 1m ./pkg/meta/
func FuzzApplyEntry(f *testing.F) {
	for _, tc := range entryCases() {
		f.Add(tc.en.Encode())
		f.Add(tc.en.EncodeAt(Format1))
	}
	for _, op := range []Op{
		CreateTopic{Name: "huge", ID: testID(9), Partitions: 1<<31 - 1},
		CreatePartitions{ID: testID(1), Count: 1<<31 - 1},
		ReserveProducers{Count: 1<<31 - 1},
		SetFormat{Version: Format2},
		CondemnObjects{Keys: []string{"seg/a", "seg/b"}},
		ExpireProducers{BeforeMs: 1 << 62},
		AnnounceFormat{Max: Format2},
		InitTxn{TxnID: "tx", TimeoutMs: 1000, ProducerID: -1, Epoch: -1},
		AddToTxn{TxnID: "tx", ProducerID: 1001, Partitions: []GroupPartition{{testID(1), 1}, {testID(1), 0}}, Groups: []string{"g"}},
		TxnCommitOffsets{TxnID: "tx", ProducerID: 1001, Offsets: CommitOffsets{Group: "g", Generation: -1,
			Offsets: []GroupOffset{{Topic: testID(1), Partition: 0, Offset: 1}}}},
		EndTxn{TxnID: "tx", ProducerID: 1001, Commit: true, Markers: commitOf("seg/m", part(testID(1), 0, CommitBatch{Pos: 0, Len: 70,
			Records: 1, ProducerID: 1001, BaseSequence: -1, Transactional: true, Control: true}))},
		ExpireTxns{BeforeMs: 1 << 62},
		commitOf("seg/t", part(testID(1), 0, CommitBatch{Pos: 0, Len: 10, Records: 1, ProducerID: 1001, Transactional: true})),
	} {
		f.Add((&Entry{Writer: "w", Ops: []Op{op}}).Encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 4 {
			b = reseal(b[:len(b)-4]) // reach past the checksum
		}
		en, err := DecodeEntry(b)
		if err != nil {
			return
		}
		s := fuzzState(t)
		if len(b) > 0 && b[len(b)-1]&1 == 1 {
			s = fuzzTxnState(t) // half the inputs meet an open transaction
		}
		before := s.Partitions()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		s.Apply(s.Seq+1, en)
		runtime.ReadMemStats(&m1)
		// Decoded ops hold at most the entry's bytes; applying copies them
		// into maps and slices a few times over. Partitions are the one
		// thing a few bytes may ask many of, within the hard bounds.
		made := s.Partitions() - before
		if made > HardMaxPartitions {
			t.Fatalf("one entry made %d partitions, past the bound", made)
		}
		if grew, limit := m1.TotalAlloc-m0.TotalAlloc, uint64(64*len(b)+1<<20+160*made); grew > limit {
			t.Fatalf("applying a %d-byte entry allocated %d bytes (limit %d, %d partitions made): %#v", len(b), grew, limit, made, en)
		}
		snap := s.EncodeSnapshot()
		dec, err := DecodeSnapshot(snap)
		if err != nil {
			t.Fatalf("the state after the entry does not snapshot: %v", err)
		}
		if !bytes.Equal(dec.EncodeSnapshot(), snap) {
			t.Fatal("the snapshot does not decode to the same state")
		}
	})
}

// fuzzState is a small state at Format2 with something for most ops to
// act on.
func fuzzState(t *testing.T) *State {
	s := stateWith(t, 2)
	apply(s, SetFormat{Version: Format2})
	apply(s, AgentHeartbeat{Addr: "a:1"},
		commitOf("seg/a", part(testID(1), 0, plain(0, 10, 3), idem(1000, 0, 0, 2))),
		GroupGeneration{Group: "g", Generation: 1, Members: []string{"m"}},
		CommitOffsets{Group: "g", Generation: 1, Offsets: []GroupOffset{{Topic: testID(1), Partition: 0, Offset: 1}}},
		AcquireLease{Job: "j", DurationMs: 10})
	return s
}

// fuzzTxnState is a small state at Format7 with an open transaction
// (transactional id "tx", producer 1001 at epoch 0, both partitions and
// group "g" added, a batch and a pending offset) and an aborted one.
func fuzzTxnState(t *testing.T) *State {
	s := txnState(t, 2)
	initTxn(t, s, "old")
	mustApply(t, s, AddToTxn{TxnID: "old", ProducerID: 1000, Partitions: []GroupPartition{{testID(1), 0}}})
	commitBatches(t, s, "seg/o", 0, txnBatch(1000, 0, 0, 2))
	mustApply(t, s, EndTxn{TxnID: "old", ProducerID: 1000, Markers: markers(s, "old", "seg/om")})
	if pid, _ := initTxn(t, s, "tx"); pid != 1001 {
		t.Fatalf("fuzz state: producer id %d", pid)
	}
	mustApply(t, s, AddToTxn{TxnID: "tx", ProducerID: 1001, Partitions: []GroupPartition{{testID(1), 0}, {testID(1), 1}}, Groups: []string{"g"}})
	commitBatches(t, s, "seg/t", 1, txnBatch(1001, 0, 0, 3))
	mustApply(t, s, TxnCommitOffsets{TxnID: "tx", ProducerID: 1001, Offsets: CommitOffsets{Group: "g", Generation: -1,
		Offsets: []GroupOffset{{Topic: testID(1), Partition: 1, Offset: 3}}}})
	return s
}
