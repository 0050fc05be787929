package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/klauspost/compress/zstd"
)

// zstd records are decoded whole with DecodeAll (see zstdReaders for why
// not a stream), into a buffer whose capacity bounds the output. Memory is
// spent on what the input really decodes to, never on what a header says:
//
//   - Before decoding, the frames' block headers are walked (zstdNextFrame):
//     raw and RLE blocks state their output, a compressed block makes at
//     most 128 KiB, so a frame declaring more content than its blocks can
//     hold is corrupt, and one whose raw and RLE blocks alone pass the
//     limit is too large, both before anything is allocated.
//   - A declared content size is believed only when the input could
//     plausibly make it, zstdTrustRatio times its length and a little; the
//     frames then decode once into a buffer of that size, as franz-go's
//     and the other Go clients' frames, which declare it, mostly do.
//   - Otherwise the buffer starts at a few times the input and doubles,
//     decoding again, as real output fills it: at most twice the work of
//     one decode. The decoder, told a frame's size, wants room for all of
//     it before decoding a byte, so frames that declare one are decoded
//     with the size left out of their header (appendStripped) and their
//     output checked against it instead. Java producers and librdkafka
//     stream, so their frames declare no size and take this path as is.

// zstdMaxBlock is the most a zstd block decodes to (Block_Maximum_Size).
const zstdMaxBlock = 128 << 10

// A frame's declared content size is believed when the input is at least
// 1/zstdTrustRatio of it, less zstdTrustSlack: ordinary batches compress
// 3 to 10 times. Believing it costs a liar at most this much memory before
// any output is seen; a batch compressed further decodes by doubling.
const (
	zstdTrustRatio = 32
	zstdTrustSlack = 64 << 10
)

// zstdSpan is where one frame of a zstd stream lies and what its headers
// say.
type zstdSpan struct {
	b     []byte // the whole frame
	hdr   int    // the frame header's length
	fcs   int    // the declared content size, or -1
	room  int    // the most its blocks can decode to
	known int    // what its raw and RLE blocks decode to
	skip  bool   // a skippable frame
}

const (
	zstdMagic     = 0xfd2fb528
	zstdSkippable = 0x184d2a50 // the low 4 bits are the user's
)

var errZstdFraming = errors.New("malformed zstd framing")

// zstdNextFrame reads the frame at the start of src from its frame and
// block headers, without decoding it, and returns the rest of src.
func zstdNextFrame(src []byte) (f zstdSpan, rest []byte, err error) {
	bad := func(what string, args ...any) (zstdSpan, []byte, error) {
		return zstdSpan{}, nil, fmt.Errorf("%w: %v: %s", ErrCorrupt, errZstdFraming, fmt.Sprintf(what, args...))
	}
	if len(src) < 5 {
		return bad("%d bytes are no frame", len(src))
	}
	if binary.LittleEndian.Uint32(src)&^0xf == zstdSkippable {
		if len(src) < 8 || uint64(binary.LittleEndian.Uint32(src[4:])) > uint64(len(src)-8) {
			return bad("skippable frame past the end")
		}
		n := 8 + int(binary.LittleEndian.Uint32(src[4:]))
		return zstdSpan{b: src[:n], fcs: -1, skip: true}, src[n:], nil
	}
	if binary.LittleEndian.Uint32(src) != zstdMagic {
		return bad("no frame magic")
	}
	fhd := src[4]
	single := fhd&0x20 != 0
	fcsLen := [4]int{0, 2, 4, 8}[fhd>>6]
	if single && fcsLen == 0 {
		fcsLen = 1
	}
	p := 5 + [4]int{0, 1, 2, 4}[fhd&3] // the dictionary ID
	if !single {
		p++ // the window descriptor
	}
	f = zstdSpan{hdr: p + fcsLen, fcs: -1}
	if len(src) < f.hdr {
		return bad("frame header past the end")
	}
	switch fcsLen {
	case 1:
		f.fcs = int(src[p])
	case 2:
		f.fcs = int(binary.LittleEndian.Uint16(src[p:])) + 256
	case 4:
		f.fcs = int(binary.LittleEndian.Uint32(src[p:]))
	case 8:
		f.fcs = int(min(binary.LittleEndian.Uint64(src[p:]), math.MaxInt64))
	}
	for p = f.hdr; ; {
		if len(src)-p < 3 {
			return bad("block header past the end")
		}
		bh := int(src[p]) | int(src[p+1])<<8 | int(src[p+2])<<16
		size, n := bh>>3, bh>>3
		p += 3
		switch bh >> 1 & 3 {
		case 0: // raw
			f.room, f.known = f.room+size, f.known+size
		case 1: // RLE: one byte, size times
			f.room, f.known, n = f.room+size, f.known+size, 1
		case 2: // compressed
			f.room += zstdMaxBlock
		default:
			return bad("reserved block type")
		}
		if size > zstdMaxBlock || len(src)-p < n {
			return bad("block of %d bytes, %d remain", size, len(src)-p)
		}
		if p += n; bh&1 != 0 {
			break
		}
	}
	if fhd&0x04 != 0 {
		p += 4 // the content checksum
	}
	if p > len(src) {
		return bad("checksum past the end")
	}
	f.b = src[:p]
	return f, src[p:], nil
}

