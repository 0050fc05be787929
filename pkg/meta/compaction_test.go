package meta

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// compactable returns a state whose partition 0 of "t" holds chunks from
// o1 (offsets 0-2), o2 (3-4) and o3 (5), with o1 also holding partition 1.
func compactable(t *testing.T) *State {
	t.Helper()
	s := stateWith(t, 2)
	id := testID(1)
	applyAt(s, 100, commitOf("o1", part(id, 0, timed(8, 10, 3, 1)), part(id, 1, timed(18, 10, 2, 1))))
	applyAt(s, 200, commitOf("o2", part(id, 0, timed(8, 20, 2, 5))))
	applyAt(s, 300, commitOf("o3", part(id, 0, timed(8, 30, 1, 3))))
	return s
}

func refsOf(s *State, p *Partition, from, to int) []ChunkRef {
	var out []ChunkRef
	for _, c := range p.Chunks[from:to] {
		out = append(out, c.Ref())
	}
	return out
}

func TestReplaceChunksAccepted(t *testing.T) {
	s := compactable(t)
	id := testID(1)
	p0 := partition(t, s, "t", 0)
	before := append([]Chunk(nil), p0.Chunks...)
	out := Chunk{Object: "cmp/1", Pos: 8, Len: 30, BaseOffset: 0, NextOffset: 5, MaxTimestamp: 5}
	r := applyAt(s, 400, ReplaceChunks{Topic: id, Partition: 0, Inputs: refsOf(s, p0, 0, 2), Output: out})
	if r[0].Err != nil {
		t.Fatalf("replace: %v", r[0].Err)
	}
	if want := []Chunk{out, before[2]}; !reflect.DeepEqual(p0.Chunks, want) {
		t.Fatalf("chunks %+v, want %+v", p0.Chunks, want)
	}
	// o1 still holds partition 1; o2 is released; the output is referred to.
	if s.ObjectRefs("o1") != 1 || s.ObjectRefs("o2") != 0 || s.ObjectRefs("cmp/1") != 1 || s.ObjectRefs("o3") != 1 {
		t.Fatalf("refs o1 %d o2 %d cmp %d", s.ObjectRefs("o1"), s.ObjectRefs("o2"), s.ObjectRefs("cmp/1"))
	}
	if got := s.Released(1 << 62); !reflect.DeepEqual(got, []ReleasedObject{{"o2", 400}}) {
		t.Fatalf("released %v", got)
	}
	if p0.Find(0) != 0 || p0.Find(4) != 0 || p0.Find(5) != 1 || p0.HighWatermark != 6 {
		t.Fatalf("find after replace: %d %d %d", p0.Find(0), p0.Find(4), p0.Find(5))
	}
	// Snapshot round trip, ref counts rebuilt from the chunks.
	snap := s.EncodeSnapshot()
	dec, err := DecodeSnapshot(snap)
	if err != nil || !sameAsSnapshot(s, dec) || !bytes.Equal(dec.EncodeSnapshot(), snap) {
		t.Fatalf("snapshot round trip after replace: %v", err)
	}
	if dec.ObjectRefs("cmp/1") != 1 || dec.ObjectRefs("o2") != 0 {
		t.Fatalf("decoded refs cmp %d o2 %d", dec.ObjectRefs("cmp/1"), dec.ObjectRefs("o2"))
	}
}

func TestReplaceChunksConflict(t *testing.T) {
	id := testID(1)
	out := func(name string, base, next int64) Chunk {
		return Chunk{Object: name, Pos: 8, Len: 30, BaseOffset: base, NextOffset: next}
	}
	for _, tc := range []struct {
		name   string
		before func(s *State) // changes the partition after the job read it
		op     func(in []ChunkRef) ReplaceChunks
	}{
		{"input dropped by retention", func(s *State) { applyAt(s, 350, AdvanceLogStart{Topic: id, Offset: 3}) },
			func(in []ChunkRef) ReplaceChunks {
				return ReplaceChunks{Topic: id, Inputs: in[:2], Output: out("cmp/x", 0, 5)}
			}},
		{"run already replaced", func(s *State) {
			p0 := s.Topic("t").Partition(0)
			applyAt(s, 350, ReplaceChunks{Topic: id, Inputs: refsOf(s, p0, 1, 3), Output: out("cmp/other", 3, 6)})
		}, func(in []ChunkRef) ReplaceChunks {
			return ReplaceChunks{Topic: id, Inputs: in[:2], Output: out("cmp/x", 0, 5)}
		}},
		{"topic deleted", func(s *State) { applyAt(s, 350, DeleteTopic{ID: id}) },
			func(in []ChunkRef) ReplaceChunks {
				return ReplaceChunks{Topic: id, Inputs: in[:2], Output: out("cmp/x", 0, 5)}
			}},
		{"not contiguous", func(*State) {}, func(in []ChunkRef) ReplaceChunks {
			return ReplaceChunks{Topic: id, Inputs: []ChunkRef{in[0], in[2]}, Output: out("cmp/x", 0, 6)}
		}},
		{"input differs", func(*State) {}, func(in []ChunkRef) ReplaceChunks {
			in[1].Len++
			return ReplaceChunks{Topic: id, Inputs: in[:2], Output: out("cmp/x", 0, 5)}
		}},
		{"output offsets differ", func(*State) {}, func(in []ChunkRef) ReplaceChunks {
			return ReplaceChunks{Topic: id, Inputs: in[:2], Output: out("cmp/x", 0, 4)}
		}},
		{"output not new", func(*State) {}, func(in []ChunkRef) ReplaceChunks {
			return ReplaceChunks{Topic: id, Inputs: in[:2], Output: out("o3", 0, 5)}
		}},
		{"unknown partition", func(*State) {}, func(in []ChunkRef) ReplaceChunks {
			return ReplaceChunks{Topic: id, Partition: 7, Inputs: in[:2], Output: out("cmp/x", 0, 5)}
		}},
		{"no inputs", func(*State) {}, func([]ChunkRef) ReplaceChunks {
			return ReplaceChunks{Topic: id, Output: out("cmp/x", 0, 5)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compactable(t)
			in := refsOf(s, partition(t, s, "t", 0), 0, 3)
			tc.before(s)
			seq, snap := s.Seq, s.EncodeSnapshot()
			op := tc.op(in)
			r := applyAt(s, 400, op)
			if !errors.Is(r[0].Err, ErrConflict) {
				t.Fatalf("err %v, want ErrConflict", r[0].Err)
			}
			// Nothing changes but the release of the (new) output.
			if op.Output.Object == "cmp/x" {
				if !containsKey(s.Released(1<<62), "cmp/x") {
					t.Fatalf("rejected output not released: %v", s.Released(1<<62))
				}
				applyAt(s, 500, ForgetObjects{Keys: []string{"cmp/x"}})
			}
			s.Seq = seq
			if !bytes.Equal(s.EncodeSnapshot(), snap) {
				t.Fatalf("rejected replace changed the state")
			}
		})
	}
}

func containsKey(rs []ReleasedObject, k string) bool {
	for _, r := range rs {
		if r.Key == k {
			return true
		}
	}
	return false
}
