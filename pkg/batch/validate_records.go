package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/pierrec/lz4/v4"
)

// Summary is what [ValidateRecords] learns from a batch's records: what
// the produce path needs and cannot take from the header, which the
// producer wrote and nothing checks against the records.
type Summary struct {
	Header Header
	// MinTimestamp and MaxTimestamp bound the records' timestamps as Kafka
	// reads them: firstTimestamp plus the record's delta, or, in a
	// LogAppendTime batch, maxTimestamp for every record. MinTimestamp
	// leaves out records without a timestamp (-1), which Kafka exempts
	// from message.timestamp.before.max.ms, and is math.MaxInt64 when no
	// record has one. MaxTimestamp starts at -1, as Kafka's does.
	MinTimestamp, MaxTimestamp int64
	// Keyed reports whether every record has a key, as a compacted topic
	// requires (a negative key length is a null key).
	Keyed bool
}

// noTimestamp is a record timestamp that says there is none (Kafka's
// RecordBatch.NO_TIMESTAMP).
const noTimestamp = -1

// ValidateRecords checks b as [Validate] does, then walks every record as
// Kafka's LogValidator does for a produced batch: each record's length, its
// fields filling exactly that length, key, value and header lengths inside
// it, a header count of at least zero and no null header keys, offset
// deltas exactly 0, 1, …, NumRecords-1 (what keeps consumers' offsets
// consecutive, since the batch is stored as sent), NumRecords records and
// no bytes after the last. Compressed records are decompressed to at most
// maxDecompressed bytes (ErrTooLarge past it): gzip and lz4 stream through
// a pooled buffer that needs to hold one record at a time, snappy and
// zstd, whose decoders want the whole output, decode into a pooled one.
//
// A malformed record is ErrInvalidRecord, as Kafka answers INVALID_RECORD
// for what its DefaultRecord and DefaultRecordBatch iterators throw
// (InvalidRecordException, since KIP-467); a records section that does not
// decompress is ErrCorrupt (CORRUPT_MESSAGE). An uncompressed batch is
// checked without allocating.
func ValidateRecords(b []byte, maxDecompressed int) (Summary, error) {
	h, err := Validate(b)
	if err != nil {
		return Summary{Header: h}, err
	}
	body := b[HeaderSize:]
	if h.Codec() == None {
		r := recordReader{buf: body}
		return r.walk(h)
	}
	z := inflaters.Get().(*inflater)
	defer z.release()
	r, err := z.open(h.Codec(), body, max(maxDecompressed, 0))
	if err != nil {
		return Summary{Header: h}, fmt.Errorf("%s: %w", h.Codec(), err)
	}
	s, err := r.walk(h)
	if err != nil && !errors.Is(err, ErrInvalidRecord) {
		err = fmt.Errorf("%s: %w", h.Codec(), err)
	}
	return s, err
}

var errNoProgress = errors.New("decompressor returned no bytes and no error")

// recordReader hands out the records of a records section one at a time,
// each as one slice: from buf when the section is held whole, else read
// from src into chunk, which grows for a record longer than it. A failure
// sticks in err.
type recordReader struct {
	buf   []byte            // bytes in hand, unread
	src   *io.LimitedReader // the rest of a stream; nil if buf is all there is
	chunk []byte            // where bytes from src land
	eof   bool              // src is exhausted
	err   error
}

// fill tries to have at least n bytes in hand, reading from src as needed;
// false if the section ends first or src fails. A chunk too small for n
// doubles only as bytes arrive, so a false record length costs no more
// memory than the stream really yields, which its bound caps.
func (r *recordReader) fill(n int) bool {
	if len(r.buf) >= n {
		return true
	}
	if r.src == nil || r.eof || r.err != nil {
		return false
	}
	k := copy(r.chunk, r.buf)
	for idle := 0; k < n && !r.eof; {
		if k == len(r.chunk) {
			r.chunk = append(r.chunk, make([]byte, max(len(r.chunk), inflateChunk))...)
		}
		m, err := r.src.Read(r.chunk[k:])
		k += m
		switch {
		case r.src.N <= 0:
			// src.N started one past the bound: the output is over it.
			r.err = fmt.Errorf("%w: decompressed records over the bound", ErrTooLarge)
		case err == io.EOF:
			r.eof = true
		case err != nil:
			r.err = fmt.Errorf("%w: decompressing: %v", ErrCorrupt, err)
		case m == 0:
			if idle++; idle > 100 {
				r.err = fmt.Errorf("%w: %v", ErrCorrupt, errNoProgress)
			}
		}
		if r.err != nil {
			r.buf = nil
			return false
		}
	}
	r.buf = r.chunk[:k]
	return k >= n
}

