package tiered

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bargehq/barge/pkg/meta"
)

// buildSegment lays out an object as upload does: header, payload, footer.
func buildSegment(payload []byte, parts []SegmentPart) []byte {
	obj := append([]byte(segMagic), segVersion, 0, 0, 0)
	obj = append(obj, payload...)
	return appendFooter(obj, parts)
}

// rawSegment seals arbitrary footer bytes with a valid length, checksum and
// magic, so that a test reaches the footer checks behind them.
func rawSegment(version byte, payload, footer []byte) []byte {
	obj := append([]byte(segMagic), version, 0, 0, 0)
	obj = append(obj, payload...)
	obj = append(obj, footer...)
	obj = binary.LittleEndian.AppendUint32(obj, uint32(len(footer)))
	obj = binary.LittleEndian.AppendUint32(obj, crc32.Checksum(obj, castagnoli))
	return append(obj, segMagic...)
}

// footerBody encodes parts without the trailer.
func footerBody(parts []SegmentPart) []byte {
	b := appendFooter(nil, parts)
	return b[:len(b)-segTrailer]
}

// reseal recomputes the checksum after an edit.
func reseal(obj []byte) []byte {
	obj = bytes.Clone(obj)
	n := len(obj)
	binary.LittleEndian.PutUint32(obj[n-8:], crc32.Checksum(obj[:n-8], castagnoli))
	return obj
}

func TestSegmentRoundTrip(t *testing.T) {
	a, b := topicID("alpha"), topicID("beta")
	payload := bytes.Repeat([]byte{0xAB}, 300)
	for _, parts := range [][]SegmentPart{
		{},
		{{Topic: a, Partition: 0, Pos: 8, Len: 300, Batches: 4}},
		{
			{Topic: a, Partition: 3, Pos: 8, Len: 100, Batches: 1},
			{Topic: b, Partition: 0, Pos: 108, Len: 0, Batches: 0},
			{Topic: b, Partition: math.MaxInt32, Pos: 108, Len: 200, Batches: 17},
		},
	} {
		obj := buildSegment(payload, parts)
		if len(obj) > segHeaderSize+len(payload)+footerSize(len(parts)) {
			t.Errorf("%d parts: object %d bytes exceeds the footerSize bound", len(parts), len(obj))
		}
		got, err := DecodeSegment(obj)
		if err != nil {
			t.Fatalf("%d parts: %v", len(parts), err)
		}
		if !slices.Equal(got, parts) {
			t.Errorf("decoded %+v, want %+v", got, parts)
		}
	}
}

// The object Ingest PUT decodes, and its parts cover the batches exactly.
func TestSegmentRoundTripFromIngest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, IngestConfig{FlushInterval: time.Second}, meta.Options{}, nil)
		ids := []meta.TopicID{r.createTopic("a", 3), r.createTopic("b", 2)}
		want := map[TopicPartition]int{}
		var tks []*Ticket
		for i := range 12 {
			tp := TopicPartition{ids[i%2], int32(i % 3 % (2 + (i+1)%2))}
			tk, err := r.in.Append(tp, []Batch{mkBatch(t, "s", 1+i%4, 0)}, false)
			if err != nil {
				t.Fatal(err)
			}
			tks = append(tks, tk)
			want[tp]++
		}
		for _, tk := range tks {
			wait(t, tk)
		}
		keys := r.segmentKeys()
		if len(keys) != 1 {
			t.Fatalf("objects %v", keys)
		}
		obj, err := r.mem.Get(context.Background(), keys[0])
		if err != nil {
			t.Fatal(err)
		}
		parts, err := DecodeSegment(obj)
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != len(want) {
			t.Fatalf("%d parts, want %d", len(parts), len(want))
		}
		pos := int64(segHeaderSize)
		for _, p := range parts {
			tp := TopicPartition{p.Topic, p.Partition}
			if p.Batches != want[tp] {
				t.Errorf("%v: %d batches, want %d", tp, p.Batches, want[tp])
			}
			if p.Pos != pos {
				t.Errorf("%v: at %d, want %d (parts are laid out back to back)", tp, p.Pos, pos)
			}
			pos += p.Len
			if got := decodeBatches(t, obj[p.Pos:p.Pos+p.Len]); len(got) != p.Batches {
				t.Errorf("%v: range holds %d batches, footer says %d", tp, len(got), p.Batches)
			}
		}
		footerStart := len(obj) - segTrailer - int(binary.LittleEndian.Uint32(obj[len(obj)-segTrailer:]))
		if pos != int64(footerStart) {
			t.Errorf("batches end at %d, footer starts at %d", pos, footerStart)
		}
	})
}

