package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Decompression is bounded by the caller's limit for every codec, and
// spends memory in proportion to what the input really decodes to, never
// to what a header claims: gzip and lz4 stream through an io.LimitedReader;
// snappy's block headers declare the decoded length, which is checked
// against the limit and against the most that many compressed bytes can
// make before anything is allocated; zstd is decoded as zstd.go says.
// Decoders are pooled so that a decompression allocates only its output.
// Validation also charges its buffers to a [Budget] shared by every
// connection (budget.go).

// zstdMaxWindow is the largest zstd window accepted: Kafka's, zstd-jni's
// default windowLog limit of 27. Java producers declare 2 MiB at the default
// level and more at high levels even for small batches.
const zstdMaxWindow = 1 << 27

var (
	gzipReaders = sync.Pool{New: func() any { return new(gzip.Reader) }}
	lz4Readers  = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
	zstdReaders = sync.Pool{New: func() any {
		// DecodeAll decodes into the output buffer, which doubles as the
		// window, so a frame's declared window costs nothing (a streaming
		// decoder allocates it up front: 128 MiB for a 10-byte frame).
		// With the cap limit, DecodeAll stops once the output outgrows
		// cap(dst), checked after every block of at most 128 KiB.
		// Concurrency 1 starts no goroutines, so a dropped decoder needs
		// no Close.
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecodeAllCapLimit(true),
		)
		if err != nil {
			panic(err) // static options
		}
		return d
	}}
)

// decompress returns the records bytes of a batch compressed with c,
// refusing output above limit bytes.
func decompress(c Codec, src []byte, limit int) ([]byte, error) {
	switch c {
	case None:
		return src, nil
	case Gzip:
		zr := gzipReaders.Get().(*gzip.Reader)
		defer gzipReaders.Put(zr)
		if err := zr.Reset(bytes.NewReader(src)); err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		out, err := readBounded(zr, limit, gzipSizeHint(src))
		zr.Reset(bytes.NewReader(nil)) // drop the reference to src
		return out, err
	case Snappy:
		return decompressSnappy(nil, src, limit, nil)
	case LZ4:
		zr := lz4Readers.Get().(*lz4.Reader)
		defer lz4Readers.Put(zr)
		zr.Reset(bytes.NewReader(src))
		out, err := readBounded(zr, limit, 4*len(src))
		zr.Reset(nil)
		return out, err
	case Zstd:
		return decompressZstd(nil, src, limit, nil)
	}
	return nil, fmt.Errorf("%w: codec id %d", ErrUnsupportedCodec, int8(c))
}

// sized returns dst resized to n bytes, reusing its array if it is large
// enough.
func sized(dst []byte, n int) []byte {
	if cap(dst) >= n {
		return dst[:n]
	}
	return make([]byte, n)
}

// readBounded reads r to its end, failing with ErrTooLarge past limit bytes.
// hint is the expected output size, a guess that saves regrowing the buffer.
func readBounded(r io.Reader, limit, hint int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(min(limit, hint) + bytes.MinRead) // ReadFrom wants MinRead spare
	n, err := buf.ReadFrom(&io.LimitedReader{R: r, N: int64(limit) + 1})
	if err != nil {
		return nil, fmt.Errorf("%w: decompressing: %v", ErrCorrupt, err)
	}
	if n > int64(limit) {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return buf.Bytes(), nil
}

// gzipSizeHint is the decompressed size a gzip stream's trailer records
// (mod 2^32, of its last member), or a guess from the compressed size. The
// trailer is a claim: no more is believed than deflate can make of src,
// 1032 bytes per byte (a 258-byte match in two bits).
func gzipSizeHint(src []byte) int {
	if len(src) >= 18 {
		return min(int(binary.LittleEndian.Uint32(src[len(src)-4:])), 1032*len(src))
	}
	return 4 * len(src)
}

// xerialMagic opens the framing that the Java snappy library's
// SnappyOutputStream writes, and so the Java producer: the magic, a 4-byte
// version and a 4-byte minimum compatible version (16 bytes), then chunks,
// each a 4-byte big-endian length and a raw snappy block. librdkafka and
// franz-go may send a single raw snappy block instead.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16

var errXerial = errors.New("malformed xerial snappy framing")

// snappyMaxDecoded is the most a snappy block of n bytes after its length
// preamble can decode to. A literal makes fewer bytes than it takes; the
// densest element is a copy with a 2-byte offset, 3 bytes for up to 64
// (a 1-byte-offset copy makes at most 11 from 2, a 4-byte-offset one 64
// from 5). So no block makes more than 64/3 (21.3) bytes per byte: a
// block of zeros from any snappy encoder comes within a few bytes of it.
// s2's repeat copies, which s2.Decode also reads, are no snappy and may
// claim more; those are refused.
func snappyMaxDecoded(n int) int { return 64 * n / 3 }

// snappyDecodedLen is the decoded length block declares, if the block can
// make that much.
func snappyDecodedLen(block []byte) (int, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return 0, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	_, k := binary.Uvarint(block) // its length, as DecodedLen read it
	if most := snappyMaxDecoded(len(block) - k); n > most {
		return 0, fmt.Errorf("%w: snappy block of %d bytes declares %d decoded, more than the %d it can make", ErrCorrupt, len(block), n, most)
	}
	return n, nil
}

// decompressSnappy decodes src into dst's array if it is large enough,
// charging l for the output before it is allocated.
func decompressSnappy(dst, src []byte, limit int, l *lease) ([]byte, error) {
	if len(src) >= xerialHeaderSize && bytes.HasPrefix(src, xerialMagic) {
		return decompressXerial(dst, src[xerialHeaderSize:], limit, l)
	}
	n, err := snappyDecodedLen(src)
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%w: snappy block of %d bytes, limit %d", ErrTooLarge, n, limit)
	}
	if dst, err = charge(l, dst, n); err != nil {
		return nil, err
	}
	out, err := s2.Decode(sized(dst, n), src)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
	}
	return out, nil
}