// next returns the next record's bytes after its length. An error from
// src is left in r.err.
func (r *recordReader) next() ([]byte, error) {
	if len(r.buf) < 5 {
		r.fill(5)
	}
	n, k := varintAt(r.buf, 0)
	if k < 0 || n < 0 {
		return nil, errLength
	}
	r.buf = r.buf[k:]
	if len(r.buf) < int(n) && !r.fill(int(n)) {
		return nil, errShort
	}
	rec := r.buf[:n:n]
	r.buf = r.buf[n:]
	return rec, nil
}

// walk checks h.NumRecords records and then the end of the section.
func (r *recordReader) walk(h Header) (Summary, error) {
	s := Summary{Header: h, MinTimestamp: math.MaxInt64, MaxTimestamp: noTimestamp, Keyed: true}
	logAppend := h.TimestampType() == 1
	for i := range h.NumRecords {
		var tsDelta int64
		var keyed bool
		rec, err := r.next()
		if err == nil {
			tsDelta, keyed, err = scanRecord(rec, i)
		}
		if r.err != nil {
			return s, r.err
		}
		if err != nil {
			return s, fmt.Errorf("%w: record %d of %d: %v", ErrInvalidRecord, i, h.NumRecords, err)
		}
		s.Keyed = s.Keyed && keyed
		ts := h.FirstTimestamp + tsDelta
		if logAppend {
			ts = h.MaxTimestamp
		}
		s.MaxTimestamp = max(s.MaxTimestamp, ts)
		if ts != noTimestamp {
			s.MinTimestamp = min(s.MinTimestamp, ts)
		}
	}
	if r.fill(1) {
		return s, fmt.Errorf("%w: %v", ErrInvalidRecord, errTrailing)
	}
	// A stream that fails only at its end (a gzip or lz4 checksum) fails
	// here.
	return s, r.err
}

// scanRecord checks the fields of record i, rec being the bytes after its
// length, which they must fill exactly, and returns its timestamp delta
// and whether it has a key. Positions go negative once a field is bad, and
// stay so.
func scanRecord(rec []byte, i int32) (tsDelta int64, keyed bool, err error) {
	if len(rec) < 1 {
		return 0, false, errFields
	}
	p := 1 // attributes: unused by v2 records
	tsDelta, p = varlongAt(rec, p)
	delta, p := varintAt(rec, p)
	if p >= 0 && delta != i {
		return 0, false, fmt.Errorf("%w: %d, want %d", errOffsetDelta, delta, i)
	}
	n, p := varintAt(rec, p)
	keyed = n >= 0
	p = skipAt(rec, p, n)
	n, p = varintAt(rec, p)
	p = skipAt(rec, p, n)
	nh, p := varintAt(rec, p)
	if p >= 0 && (nh < 0 || int(nh) > (len(rec)-p)/2) { // a header takes at least 2 bytes
		return 0, false, fmt.Errorf("%w: %d", errHeaderCount, nh)
	}
	for range nh {
		if n, p = varintAt(rec, p); n < 0 && p >= 0 {
			return 0, false, errNullHeader
		}
		p = skipAt(rec, p, n)
		n, p = varintAt(rec, p)
		p = skipAt(rec, p, n)
		if p < 0 {
			break
		}
	}
	switch {
	case p < 0:
		return 0, false, errFields
	case p != len(rec):
		return 0, false, fmt.Errorf("%w: %d", errLong, len(rec)-p)
	}
	return tsDelta, keyed, nil
}

