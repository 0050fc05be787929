package meta

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// Ops that would bloat every agent are refused by the state machine,
// however they were written.
func TestApplyRefusesOutOfBounds(t *testing.T) {
	s := stateWith(t, 4)
	apply(s, SetFormat{Version: Format2})
	id := testID(1)
	tests := []struct {
		name string
		op   Op
		want error
	}{
		{"a topic of 2^31-1 partitions", CreateTopic{Name: "huge", ID: testID(2), Partitions: 1<<31 - 1}, ErrInvalidPartitions},
		{"a topic just over the bound", CreateTopic{Name: "huge", ID: testID(2), Partitions: HardMaxPartitionsPerTopic + 1}, ErrInvalidPartitions},
		{"growing to 2^31-1", CreatePartitions{ID: id, Count: 1<<31 - 1}, ErrInvalidPartitions},
		{"a megabyte name", CreateTopic{Name: strings.Repeat("n", 1<<20), ID: testID(2), Partitions: 1}, ErrInvalidTopicName},
		{"a name with a slash", CreateTopic{Name: "a/b", ID: testID(2), Partitions: 1}, ErrInvalidTopicName},
		{"reserving 2^31-1 producer ids", ReserveProducers{Count: 1<<31 - 1}, ErrLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.EncodeSnapshot()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			r := apply(s, tc.op)
			runtime.ReadMemStats(&m1)
			if !errors.Is(r[0].Err, tc.want) {
				t.Fatalf("%s: %v, want %v", OpName(tc.op), r[0].Err, tc.want)
			}
			if grew := m1.TotalAlloc - m0.TotalAlloc; grew > 1<<20 {
				t.Fatalf("refusing it allocated %d bytes", grew)
			}
			s.Seq-- // compare the rest of the state
			if after := s.EncodeSnapshot(); string(after) != string(before) {
				t.Fatal("a refused op changed the state")
			}
			s.Seq++
		})
	}
	// The cluster-wide bound: topics each within the per-topic bound
	// cannot together pass it.
	c := NewState()
	apply(c, SetFormat{Version: Format2})
	apply(c, CreateTopic{Name: "big", ID: testID(10), Partitions: HardMaxPartitionsPerTopic})
	c.partitions = HardMaxPartitions - 5 // as if other topics held the rest
	if r := apply(c, CreateTopic{Name: "over", ID: testID(99), Partitions: 6}); !errors.Is(r[0].Err, ErrLimit) {
		t.Fatalf("a topic past the cluster bound: %v, want ErrLimit", r[0].Err)
	}
	if r := apply(c, CreateTopic{Name: "fits", ID: testID(98), Partitions: 5}); r[0].Err != nil {
		t.Fatalf("a topic up to the cluster bound: %v", r[0].Err)
	}
	apply(c, DeleteTopic{ID: testID(10)})
	if c.Partitions() != HardMaxPartitions-HardMaxPartitionsPerTopic {
		t.Fatalf("after deleting a topic the state counts %d partitions", c.Partitions())
	}
	if dec, err := DecodeSnapshot(c.EncodeSnapshot()); err != nil || dec.Partitions() != 5 {
		t.Fatalf("a snapshot's partition count: %v %v, want the 5 it holds", err, dec)
	}
	// A Format1 cluster may hold agents built without the bounds: only
	// counts none could allocate are refused there.
	f1 := stateWith(t, 1)
	if r := apply(f1, CreatePartitions{ID: testID(1), Count: 1<<31 - 1}); !errors.Is(r[0].Err, ErrInvalidPartitions) {
		t.Fatalf("2^31-1 partitions at Format1: %v, want ErrInvalidPartitions", r[0].Err)
	}
	if r := apply(f1, CreatePartitions{ID: testID(1), Count: HardMaxPartitionsPerTopic + 1}); r[0].Err != nil {
		t.Fatalf("past Format2's bound at Format1: %v, want it taken, as older agents take it", r[0].Err)
	}
}

// Commit batches whose numbers a correct writer never sends are refused,
// so that none can move a high watermark back or past the int64 range.
func TestCommitRefusesImpossibleBatches(t *testing.T) {
	s := stateWith(t, 1)
	id := testID(1)
	partition(t, s, "t", 0).HighWatermark = 1<<63 - 5
	for _, b := range []CommitBatch{
		plain(0, 10, 10), // would overflow the high watermark
		{Pos: 5, Len: 1 << 62, Records: 1, ProducerID: -1}, // past the object's end
	} {
		c := commitOf("seg/x", part(id, 0, b))
		c.Size = 100
		if err := apply(s, c)[0].Parts[0][0].Err; !errors.Is(err, ErrInvalidBatch) {
			t.Fatalf("batch %+v: %v, want ErrInvalidBatch", b, err)
		}
	}
}
