package tiered

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
)

// Segment object layout (version 1):
//
//	offset   size  field
//	0        4     magic "BRGS"
//	4        1     version = 1
//	5        3     reserved, zero
//	8        N     batches exactly as producers sent them (base offset 0),
//	               grouped by partition, each partition's in arrival order
//	8+N      F     footer: uvarint part count, then per part: topic id (16),
//	               partition (varint), pos, len, batch count (uvarints)
//	end-12   4     F, little endian
//	end-8    4     CRC-32C (Castagnoli) of bytes [0, end-8)
//	end-4    4     magic "BRGS"
//
// The footer makes an object readable without the metadata log (for
// collection and repair); readers on the hot path use the byte ranges the
// log recorded and never touch the footer.
const (
	segMagic      = "BRGS"
	segVersion    = 1
	segHeaderSize = 8
	segTrailer    = 12
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptSegment reports a segment object that fails its checks.
var ErrCorruptSegment = errors.New("tiered: corrupt segment object")

// SegmentPart is one partition's byte range in a segment object.
type SegmentPart struct {
	Topic     meta.TopicID
	Partition int32
	Pos, Len  int64
	Batches   int
}

func appendFooter(b []byte, parts []SegmentPart) []byte {
	start := len(b)
	b = binary.AppendUvarint(b, uint64(len(parts)))
	for _, p := range parts {
		b = append(b, p.Topic[:]...)
		b = binary.AppendVarint(b, int64(p.Partition))
		b = binary.AppendUvarint(b, uint64(p.Pos))
		b = binary.AppendUvarint(b, uint64(p.Len))
		b = binary.AppendUvarint(b, uint64(p.Batches))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(b)-start))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return append(b, segMagic...)
}

// joinSegment joins an object's pieces (the header, the batches, the
// footer appendFooter encoded on its own) in one copy into memory not
// zeroed first, lets patch change the batches in place, and then sets the
// checksum, which covers the whole object up to it.
func joinSegment(pieces [][]byte, patch func(obj []byte)) []byte {
	obj := bytes.Join(pieces, nil)
	patch(obj)
	n := len(obj) - segTrailer + 4 // the checksum sits after the footer's length
	binary.LittleEndian.PutUint32(obj[n:], crc32.Checksum(obj[:n], castagnoli))
	return obj
}

// footerSize is an upper bound of the footer's encoded size.
func footerSize(parts int) int { return 10 + parts*(16+10+10+10+10) + segTrailer }

// segmentRanges is what a segment's footer says of the ranges readers
// will read from it, unverified (nothing known for an object that is not
// a segment): how many, where each starts, and which topic it is of, so
// that the cache knows the segment read through once every partition of
// each topic read from it has been, though other topics' are never read.
func segmentRanges(obj []byte) cache.Parts {
	if len(obj) < segHeaderSize+segTrailer || string(obj[:4]) != segMagic || obj[4] != segVersion {
		return cache.Parts{}
	}
	parts, err := footerParts(obj)
	if err != nil {
		return cache.Parts{N: footerCount(obj)}
	}
	slices.SortFunc(parts, func(a, b SegmentPart) int { return cmp.Compare(a.Pos, b.Pos) })
	n := len(parts)
	rs := cache.Parts{N: n, Pos: make([]int64, n), Len: make([]int64, n), Group: make([]int32, n)}
	topics := map[meta.TopicID]int32{}
	for i, p := range parts {
		g, ok := topics[p.Topic]
		if !ok {
			g = int32(len(topics))
			topics[p.Topic] = g
		}
		rs.Pos[i], rs.Len[i], rs.Group[i] = p.Pos, p.Len, g
	}
	return rs
}

// footerCount is the part count a segment's footer gives, unverified (0
// when it cannot be read).
func footerCount(obj []byte) int {
	end := len(obj) - segTrailer
	flen := int(binary.LittleEndian.Uint32(obj[end:]))
	if flen <= 0 || flen > end-segHeaderSize {
		return 0
	}
	n, k := binary.Uvarint(obj[end-flen : end])
	if k <= 0 || n > uint64(flen) {
		return 0
	}
	return int(n)
}

// DecodeSegment verifies a whole segment object and returns its parts.
func DecodeSegment(obj []byte) ([]SegmentPart, error) {
	if len(obj) < segHeaderSize+segTrailer || string(obj[:4]) != segMagic || string(obj[len(obj)-4:]) != segMagic {
		return nil, fmt.Errorf("%w: bad magic or size", ErrCorruptSegment)
	}
	if obj[4] != segVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorruptSegment, obj[4])
	}
	if crc32.Checksum(obj[:len(obj)-8], castagnoli) != binary.LittleEndian.Uint32(obj[len(obj)-8:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptSegment)
	}
	return footerParts(obj)
}

// footerParts parses the footer of a segment object at least segHeaderSize
// + segTrailer long, checking every part lies within the batches but not
// the object's checksum.
func footerParts(obj []byte) ([]SegmentPart, error) {
	end := len(obj) - segTrailer
	flen := int(binary.LittleEndian.Uint32(obj[end:]))
	if flen > end-segHeaderSize {
		return nil, fmt.Errorf("%w: footer length", ErrCorruptSegment)
	}
	f := obj[end-flen : end]
	n, k := binary.Uvarint(f)
	if k <= 0 || n > uint64(len(f)) {
		return nil, fmt.Errorf("%w: footer count", ErrCorruptSegment)
	}
	f = f[k:]
	parts := make([]SegmentPart, 0, n)
	for i := uint64(0); i < n; i++ {
		var p SegmentPart
		if len(f) < 16 {
			return nil, fmt.Errorf("%w: footer truncated", ErrCorruptSegment)
		}
		copy(p.Topic[:], f)
		f = f[16:]
		var vals [3]uint64 // pos, len, batch count
		part, k := binary.Varint(f)
		if k <= 0 {
			return nil, fmt.Errorf("%w: footer truncated", ErrCorruptSegment)
		}
		if part != int64(int32(part)) {
			return nil, fmt.Errorf("%w: partition %d", ErrCorruptSegment, part)
		}
		f = f[k:]
		for j := range vals {
			if vals[j], k = binary.Uvarint(f); k <= 0 {
				return nil, fmt.Errorf("%w: footer truncated", ErrCorruptSegment)
			}
			f = f[k:]
		}
		// Compare in uint64 so that no sum can overflow: Pos and Len are
		// within [0, end-flen] when they pass, and a part cannot hold more
		// batches than bytes.
		if vals[0] < segHeaderSize || vals[0] > uint64(end-flen) || vals[1] > uint64(end-flen)-vals[0] || vals[2] > vals[1] {
			return nil, fmt.Errorf("%w: part out of range", ErrCorruptSegment)
		}
		p.Partition, p.Pos, p.Len, p.Batches = int32(part), int64(vals[0]), int64(vals[1]), int(vals[2])
		parts = append(parts, p)
	}
	return parts, nil
}

// EncodePartSegment returns a segment object holding one partition's
// batches, exactly as given (compaction copies them unpatched from the
// ingestion objects), and the part as the footer lists it.
func EncodePartSegment(topic meta.TopicID, partition int32, batches []byte, count int) ([]byte, SegmentPart) {
	part := SegmentPart{Topic: topic, Partition: partition, Pos: segHeaderSize, Len: int64(len(batches)), Batches: count}
	obj := make([]byte, segHeaderSize, segHeaderSize+len(batches)+footerSize(1))
	copy(obj, segMagic)
	obj[4] = segVersion
	obj = append(obj, batches...)
	return appendFooter(obj, []SegmentPart{part}), part
}