func TestDecodeSegmentCorrupt(t *testing.T) {
	id := topicID("t")
	payload := bytes.Repeat([]byte{1}, 100)
	good := buildSegment(payload, []SegmentPart{{Topic: id, Pos: 8, Len: 60, Batches: 1}, {Topic: id, Partition: 1, Pos: 68, Len: 40, Batches: 2}})
	if _, err := DecodeSegment(good); err != nil {
		t.Fatalf("the good object: %v", err)
	}
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	onePart := func(p SegmentPart) []byte { return rawSegment(segVersion, payload, footerBody([]SegmentPart{p})) }
	twoClaimedOneGiven := append(binary.AppendUvarint(nil, 2), footerBody([]SegmentPart{{Topic: id, Pos: 8, Len: 10, Batches: 1}})[1:]...)
	withFlen := func(flen uint32) []byte {
		return reseal(edit(func(b []byte) { binary.LittleEndian.PutUint32(b[len(b)-segTrailer:], flen) }))
	}

	for _, tc := range []struct {
		name string
		obj  []byte
	}{
		{"empty", nil},
		{"shorter than header and trailer", good[:segHeaderSize+segTrailer-1]},
		{"header and trailer only, no footer", rawSegment(segVersion, nil, nil)},
		{"bad leading magic", reseal(edit(func(b []byte) { b[0] = 'X' }))},
		{"bad trailing magic", edit(func(b []byte) { b[len(b)-1] = 'X' })},
		{"truncated object", good[:len(good)-1]},
		{"version 0", reseal(edit(func(b []byte) { b[4] = 0 }))},
		{"version 2", reseal(edit(func(b []byte) { b[4] = 2 }))},
		{"payload flipped", edit(func(b []byte) { b[20] ^= 1 })},
		{"header flipped", edit(func(b []byte) { b[6] ^= 1 })},
		{"footer flipped", edit(func(b []byte) { b[len(b)-segTrailer-3] ^= 1 })},
		{"checksum flipped", edit(func(b []byte) { b[len(b)-6] ^= 1 })},
		{"footer length beyond object", withFlen(uint32(len(good)))},
		{"footer length huge", withFlen(math.MaxUint32)},
		{"footer length zero", withFlen(0)},
		{"footer length one short", withFlen(binary.LittleEndian.Uint32(good[len(good)-segTrailer:]) - 1)},
		{"footer count beyond footer", rawSegment(segVersion, payload, binary.AppendUvarint(nil, 1000))},
		{"footer count varint overflow", rawSegment(segVersion, payload, bytes.Repeat([]byte{0xff}, 11))},
		{"footer claims more parts than it holds", rawSegment(segVersion, payload, twoClaimedOneGiven)},
		{"footer part without topic", rawSegment(segVersion, payload, []byte{1, 1, 2, 3})},
		{"footer part cut after topic", rawSegment(segVersion, payload, append([]byte{1}, make([]byte, 16)...))},
		{"footer part cut in its fields", rawSegment(segVersion, payload, footerBody([]SegmentPart{{Topic: id, Pos: 8, Len: 10}})[:20])},
		{"partition beyond int32", rawSegment(segVersion, payload, slices.Concat([]byte{1}, id[:], binary.AppendVarint(nil, math.MaxInt32+1), []byte{8, 0, 0}))},
		{"part before the header ends", onePart(SegmentPart{Topic: id, Pos: 7, Len: 1})},
		{"part overlaps the footer", onePart(SegmentPart{Topic: id, Pos: 8, Len: 101})},
		{"part starts past the footer", onePart(SegmentPart{Topic: id, Pos: 200, Len: 0})},
		{"part position negative", onePart(SegmentPart{Topic: id, Pos: -1, Len: 1})},
		{"part length negative", onePart(SegmentPart{Topic: id, Pos: 8, Len: -1})},
		{"part end overflows", onePart(SegmentPart{Topic: id, Pos: 8, Len: math.MaxInt64})},
		{"part end overflows from the position", onePart(SegmentPart{Topic: id, Pos: math.MaxInt64 - 4, Len: 10})},
		{"more batches than bytes", onePart(SegmentPart{Topic: id, Pos: 8, Len: 10, Batches: 11})},
		{"batch count negative", onePart(SegmentPart{Topic: id, Pos: 8, Len: 10, Batches: -1})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts, err := DecodeSegment(tc.obj)
			if !errors.Is(err, ErrCorruptSegment) {
				t.Errorf("DecodeSegment = %+v, %v; want ErrCorruptSegment", parts, err)
			}
		})
	}
}

// FuzzDecodeSegment: DecodeSegment never panics, fails only with
// ErrCorruptSegment, and every part it accepts lies between the header and
// the footer. With reseal set the input gets valid magic and checksum, so
// the fuzzer explores the footer rather than the CRC.
func FuzzDecodeSegment(f *testing.F) {
	id := topicID("fuzz")
	f.Add(buildSegment(nil, nil), false)
	f.Add(buildSegment(make([]byte, 100), []SegmentPart{{Topic: id, Pos: 8, Len: 100, Batches: 1}}), false)
	f.Add(buildSegment(make([]byte, 100), []SegmentPart{{Topic: id, Pos: 8, Len: 30, Batches: 1}, {Topic: id, Partition: 1, Pos: 38, Len: 70, Batches: 2}}), true)
	f.Add(rawSegment(segVersion, make([]byte, 10), footerBody([]SegmentPart{{Topic: id, Pos: 8, Len: math.MaxInt64}})), true)
	f.Fuzz(func(t *testing.T, obj []byte, fix bool) {
		if fix && len(obj) >= segHeaderSize+segTrailer {
			obj = bytes.Clone(obj)
			copy(obj, segMagic)
			obj[4] = segVersion
			copy(obj[len(obj)-4:], segMagic)
			obj = reseal(obj)
		}
		parts, err := DecodeSegment(obj)
		if err != nil {
			if !errors.Is(err, ErrCorruptSegment) {
				t.Fatalf("error %v is not ErrCorruptSegment", err)
			}
			return
		}
		footerStart := int64(len(obj) - segTrailer - int(binary.LittleEndian.Uint32(obj[len(obj)-segTrailer:])))
		for _, p := range parts {
			if p.Pos < segHeaderSize || p.Len < 0 || p.Pos > footerStart || p.Len > footerStart-p.Pos || p.Batches < 0 {
				t.Fatalf("accepted part %+v outside [%d, %d)", p, segHeaderSize, footerStart)
			}
			_ = obj[p.Pos : p.Pos+p.Len]
		}
		// What decodes re-encodes to an object that decodes the same.
		again, err := DecodeSegment(buildSegment(obj[segHeaderSize:footerStart], parts))
		if err != nil || !slices.Equal(again, parts) {
			t.Fatalf("re-encoded: %+v, %v; want %+v", again, err, parts)
		}
	})
}
