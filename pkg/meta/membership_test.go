package meta

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// TestMembership follows the member set and its epoch through joins,
// expiry, a rejoin, a departure and a replacement, and checks that only
// members commit records.
func TestMembership(t *testing.T) {
	s := NewState()
	apply := func(writer string, ms int64, ops ...Op) []Result {
		return s.Apply(s.Seq+1, &Entry{Writer: writer, TimeMs: ms, Ops: ops})
	}
	members := func() []string {
		var ids []string
		for _, a := range s.Members() {
			ids = append(ids, a.ID)
		}
		return ids
	}
	want := func(epoch int32, ids ...string) {
		t.Helper()
		if got := members(); s.MembershipEpoch() != epoch || !reflect.DeepEqual(got, ids) {
			t.Fatalf("epoch %d, members %v; want %d, %v", s.MembershipEpoch(), got, epoch, ids)
		}
	}
	hwm := func() int64 { return s.Topic("t").Partition(0).HighWatermark }
	commit := func(writer string, ms int64) error {
		before := hwm()
		err := apply(writer, ms, commitOf("seg/"+writer, part(testID(1), 0, plain(0, 10, 1))))[0].Parts[0][0].Err
		if (err == nil) != (hwm() == before+1) {
			t.Fatalf("commit by %s: err %v, high watermark %d → %d", writer, err, before, hwm())
		}
		return err
	}

	apply("old", 1, AgentHeartbeat{Addr: "h0:9092"})
	apply("a", 1000, AgentHeartbeat{Addr: "h1:9092"})
	apply("b", 1000, AgentHeartbeat{Addr: "h2:9092"})
	apply("a", 1000, CreateTopic{Name: "t", ID: testID(1), Partitions: 1})
	apply("b", 1500, LeaveCluster{})
	apply("a", 1800, AgentHeartbeat{Addr: "h1:9092"})
	// Before Format4 there is no membership: epoch 0, anyone commits.
	if s.MembershipEpoch() != 0 || !s.IsMember("stranger") || commit("stranger", 1600) != nil {
		t.Fatal("membership applies before Format4")
	}
	if err := apply("a", 1700, ExpireAgent{ID: "b", LastMs: 1500})[0].Err; !errors.Is(err, ErrFormat) {
		t.Fatalf("ExpireAgent before Format4: %v, want ErrFormat", err)
	}

	// Format4 starts membership over: every registered agent heard from
	// within the TTL is in, even one that left under Format3 (a snapshot
	// of that format does not say who left, so no agent could agree on
	// it); one silent for longer is expired.
	apply("a", 1+MemberTTL.Milliseconds()+1, SetFormat{Version: Format4}) // old has been silent for longer
	want(1, "a", "b")
	if !errors.Is(commit("stranger", 2100), ErrFenced) {
		t.Fatal("a writer that never joined committed records")
	}
	apply("c", 2200, AgentHeartbeat{Addr: "h3:9092"})
	want(2, "a", "b", "c")
	apply("a", 2300, AgentHeartbeat{Addr: "h1:9092"}) // a member's heartbeat changes nothing
	want(2, "a", "b", "c")

	// An expiry with a stale view of the agent is refused: it has been
	// heard from since.
	apply("c", 3000, AgentHeartbeat{Addr: "h3:9092"})
	if err := apply("a", 14000, ExpireAgent{ID: "c", LastMs: 2200})[0].Err; err == nil {
		t.Fatal("expired an agent heard from after the expirer looked")
	}
	want(2, "a", "b", "c")
	apply("a", 14000, ExpireAgent{ID: "c", LastMs: 3000})
	want(3, "a", "b")
	if err := apply("b", 14001, ExpireAgent{ID: "c", LastMs: 3000})[0].Err; err == nil {
		t.Fatal("expired an agent twice")
	}
	want(3, "a", "b")

	// The expired agent wakes up: its commit is fenced, then it rejoins.
	if !errors.Is(commit("c", 15000), ErrFenced) {
		t.Fatal("an expired agent committed records")
	}
	if s.IsMember("c") {
		t.Fatal("an entry other than a heartbeat let the expired agent back in")
	}
	apply("c", 15100, AgentHeartbeat{Addr: "h3:9092"})
	want(4, "a", "b", "c")
	if err := commit("c", 15200); err != nil {
		t.Fatalf("a rejoined agent's commit: %v", err)
	}

	// A departure is one change; the departed agent commits nothing.
	apply("b", 16000, LeaveCluster{})
	want(5, "a", "c")
	if !errors.Is(commit("b", 16100), ErrFenced) {
		t.Fatal("a departed agent committed records")
	}

	// A new process at a's address replaces it: one change, and the old
	// process, a zombie now, is fenced.
	apply("a2", 17000, AgentHeartbeat{Addr: "h1:9092", NoJobs: true})
	want(6, "a2", "c")
	if !errors.Is(commit("a", 17100), ErrFenced) {
		t.Fatal("a replaced process committed records")
	}

	// A Format4 state snapshots as version 9 with its epoch and who is
	// out, and decodes to the same state.
	apply("c", 17200, ExpireAgent{ID: "b", LastMs: 16100}) // left already: no change
	want(6, "a2", "c")
	apply("a2", 30000, ExpireAgent{ID: "c", LastMs: 17200}) // its newest entry
	want(7, "a2")
	snap := s.EncodeSnapshot()
	if snap[4] != 9 {
		t.Fatalf("a Format4 state snapshots as version %d, want 9", snap[4])
	}
	dec, err := DecodeSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, dec) || !bytes.Equal(dec.EncodeSnapshot(), snap) {
		t.Fatal("membership does not survive a snapshot")
	}
	if a, _ := dec.AgentByID("c"); !a.Expired {
		t.Fatal("the snapshot lost an expiry")
	}
	if a, _ := dec.AgentByID("b"); !a.Left {
		t.Fatal("the snapshot lost a departure")
	}
	if a, _ := dec.AgentByID("a2"); !a.NoJobs {
		t.Fatal("the snapshot lost an agent's --jobs=false")
	}
	en := &Entry{Writer: "a2", Ops: []Op{AgentHeartbeat{Addr: "h1:9092", NoJobs: true}}}
	if got, err := DecodeEntry(en.EncodeAt(Format4)); err != nil || !reflect.DeepEqual(got.Ops, en.Ops) {
		t.Fatalf("a Format4 heartbeat decodes as %+v (%v)", got, err)
	}
	if c := s.Clone(); !reflect.DeepEqual(s, c) {
		t.Fatal("a clone differs")
	}
}
