package meta

import (
	"errors"
	"reflect"
	"testing"
)

func off(topic TopicID, p int32, offset int64) GroupOffset {
	return GroupOffset{Topic: topic, Partition: p, Offset: offset, LeaderEpoch: -1}
}

func TestCommitOffsetsGeneration(t *testing.T) {
	tests := []struct {
		name    string
		logged  []GroupGeneration // applied first
		commit  CommitOffsets
		wantErr error
	}{
		{"simple commit to a new group", nil, CommitOffsets{Group: "g", Generation: -1}, nil},
		{"simple commit to a group with members", []GroupGeneration{{Group: "g", Generation: 2, Members: []string{"m"}}},
			CommitOffsets{Group: "g", Generation: -1}, nil},
		{"generation of an unknown group", nil, CommitOffsets{Group: "g", Generation: 0}, ErrIllegalGeneration},
		{"the logged generation", []GroupGeneration{{Group: "g", Generation: 1}, {Group: "g", Generation: 2}},
			CommitOffsets{Group: "g", Generation: 2, Member: "m"}, nil},
		{"a stale generation", []GroupGeneration{{Group: "g", Generation: 1}, {Group: "g", Generation: 2}},
			CommitOffsets{Group: "g", Generation: 1, Member: "m"}, ErrIllegalGeneration},
		{"a future generation", []GroupGeneration{{Group: "g", Generation: 1}},
			CommitOffsets{Group: "g", Generation: 2, Member: "m"}, ErrIllegalGeneration},
		{"another group's generation", []GroupGeneration{{Group: "h", Generation: 1}},
			CommitOffsets{Group: "g", Generation: 1, Member: "m"}, ErrIllegalGeneration},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := stateWith(t, 2)
			for _, g := range tc.logged {
				if r := apply(s, g); r[0].Err != nil {
					t.Fatalf("%+v: %v", g, r[0].Err)
				}
			}
			tc.commit.Offsets = []GroupOffset{off(testID(1), 0, 10), off(testID(1), 1, 20)}
			r := apply(s, tc.commit)
			if !errors.Is(r[0].Err, tc.wantErr) {
				t.Fatalf("err %v, want %v", r[0].Err, tc.wantErr)
			}
			o, ok := s.CommittedOffset(tc.commit.Group, testID(1), 1)
			if tc.wantErr != nil {
				if ok || len(s.CommittedOffsets(tc.commit.Group)) != 0 {
					t.Fatalf("rejected commit stored %+v", o)
				}
				return
			}
			if !ok || o.Offset != 20 {
				t.Fatalf("offset %+v %v, want 20", o, ok)
			}
		})
	}
}

// A coordinator that lost the group keeps its old generation; once the new
// coordinator's generation is logged, the old one's commits are rejected
// even though they reach the log.
func TestStaleCoordinatorCannotCommit(t *testing.T) {
	s := stateWith(t, 1)
	apply(s, GroupGeneration{Group: "g", Generation: 5, Leader: "a", Members: []string{"a"}})
	if r := apply(s, CommitOffsets{Group: "g", Generation: 5, Member: "a", Offsets: []GroupOffset{off(testID(1), 0, 100)}}); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	// The new coordinator completes generation 6; the old one logs 5 again and commits.
	apply(s, GroupGeneration{Group: "g", Generation: 6, Leader: "b", Members: []string{"b"}})
	r := apply(s,
		GroupGeneration{Group: "g", Generation: 5, Leader: "a", Members: []string{"a"}},
		CommitOffsets{Group: "g", Generation: 5, Member: "a", Offsets: []GroupOffset{off(testID(1), 0, 50)}},
		CommitOffsets{Group: "g", Generation: 6, Member: "b", Offsets: []GroupOffset{off(testID(1), 0, 150)}})
	if !errors.Is(r[0].Err, ErrIllegalGeneration) || !errors.Is(r[1].Err, ErrIllegalGeneration) || r[2].Err != nil {
		t.Fatalf("results %+v", r)
	}
	if o, _ := s.CommittedOffset("g", testID(1), 0); o.Offset != 150 {
		t.Fatalf("offset %d, want 150", o.Offset)
	}
	if g, _ := s.Group("g"); g.Generation != 6 || g.Leader != "b" {
		t.Fatalf("group %+v, want generation 6 led by b", g)
	}
}

func TestCommitOffsetsUnknownPartitions(t *testing.T) {
	s := stateWith(t, 2)
	r := apply(s, CommitOffsets{Group: "g", Generation: -1, Offsets: []GroupOffset{
		off(testID(1), 0, 1), off(testID(1), 2, 1), off(testID(9), 0, 1), off(testID(1), -1, 1), off(testID(1), 1, 3),
	}})
	want := []error{nil, ErrUnknownTopic, ErrUnknownTopic, ErrUnknownTopic, nil}
	if r[0].Err != nil || !reflect.DeepEqual(r[0].OffsetErrs, want) {
		t.Fatalf("result %+v, want per-offset %v", r[0], want)
	}
	if got := s.CommittedOffsets("g"); len(got) != 2 || got[0].Partition != 0 || got[1].Offset != 3 {
		t.Fatalf("offsets %+v", got)
	}
}

