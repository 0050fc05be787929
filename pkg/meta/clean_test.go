package meta

import (
	"errors"
	"testing"
)

func TestCleanChunks(t *testing.T) {
	id := testID(1)
	out := func(name string, base, next int64) Chunk {
		return Chunk{Object: name, Pos: 8, Len: 10, BaseOffset: base, NextOffset: next}
	}
	s := compactable(t) // partition 0: o1 [0,3), o2 [3,5), o3 [5,6)
	p0 := partition(t, s, "t", 0)
	in := refsOf(s, p0, 0, 3)

	// Two runs, the middle chunk left alone; the boundary and horizon move.
	op := CleanChunks{Topic: id, Boundary: true, CleanedTo: 6, DeleteHorizon: 900, Runs: []CleanRun{
		{Inputs: in[:1], Output: out("cln/a", 0, 3)},
		{Inputs: in[2:], Output: out("cln/b", 5, 6)},
	}}
	if r := applyAt(s, 400, op); r[0].Err != nil {
		t.Fatalf("clean: %v", r[0].Err)
	}
	if p0.Chunks[0].Object != "cln/a" || p0.Chunks[1].Object != "o2" || p0.Chunks[2].Object != "cln/b" || len(p0.Chunks) != 3 {
		t.Fatalf("chunks %+v", p0.Chunks)
	}
	if p0.CleanedTo != 6 || p0.DeleteHorizon != 900 {
		t.Fatalf("cleaned to %d, horizon %d", p0.CleanedTo, p0.DeleteHorizon)
	}
	if s.ObjectRefs("o3") != 0 || !s.IsReleased("o3") || s.ObjectRefs("o1") != 1 || s.ObjectRefs("cln/a") != 1 {
		t.Fatalf("refs o1 %d o3 %d (released %v) cln/a %d", s.ObjectRefs("o1"), s.ObjectRefs("o3"), s.IsReleased("o3"), s.ObjectRefs("cln/a"))
	}

	for _, tc := range []struct {
		name string
		op   CleanChunks
	}{
		{"a run changed", CleanChunks{Topic: id, CleanedTo: 6, Runs: []CleanRun{
			{Inputs: in[:1], Output: out("cln/c", 0, 3)}}}},
		{"boundary moves back", CleanChunks{Topic: id, Boundary: true, CleanedTo: 5, Runs: []CleanRun{
			{Inputs: refsOf(s, p0, 1, 2), Output: out("cln/d", 3, 5)}}}},
		{"runs out of order", CleanChunks{Topic: id, CleanedTo: 6, Runs: []CleanRun{
			{Inputs: refsOf(s, p0, 1, 2), Output: out("cln/e", 3, 5)},
			{Inputs: refsOf(s, p0, 0, 1), Output: out("cln/f", 0, 3)}}}},
		{"boundary past the high watermark", CleanChunks{Topic: id, Boundary: true, CleanedTo: 7}},
		{"unknown partition", CleanChunks{Topic: id, Partition: 9, CleanedTo: 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]Chunk(nil), p0.Chunks...)
			r := applyAt(s, 500, tc.op)
			if !errors.Is(r[0].Err, ErrConflict) {
				t.Fatalf("err %v, want ErrConflict", r[0].Err)
			}
			if len(p0.Chunks) != len(before) || p0.Chunks[1] != before[1] || p0.CleanedTo != 6 {
				t.Fatalf("a rejected clean changed the partition: %+v", p0.Chunks)
			}
			for _, run := range tc.op.Runs {
				if !s.IsReleased(run.Output.Object) {
					t.Errorf("rejected output %s not released", run.Output.Object)
				}
			}
		})
	}
}