// appendStripped appends f with the content size left out of its frame
// header. A single-segment frame's window was its content size; it gets a
// window descriptor of at least that (any is free for DecodeAll, whose
// output is the window).
func appendStripped(dst []byte, f zstdSpan) []byte {
	fhd := f.b[4]
	dst = append(dst, f.b[:4]...)
	dst = append(dst, fhd&0x07) // checksum and dictionary ID flags
	p := 5
	if fhd&0x20 == 0 {
		dst, p = append(dst, f.b[5]), 6
	} else {
		dst = append(dst, byte(bits.Len(uint(max(f.fcs, 1<<10)-1))-10)<<3)
	}
	dst = append(dst, f.b[p:p+[4]int{0, 1, 2, 4}[fhd&3]]...)
	return append(dst, f.b[f.hdr:]...)
}

// decompressZstd decodes src into a buffer whose capacity bounds the
// output: dst's array if it is large enough, else a new one; l is charged
// for it, and for a frame rewritten without its size, before either is
// used.
func decompressZstd(dst, src []byte, limit int, l *lease) ([]byte, error) {
	var room, known, fcsFrames int
	declared := 0 // the frames' content sizes together; -1 if one has none
	for rest := src; len(rest) > 0; {
		f, next, err := zstdNextFrame(rest)
		if err != nil {
			return nil, err
		}
		if f.fcs > f.room {
			return nil, fmt.Errorf("%w: zstd frame of %d bytes declares %d bytes of content; its blocks hold at most %d", ErrCorrupt, len(f.b), f.fcs, f.room)
		}
		room, known = room+f.room, known+f.known
		switch {
		case f.skip:
		case f.fcs < 0:
			declared = -1
		default:
			fcsFrames++
			if declared >= 0 {
				declared += f.fcs
			}
		}
		rest = next
	}
	if declared > limit || known > limit {
		return nil, fmt.Errorf("%w: zstd frames of at least %d bytes, limit %d", ErrTooLarge, max(declared, known), limit)
	}
	// Out of room at most, the output is too large if the limit is what
	// stopped it, else corrupt.
	most := min(limit, room)
	tooLarge := declared < 0 && limit < room
	if declared >= 0 {
		most = declared // the frames decode to exactly that, or are corrupt
	}
	size := min(most, 4*len(src)+bytes.MinRead)
	trusted := declared >= 0 && declared <= zstdTrustRatio*len(src)+zstdTrustSlack
	if trusted {
		size = declared
	}
	size = max(size, min(most, cap(dst)))
	strip := !trusted && fcsFrames > 0

	d := zstdReaders.Get().(*zstd.Decoder)
	defer zstdReaders.Put(d)
	var frame []byte // one rewritten frame at a time
	for {
		need := size
		if size < most || tooLarge {
			// The decoder checks the capacity after each block, so an
			// attempt short of room has it append one past the end,
			// regrowing the buffer (by a quarter, as append does).
			need += size + size/4 + zstdMaxBlock
		}
		if strip {
			need += len(src) // a rewritten frame is no longer than it was
		}
		if !l.grow(need) {
			dst, frame = nil, nil
			if err := l.wait(need); err != nil {
				return nil, err
			}
		}
		// The three-index slice keeps the output within size even when
		// dst's array is larger.
		out, err := decodeZstdFrames(d, src, sized(dst, size)[:0:size], strip, &frame)
		// Out of room, DecodeAll says ErrDecoderSizeExceeded, or, when a
		// block's sequences do not fit, only that they outgrow the block;
		// a failure within a block of the buffer's end is taken to be the
		// one, anywhere else it is corruption.
		switch {
		case err == nil:
			return out, nil
		case errors.Is(err, ErrCorrupt):
			return nil, err
		case !errors.Is(err, zstd.ErrDecoderSizeExceeded) && size-len(out) >= zstdMaxBlock:
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		case size >= most && tooLarge:
			return nil, fmt.Errorf("%w: zstd output over %d bytes (or corrupt: %v)", ErrTooLarge, limit, err)
		case size >= most:
			return nil, fmt.Errorf("%w: zstd: out of room at %d bytes, all that its frames declare or their blocks can make: %v", ErrCorrupt, size, err)
		}
		// Room for twice as much, and at least for a whole block past
		// what did decode, so the next failure there is corruption.
		size = min(most, max(2*size, len(out)+zstdMaxBlock))
	}
}

// decodeZstdFrames decodes src's frames one at a time, appending to out
// within its capacity, and checks that each that declares a content size
// has it. With strip, those are rewritten into *frame without their size.
func decodeZstdFrames(d *zstd.Decoder, src, out []byte, strip bool, frame *[]byte) ([]byte, error) {
	for rest := src; len(rest) > 0; {
		f, next, _ := zstdNextFrame(rest) // walked once already
		rest = next
		if f.skip {
			continue
		}
		in := f.b
		if strip && f.fcs >= 0 {
			*frame = appendStripped((*frame)[:0], f)
			in = *frame
		}
		start := len(out)
		var err error
		if out, err = d.DecodeAll(in, out); err != nil {
			return out, err
		}
		if f.fcs >= 0 && len(out)-start != f.fcs {
			return out, fmt.Errorf("%w: zstd frame declares %d bytes of content and holds %d", ErrCorrupt, f.fcs, len(out)-start)
		}
	}
	return out, nil
}
