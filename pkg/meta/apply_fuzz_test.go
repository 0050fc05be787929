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