// decompressXerial decodes the chunks after the xerial header. It first
// walks the chunk lengths and sums the decoded lengths the blocks declare,
// so that the bounds are checked and the output allocated once.
func decompressXerial(dst, src []byte, limit int, l *lease) ([]byte, error) {
	total := 0
	for rem := src; len(rem) > 0; {
		block, next, err := xerialChunk(rem)
		if err != nil {
			return nil, err
		}
		n, err := snappyDecodedLen(block)
		if err != nil {
			return nil, err
		}
		if total += n; total > limit {
			return nil, fmt.Errorf("%w: xerial snappy over %d bytes", ErrTooLarge, limit)
		}
		rem = next
	}
	dst, err := charge(l, dst, total)
	if err != nil {
		return nil, err
	}
	out := sized(dst, total)
	at := 0
	for rem := src; len(rem) > 0; {
		block, next, _ := xerialChunk(rem)
		n, _ := s2.DecodedLen(block)
		if _, err := s2.Decode(out[at:at+n:at+n], block); err != nil {
			return nil, fmt.Errorf("%w: snappy: %v", ErrCorrupt, err)
		}
		at += n
		rem = next
	}
	return out, nil
}

// charge makes l hold n bytes for a buffer about to be taken from dst or
// allocated, and returns dst, or nil if l had to wait: a waiter holds no
// buffer.
func charge(l *lease, dst []byte, n int) ([]byte, error) {
	if l.grow(n) {
		return dst, nil
	}
	return nil, l.wait(n)
}

func xerialChunk(b []byte) (block, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("%w: %v: %d-byte chunk header", ErrCorrupt, errXerial, len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, fmt.Errorf("%w: %v: chunk of %d bytes, %d remain", ErrCorrupt, errXerial, n, len(b)-4)
	}
	return b[4 : 4+n], b[4+n:], nil
}

// zstdEncoder is shared: EncodeAll is safe for concurrent use. A 64 KiB
// window, as franz-go uses, keeps encoder memory small; batches are
// rarely much larger.
var zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(64<<10),
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		panic(err) // static options
	}
	return e
})

// compress appends src compressed with c to dst. Snappy is written as one
// raw block, which every Kafka client reads (the Java one falls back to a
// raw block when the xerial magic is absent); lz4 as an LZ4 frame with
// 64 KiB independent blocks, as the Java producer writes it.
func compress(dst, src []byte, c Codec) ([]byte, error) {
	switch c {
	case None:
		return append(dst, src...), nil
	case Gzip:
		buf := bytes.NewBuffer(dst)
		w := gzip.NewWriter(buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case Snappy:
		return append(dst, s2.EncodeSnappy(nil, src)...), nil
	case LZ4:
		buf := bytes.NewBuffer(dst)
		w := lz4.NewWriter(buf)
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
			return nil, err
		}
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case Zstd:
		return zstdEncoder().EncodeAll(src, dst), nil
	}
	return nil, fmt.Errorf("%w: codec id %d", ErrUnsupportedCodec, int8(c))
}
