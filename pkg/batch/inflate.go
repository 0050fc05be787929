package batch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/pierrec/lz4/v4"
)

// inflateChunk is how much of a streamed records section is in hand at
// once, unless a record is longer.
const inflateChunk = 32 << 10

// maxPooledOutput bounds the decompressed sections kept for reuse, so that
// a rare huge batch does not pin its buffer.
const maxPooledOutput = 8 << 20

// inflater decompresses one records section at a time. Pooled with its
// decoders and buffers, it lets a compressed batch be validated without
// allocating a decoder or, mostly, its output. Its lease holds, of the
// caller's budget, the buffers in use: the section for the codecs decoded
// whole, the chunk and lz4's block buffers for the streams.
type inflater struct {
	rd    recordReader
	src   bytes.Reader
	lim   io.LimitedReader
	chunk []byte
	out   []byte // the section, for the codecs decoded whole
	gzip  *gzip.Reader
	lz4   *lz4.Reader
	lease lease
}

var inflaters = sync.Pool{New: func() any { return &inflater{chunk: make([]byte, inflateChunk)} }}

// open returns a reader of the decompressed records of body. A stream's
// chunk starts at chunk bytes, or inflateChunk, or the pooled chunk if it
// is larger.
func (z *inflater) open(c Codec, body []byte, limit, chunk int) (*recordReader, error) {
	z.src.Reset(body)
	var stream io.Reader
	fixed := 0 // what the stream's decoder holds besides the chunk
	switch c {
	case Gzip, LZ4:
		if c == LZ4 {
			fixed = lz4Buffers(body)
		}
		// The pooled chunk costs all it holds; a waiter drops it and
		// waits only for what it needs.
		chunk = max(chunk, inflateChunk)
		if !z.lease.grow(fixed + max(chunk, len(z.chunk))) {
			z.chunk = nil
			if err := z.lease.wait(fixed + chunk); err != nil {
				return nil, err
			}
		}
		if len(z.chunk) < chunk {
			z.chunk = make([]byte, chunk)
		}
		if c == LZ4 {
			if z.lz4 == nil {
				z.lz4 = lz4.NewReader(nil)
			}
			z.lz4.Reset(&z.src)
			stream = z.lz4
			break
		}
		if z.gzip == nil {
			z.gzip = new(gzip.Reader)
		}
		if err := z.gzip.Reset(&z.src); err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		stream = z.gzip
	case Snappy, Zstd:
		dst := z.out
		z.out = nil // the decoder drops it if it must wait for the budget
		var out []byte
		var err error
		if c == Snappy {
			out, err = decompressSnappy(dst, body, limit, &z.lease)
		} else {
			out, err = decompressZstd(dst, body, limit, &z.lease)
		}
		if err != nil {
			return nil, err
		}
		if cap(out) <= maxPooledOutput {
			z.out = out[:0]
		}
		z.rd = recordReader{buf: out, size: len(out)}
		return &z.rd, nil
	default:
		return nil, fmt.Errorf("%w: codec id %d", ErrUnsupportedCodec, int8(c))
	}
	z.lim = io.LimitedReader{R: stream, N: int64(limit) + 1}
	z.rd = recordReader{src: &z.lim, chunk: z.chunk, lease: &z.lease, fixed: fixed}
	return &z.rd, nil
}

// restart drops the stream and its buffers, so that nothing is pinned while
// the caller waits for room for a longer record and opens it again.
func (z *inflater) restart() {
	z.rd = recordReader{}
	if z.lz4 != nil {
		z.lz4.Reset(nil) // hands its block buffers back to lz4's pools
	}
}

// release drops every reference to the batch, gives back what the lease
// holds and returns z to the pool.
func (z *inflater) release() {
	if c := z.rd.chunk; len(c) > len(z.chunk) && len(c) <= maxPooledOutput {
		z.chunk = c // grown for a long record: likely needed again
	}
	z.src.Reset(nil)
	if z.lz4 != nil {
		z.lz4.Reset(nil) // hands its block buffers back to lz4's pools
	}
	z.lease.release()
	z.rd, z.lim, z.lease = recordReader{}, io.LimitedReader{}, lease{}
	inflaters.Put(z)
}

// lz4Buffers is what pierrec/lz4's reader holds to read src: two buffers
// (a block as sent, and decoded) of the largest block size its frames
// declare, which a frame header may set to 4 MiB whatever follows; 8 MiB
// blocks for a legacy frame. Bytes that are no frame, where the reader
// fails, add nothing.
func lz4Buffers(src []byte) int {
	const (
		frameMagic  = 0x184d2204
		legacyMagic = 0x184c2102
		legacy      = 8<<20 + 8<<20 + 8<<20/255 + 16 // lz4block.Block8Mb and its bound
	)
	most := 0
	for len(src) >= 8 {
		magic := binary.LittleEndian.Uint32(src)
		switch {
		case magic == legacyMagic:
			return max(most, legacy)
		case magic&^0xf == zstdSkippable: // lz4 shares zstd's skippable frames
			n := uint64(binary.LittleEndian.Uint32(src[4:]))
			if n > uint64(len(src)-8) {
				return most
			}
			src = src[8+n:]
			continue
		case magic != frameMagic:
			return most
		}
		flg, id := src[4], int(src[5]>>4&7)
		if id < 4 {
			return most
		}
		most = max(most, 2<<(8+2*id)) // ids 4-7: 64 KiB to 4 MiB
		p := 7 + 8*int(flg>>3&1) + 4*int(flg&1)
		for p+4 <= len(src) {
			n := int(binary.LittleEndian.Uint32(src[p:]) &^ (1 << 31))
			if p += 4; n == 0 {
				break
			}
			p += n + 4*int(flg>>4&1)
		}
		p += 4 * int(flg>>2&1)
		src = src[min(p, len(src)):]
	}
	return most
}