// varintAt reads a zigzag varint that fits an int32 at b[p:], returning
// the position after it, or -1 if there is none (or p is already -1). It
// accepts what readVarint accepts, decoding in place: a fifth byte of 0x10
// or more would overflow 32 bits.
func varintAt(b []byte, p int) (int32, int) {
	if uint(p) < uint(len(b)) && b[p] < 0x80 { // one byte: most fields of most records
		return int32(b[p]>>1) ^ -int32(b[p]&1), p + 1
	}
	if p < 0 || len(b)-p < 5 {
		if p < 0 || p > len(b) {
			return 0, -1
		}
		v, n := readVarint(b[p:])
		if n <= 0 {
			return 0, -1
		}
		return v, p + n
	}
	b = b[p : p+5]
	u := uint32(b[0]&0x7f) | uint32(b[1]&0x7f)<<7
	switch {
	case b[1] < 0x80:
		p += 2
	case b[2] < 0x80:
		u, p = u|uint32(b[2])<<14, p+3
	case b[3] < 0x80:
		u, p = u|uint32(b[2]&0x7f)<<14|uint32(b[3])<<21, p+4
	case b[4] < 0x10:
		u, p = u|uint32(b[2]&0x7f)<<14|uint32(b[3]&0x7f)<<21|uint32(b[4])<<28, p+5
	default:
		return 0, -1
	}
	return int32(u>>1) ^ -int32(u&1), p
}

func varlongAt(b []byte, p int) (int64, int) {
	if uint(p) < uint(len(b)) && b[p] < 0x80 {
		return int64(b[p]>>1) ^ -int64(b[p]&1), p + 1
	}
	if p < 0 || p > len(b) {
		return 0, -1
	}
	v, n := binary.Varint(b[p:])
	if n <= 0 {
		return 0, -1
	}
	return v, p + n
}

// skipAt passes over a field of n bytes at b[p:]; a negative n is a null
// field, of no bytes.
func skipAt(b []byte, p int, n int32) int {
	if p < 0 || n < 0 {
		return p
	}
	if int(n) > len(b)-p {
		return -1
	}
	return p + int(n)
}

// inflateChunk is how much of a streamed records section is in hand at
// once, unless a record is longer.
const inflateChunk = 32 << 10

// maxPooledOutput bounds the decompressed sections kept for reuse, so that
// a rare huge batch does not pin its buffer.
const maxPooledOutput = 8 << 20

// inflater decompresses one records section at a time. Pooled with its
// decoders and buffers, it lets a compressed batch be validated without
// allocating a decoder or, mostly, its output.
type inflater struct {
	rd    recordReader
	src   bytes.Reader
	lim   io.LimitedReader
	chunk []byte
	out   []byte // the section, for the codecs decoded whole
	gzip  *gzip.Reader
	lz4   *lz4.Reader
}

var inflaters = sync.Pool{New: func() any { return &inflater{chunk: make([]byte, inflateChunk)} }}

// open returns a reader of the decompressed records of body.
func (z *inflater) open(c Codec, body []byte, limit int) (*recordReader, error) {
	z.src.Reset(body)
	var stream io.Reader
	switch c {
	case Gzip:
		if z.gzip == nil {
			z.gzip = new(gzip.Reader)
		}
		if err := z.gzip.Reset(&z.src); err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		stream = z.gzip
	case LZ4:
		if z.lz4 == nil {
			z.lz4 = lz4.NewReader(nil)
		}
		z.lz4.Reset(&z.src)
		stream = z.lz4
	case Snappy, Zstd:
		var out []byte
		var err error
		if c == Snappy {
			out, err = decompressSnappy(z.out, body, limit)
		} else {
			out, err = decompressZstd(z.out, body, limit)
		}
		if err != nil {
			return nil, err
		}
		if cap(out) <= maxPooledOutput {
			z.out = out[:0]
		}
		z.rd = recordReader{buf: out}
		return &z.rd, nil
	default:
		return nil, fmt.Errorf("%w: codec id %d", ErrUnsupportedCodec, int8(c))
	}
	z.lim = io.LimitedReader{R: stream, N: int64(limit) + 1}
	z.rd = recordReader{src: &z.lim, chunk: z.chunk}
	return &z.rd, nil
}

// release drops every reference to the batch and returns z to the pool.
func (z *inflater) release() {
	if c := z.rd.chunk; len(c) > len(z.chunk) && len(c) <= maxPooledOutput {
		z.chunk = c // grown for a long record: likely needed again
	}
	z.src.Reset(nil)
	if z.lz4 != nil {
		z.lz4.Reset(nil) // hands its block buffer back to lz4's pool
	}
	z.rd, z.lim = recordReader{}, io.LimitedReader{}
	inflaters.Put(z)
}
