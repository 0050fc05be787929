package tiered

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
)

// TestPartSegmentReadable: two chunks copied unpatched into one cmp/
// object read back, through the whole-segment reader too, exactly as the
// chunks they replace.
func TestPartSegmentReadable(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	c1, _ := storedChunk(t, mem, "seg/a", 100, 2, 3)
	c2, _ := storedChunk(t, mem, "seg/b", 105, 1)
	want := map[bool][]byte{}
	var raw []byte
	for _, c := range []meta.Chunk{c1, c2} {
		b, err := mem.GetRange(ctx, c.Object, c.Pos, c.Len)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	id := meta.TopicID{1}
	obj, part := EncodePartSegment(id, 4, raw, 3)
	parts, err := DecodeSegment(obj)
	if err != nil || !reflect.DeepEqual(parts, []SegmentPart{part}) {
		t.Fatalf("decode: %v %+v", err, parts)
	}
	if err := mem.Put(ctx, "cmp/x", obj); err != nil {
		t.Fatal(err)
	}
	out := meta.Chunk{Object: "cmp/x", Pos: part.Pos, Len: part.Len, BaseOffset: 100, NextOffset: 106}
	for _, whole := range []bool{false, true} {
		rd := NewReader(mem, newCache(t))
		if whole {
			rd.ReadWholeSegments(2)
		}
		var old []byte
		for _, c := range []meta.Chunk{c1, c2} {
			b, err := rd.Chunk(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			old = append(old, b...)
		}
		got, err := rd.Chunk(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, old) {
			t.Fatalf("whole=%v: compacted chunk reads differently", whole)
		}
		want[whole] = got
	}
	if !bytes.Equal(want[false], want[true]) {
		t.Fatal("range and whole readers differ")
	}
}
