package meta

import (
	"errors"
	"testing"
)

// at2 returns a state of Format2 with topic "t" of one partition.
func at2(t *testing.T) *State {
	t.Helper()
	s := stateWith(t, 1)
	apply(s, SetFormat{Version: Format2})
	return s
}

// The state decides between a late commit and the orphan sweep, in log
// order: whichever applies first wins, and the other is refused.
func TestCondemnRacesCommit(t *testing.T) {
	id := testID(1)
	t.Run("condemned first: the commit is refused", func(t *testing.T) {
		s := at2(t)
		r := apply(s, CondemnObjects{Keys: []string{"seg/a"}})
		if len(r[0].Keys) != 1 || r[0].Keys[0] != "seg/a" {
			t.Fatalf("condemned %v, want seg/a", r[0].Keys)
		}
		c := commitOf("seg/a", part(id, 0, plain(0, 10, 3)))
		c.Since = s.Seq
		res := apply(s, c)[0].Parts[0][0]
		if !errors.Is(res.Err, ErrCondemned) {
			t.Fatalf("commit of a condemned object: %v, want ErrCondemned", res.Err)
		}
		if p := partition(t, s, "t", 0); p.HighWatermark != 0 || len(p.Chunks) != 0 {
			t.Fatalf("refused commit changed the partition: %+v", p)
		}
		if s.IsReleased("seg/a") {
			t.Fatal("a condemned object is also released: two jobs would delete it")
		}
	})
	t.Run("committed first: not condemned", func(t *testing.T) {
		s := at2(t)
		apply(s, commitOf("seg/a", part(id, 0, plain(0, 10, 3))))
		if r := apply(s, CondemnObjects{Keys: []string{"seg/a", "seg/b"}}); len(r[0].Keys) != 1 || r[0].Keys[0] != "seg/b" {
			t.Fatalf("condemned %v, want only the unreferenced seg/b", r[0].Keys)
		}
	})
	t.Run("released objects are collection's", func(t *testing.T) {
		s := at2(t)
		apply(s, commitOf("seg/a", part(id, 0, plain(0, 10, 3))))
		apply(s, AdvanceLogStart{Topic: id, Offset: 3})
		if !s.IsReleased("seg/a") {
			t.Fatal("setup: seg/a not released")
		}
		if r := apply(s, CondemnObjects{Keys: []string{"seg/a"}}); len(r[0].Keys) != 0 {
			t.Fatalf("condemned a released object: %v", r[0].Keys)
		}
	})
	t.Run("compaction outputs", func(t *testing.T) {
		s := at2(t)
		apply(s, commitOf("seg/a", part(id, 0, plain(0, 10, 3))), commitOf("seg/b", part(id, 0, plain(0, 10, 3))))
		p := partition(t, s, "t", 0)
		in := []ChunkRef{p.Chunks[0].Ref(), p.Chunks[1].Ref()}
		apply(s, CondemnObjects{Keys: []string{"cmp/x"}})
		op := ReplaceChunks{Topic: id, Inputs: in, Output: Chunk{Object: "cmp/x", Len: 20, BaseOffset: 0, NextOffset: 6}, Since: s.Seq}
		if err := apply(s, op)[0].Err; !errors.Is(err, ErrCondemned) {
			t.Fatalf("ReplaceChunks into a condemned object: %v", err)
		}
		clean := CleanChunks{Topic: id, Runs: []CleanRun{{Inputs: in, Output: Chunk{Object: "cmp/x", Len: 20, NextOffset: 6}}}, Since: s.Seq}
		if err := apply(s, clean)[0].Err; !errors.Is(err, ErrCondemned) {
			t.Fatalf("CleanChunks into a condemned object: %v", err)
		}
		if got := len(partition(t, s, "t", 0).Chunks); got != 2 {
			t.Fatalf("%d chunks after refused replacements, want 2", got)
		}
	})
}

// Once a condemned object is forgotten, a commit that started before it
// was condemned is still refused: its Since is below the floor. Commits
// that started later are not.
func TestCommitFloor(t *testing.T) {
	s := at2(t)
	id := testID(1)
	started := s.Seq // a writer begins its upload here, then stalls
	apply(s, CondemnObjects{Keys: []string{"seg/late"}})
	apply(s, ForgetObjects{Keys: []string{"seg/late"}})
	if s.IsCondemned("seg/late") || s.CommitFloor() != s.Seq-1 {
		t.Fatalf("after forgetting: condemned %v, floor %d (seq %d)", s.IsCondemned("seg/late"), s.CommitFloor(), s.Seq)
	}
	late := commitOf("seg/late", part(id, 0, plain(0, 10, 3)))
	late.Since = started
	if err := apply(s, late)[0].Parts[0][0].Err; !errors.Is(err, ErrCondemned) {
		t.Fatalf("a commit that began before a forgotten condemnation: %v, want ErrCondemned", err)
	}
	fresh := commitOf("seg/new", part(id, 0, plain(0, 10, 3)))
	fresh.Since = s.Seq
	if err := apply(s, fresh)[0].Parts[0][0].Err; err != nil {
		t.Fatalf("a commit that began after it: %v", err)
	}
	if !s.IsReleased("seg/late") {
		t.Fatal("an object refused by the floor and not condemned is left to nobody: it must be released for collection")
	}
}
