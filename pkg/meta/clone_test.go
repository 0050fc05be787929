package meta

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
)

// format2History is the snapshot history at Format2, with what that format
// adds: announcements, condemned objects and a commit floor.
func format2State(t *testing.T) *State {
	s := historyState(t)
	apply(s, AgentHeartbeat{Addr: "a:1"})
	s.Apply(s.Seq+1, &Entry{Writer: "test", Ops: []Op{AnnounceFormat{Max: Format2}}})
	apply(s, SetFormat{Version: Format2})
	apply(s, CondemnObjects{Keys: []string{"seg/orphan-1", "seg/orphan-2"}})
	apply(s, ForgetObjects{Keys: []string{"seg/orphan-1"}})
	if s.Format() != Format2 || !s.IsCondemned("seg/orphan-2") || s.CommitFloor() == 0 {
		t.Fatal("setup: the Format2 parts did not apply")
	}
	return s
}

func TestSnapshotFormat2RoundTrip(t *testing.T) {
	orig := format2State(t)
	b := orig.EncodeSnapshot()
	if b[4] != 7 {
		t.Fatalf("a Format2 state snapshots as version %d, want 7", b[4])
	}
	dec, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(orig, dec) || !bytes.Equal(dec.EncodeSnapshot(), b) {
		t.Fatal("a Format2 snapshot does not decode to the same state")
	}
	// A Format1 state is written as version 6, which older builds read.
	if v := historyState(t).EncodeSnapshot()[4]; v != 6 {
		t.Fatalf("a Format1 state snapshots as version %d, want 6", v)
	}
}

// A clone shares nothing mutable: applying entries to the original leaves
// the clone's snapshot as it was when cloned.
func TestCloneIsIndependent(t *testing.T) {
	s := format2State(t)
	want := s.EncodeSnapshot()
	c := s.Clone()
	if !reflect.DeepEqual(c, s) {
		t.Fatal("the clone differs from the state")
	}
	for _, en := range moreEntries(100_000) {
		s.Apply(s.Seq+1, en)
	}
	applyAt(s, 1<<40, CondemnObjects{Keys: []string{"seg/x"}}, ForgetObjects{Keys: []string{"seg/orphan-2"}},
		AcquireLease{Job: "compact/orders", DurationMs: 1}, DeleteGroups{Groups: []string{"g1"}},
		SetTopicConfigs{Topic: testID(1), Configs: map[string]string{"retention.ms": "1"}},
		AdvanceLogStart{Topic: testID(1), Partition: 0, Offset: 3}, ExpireProducers{BeforeMs: 1 << 41})
	// Commits that append chunks and extend the ones they append.
	applyAt(s, 1<<40, commitOf("seg/more", part(testID(2), 0, plain(0, 10, 1), plain(10, 10, 1), plain(20, 10, 1))))
	applyAt(s, 1<<40, commitOf("seg/more2", part(testID(2), 0, plain(0, 10, 1), plain(10, 10, 1))))
	if got := c.EncodeSnapshot(); !bytes.Equal(got, want) {
		t.Fatal("changing the state changed its clone")
	}
}

// At Format2 the address → broker id table forgets addresses no agent has
// any more; before it, agents of one cluster kept every address, and so
// must a Format1 state.
func TestNodeIDsForgottenWithAgents(t *testing.T) {
	const hour = 60 * 60 * 1000
	for _, f := range []Format{Format1, Format2} {
		s := NewState()
		apply(s, SetFormat{Version: f})
		for i := range 100 { // instances come and go, each at a new address
			s.Apply(s.Seq+1, &Entry{Writer: string(rune('a' + i)), TimeMs: int64(i) * 2 * hour, Ops: []Op{AgentHeartbeat{Addr: string(rune('a'+i)) + ":9092"}}})
		}
		want := 100
		if f >= Format2 {
			want = 1
		}
		if len(s.nodeByAddr) != want {
			t.Fatalf("format %d: %d addresses remembered, want %d", f, len(s.nodeByAddr), want)
		}
	}
}

// bigState is a state of 20,000 partitions with 50 chunks and a producer
// each, and a thousand groups: what a snapshot of a busy cluster encodes.
func bigState(b *testing.B) *State {
	s := NewState()
	for ti := range 20 {
		id := TopicID{byte(ti), 1}
		apply(s, CreateTopic{Name: string(rune('a'+ti)) + "-topic", ID: id, Partitions: 1000})
		for c := range 50 {
			var parts []CommitPart
			for p := range int32(1000) {
				parts = append(parts, part(id, p, idem(int64(1000+p), 0, int32(c), 1)))
			}
			apply(s, commitOf(fmt.Sprintf("seg/%02d-%03d", ti, c), parts...))
		}
	}
	for g := range 1000 {
		apply(s, CommitOffsets{Group: fmt.Sprintf("g%d", g), Generation: -1, Offsets: []GroupOffset{{Topic: TopicID{0, 1}, Offset: 1}}})
	}
	return s
}

// What a snapshot costs the log's goroutine now (a clone) against what it
// cost before (encoding the whole state there):
//
//	go test -run X -bench 'Snapshot' -benchmem ./pkg/meta/
func BenchmarkSnapshotClone(b *testing.B) {
	s := bigState(b)
	b.ResetTimer()
	for b.Loop() {
		_ = s.Clone()
	}
}

func BenchmarkSnapshotEncode(b *testing.B) {
	s := bigState(b)
	b.ResetTimer()
	for b.Loop() {
		_ = s.EncodeSnapshot()
	}
}
