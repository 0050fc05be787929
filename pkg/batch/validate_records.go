package batch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
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

	size    int // of the records section, decompressed
	headers int // of all the records
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
// Those buffers are charged to budget, shared with the caller's other
// validations (nil: no budget), before they are allocated or reused;
// waiting for it ends with ctx.
//
// A malformed record is ErrInvalidRecord, as Kafka answers INVALID_RECORD
// for what its DefaultRecord and DefaultRecordBatch iterators throw
// (InvalidRecordException, since KIP-467); a records section that does not
// decompress is ErrCorrupt (CORRUPT_MESSAGE). An uncompressed batch is
// checked without allocating.
func ValidateRecords(ctx context.Context, b []byte, maxDecompressed int, budget *Budget) (Summary, error) {
	h, err := Validate(b)
	if err != nil {
		return Summary{Header: h}, err
	}
	body := b[HeaderSize:]
	if h.Codec() == None {
		r := recordReader{buf: body, size: len(body)}
		return r.walk(h)
	}
	z := inflaters.Get().(*inflater)
	defer z.release()
	z.lease = lease{b: budget, ctx: ctx}
	for chunk := 0; ; {
		r, err := z.open(h.Codec(), body, max(maxDecompressed, 0), chunk)
		if err != nil {
			return Summary{Header: h}, fmt.Errorf("%s: %w", h.Codec(), err)
		}
		s, err := r.walk(h)
		if err == errRestart {
			chunk = r.want
			z.restart()
			continue
		}
		if err != nil && !errors.Is(err, ErrInvalidRecord) {
			err = fmt.Errorf("%s: %w", h.Codec(), err)
		}
		return s, err
	}
}

var (
	errNoProgress = errors.New("decompressor returned no bytes and no error")
	// errRestart: a stream's chunk must grow for a long record and the
	// budget cannot give the room at once. The reader, holding bytes of
	// the stream, may not wait; the caller gives back everything, waits
	// for room for the record (want) and starts the stream again.
	errRestart = errors.New("out of decompression budget")
)

// recordReader hands out the records of a records section one at a time,
// each as one slice: from buf when the section is held whole, else read
// from src into chunk, which grows for a record longer than it, charged to
// lease with the fixed bytes the stream's decoder holds. A failure sticks
// in err.
type recordReader struct {
	buf   []byte            // bytes in hand, unread
	src   *io.LimitedReader // the rest of a stream; nil if buf is all there is
	chunk []byte            // where bytes from src land
	eof   bool              // src is exhausted
	err   error
	size  int // bytes of the section so far
	lease *lease
	fixed int
	want  int // the chunk that errRestart asks for
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
			// The old chunk and the new one, while append copies.
			grown := len(r.chunk) + max(len(r.chunk), inflateChunk)
			if !r.lease.grow(r.fixed + len(r.chunk) + grown) {
				r.err, r.want, r.buf = errRestart, grown, nil
				return false
			}
			r.chunk = append(r.chunk, make([]byte, grown-len(r.chunk))...)
			r.lease.grow(r.fixed + grown)
		}
		m, err := r.src.Read(r.chunk[k:])
		k, r.size = k+m, r.size+m
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
		var headers int32
		rec, err := r.next()
		if err == nil {
			tsDelta, keyed, headers, err = scanRecord(rec, i)
		}
		if r.err != nil {
			return s, r.err
		}
		if err != nil {
			return s, fmt.Errorf("%w: record %d of %d: %v", ErrInvalidRecord, i, h.NumRecords, err)
		}
		s.Keyed = s.Keyed && keyed
		s.headers += int(headers)
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
	s.size = r.size
	return s, r.err
}

// scanRecord checks the fields of record i, rec being the bytes after its
// length, which they must fill exactly, and returns its timestamp delta,
// whether it has a key and its header count. Positions go negative once a
// field is bad, and stay so.
func scanRecord(rec []byte, i int32) (tsDelta int64, keyed bool, nh int32, err error) {
	if len(rec) < 1 {
		return 0, false, 0, errFields
	}
	p := 1 // attributes: unused by v2 records
	tsDelta, p = varlongAt(rec, p)
	delta, p := varintAt(rec, p)
	if p >= 0 && delta != i {
		return 0, false, 0, fmt.Errorf("%w: %d, want %d", errOffsetDelta, delta, i)
	}
	n, p := varintAt(rec, p)
	keyed = n >= 0
	p = skipAt(rec, p, n)
	n, p = varintAt(rec, p)
	p = skipAt(rec, p, n)
	nh, p = varintAt(rec, p)
	if p >= 0 && (nh < 0 || int(nh) > (len(rec)-p)/2) { // a header takes at least 2 bytes
		return 0, false, 0, fmt.Errorf("%w: %d", errHeaderCount, nh)
	}
	for range nh {
		if n, p = varintAt(rec, p); n < 0 && p >= 0 {
			return 0, false, 0, errNullHeader
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
		return 0, false, 0, errFields
	case p != len(rec):
		return 0, false, 0, fmt.Errorf("%w: %d", errLong, len(rec)-p)
	}
	return tsDelta, keyed, nh, nil
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