func TestCommitOffsetsLastWinsAndCopiesMetadata(t *testing.T) {
	s := stateWith(t, 1)
	md := "first"
	o := off(testID(1), 0, 1)
	o.Metadata = &md
	apply(s, CommitOffsets{Group: "g", Generation: -1, Offsets: []GroupOffset{o}})
	md = "changed by the caller"
	if got, _ := s.CommittedOffset("g", testID(1), 0); *got.Metadata != "first" {
		t.Fatalf("metadata %q aliases the op", *got.Metadata)
	}
	apply(s, CommitOffsets{Group: "g", Generation: -1, Offsets: []GroupOffset{off(testID(1), 0, 7), off(testID(1), 0, 5)}})
	if got, _ := s.CommittedOffset("g", testID(1), 0); got.Offset != 5 || got.Metadata != nil {
		t.Fatalf("offset %+v, want 5 with null metadata", got)
	}
}

func TestGroupGenerationMustAdvance(t *testing.T) {
	s := NewState()
	for i, tc := range []struct {
		gen     int32
		wantErr error
	}{{0, nil}, {0, ErrIllegalGeneration}, {3, nil}, {2, ErrIllegalGeneration}, {4, nil}} {
		r := apply(s, GroupGeneration{Group: "g", Generation: tc.gen, Members: []string{"m"}})
		if !errors.Is(r[0].Err, tc.wantErr) {
			t.Fatalf("step %d gen %d: %v, want %v", i, tc.gen, r[0].Err, tc.wantErr)
		}
	}
	if g, ok := s.Group("g"); !ok || g.Generation != 4 {
		t.Fatalf("group %+v", g)
	}
	if _, ok := s.Group("nope"); ok {
		t.Fatal("unknown group reported")
	}
}

func TestDeleteGroupsAndOffsets(t *testing.T) {
	s := stateWith(t, 3)
	apply(s, CreateTopic{Name: "u", ID: testID(2), Partitions: 1})
	apply(s,
		GroupGeneration{Group: "g", Generation: 1},
		CommitOffsets{Group: "g", Generation: 1, Offsets: []GroupOffset{off(testID(1), 0, 1), off(testID(1), 1, 2), off(testID(2), 0, 3)}},
		CommitOffsets{Group: "h", Generation: -1, Offsets: []GroupOffset{off(testID(1), 2, 4)}})

	r := apply(s, DeleteOffsets{Group: "g", Partitions: []GroupPartition{{testID(1), 1}, {testID(1), 2}}}, DeleteOffsets{Group: "x"})
	if r[0].Err != nil || !errors.Is(r[1].Err, ErrUnknownGroup) {
		t.Fatalf("results %+v", r)
	}
	if got := s.CommittedOffsets("g"); len(got) != 2 {
		t.Fatalf("g offsets %+v", got)
	}

	// Deleting a topic drops its offsets in every group.
	apply(s, DeleteTopic{ID: testID(1)})
	if got := s.CommittedOffsets("g"); len(got) != 1 || got[0].Topic != testID(2) {
		t.Fatalf("g offsets after topic delete %+v", got)
	}
	if got := s.CommittedOffsets("h"); len(got) != 0 {
		t.Fatalf("h offsets after topic delete %+v", got)
	}

	apply(s, DeleteGroups{Groups: []string{"g", "missing"}})
	if _, ok := s.Group("g"); ok || len(s.CommittedOffsets("g")) != 0 {
		t.Fatal("g survived DeleteGroups")
	}
	if got := s.GroupNames(); !reflect.DeepEqual(got, []string{"h"}) {
		t.Fatalf("groups %v", got)
	}
	// A deleted group starts again from no generation.
	if r := apply(s, CommitOffsets{Group: "g", Generation: 1}); !errors.Is(r[0].Err, ErrIllegalGeneration) {
		t.Fatalf("commit to a deleted group's generation: %v", r[0].Err)
	}
}

// Group returns copies: callers outside the lock cannot change the state.
func TestGroupReturnsCopy(t *testing.T) {
	s := NewState()
	apply(s, GroupGeneration{Group: "g", Generation: 1, Members: []string{"a", "b"}})
	g, _ := s.Group("g")
	g.Members[0] = "z"
	if g2, _ := s.Group("g"); g2.Members[0] != "a" {
		t.Fatal("Group aliases the state")
	}
}
