package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// A record inside a v2 batch, after decompression. Integers marked varint
// are zigzag varints (as encoding/binary's Varint), at most 5 bytes for an
// int32 and 10 for an int64.
//
//	length          varint  bytes that follow, to the record's end
//	attributes      int8    unused, 0
//	timestampDelta  varlong from the batch's firstTimestamp
//	offsetDelta     varint  from the batch's baseOffset
//	keyLength       varint  -1 for a null key
//	key             bytes
//	valueLength     varint  -1 for a null value
//	value           bytes
//	headerCount     varint
//	headers         per header: keyLength varint (never null), key,
//	                valueLength varint (-1 for null), value
//
// Kafka treats any negative key or value length as null; so does Records.
//
// These are hand-written rather than kmsg.Record's ReadFrom/AppendTo:
// ReadFrom does not report how much of a record it consumed, so it cannot
// enforce Kafka's rule that a record's fields fill exactly its declared
// length, nor reject negative header counts; and going through it would
// copy every header into a second type. The tests cross-check both
// directions against kmsg.

// Record is one decoded record.
type Record struct {
	Attributes     int8
	TimestampDelta int64 // from the batch's FirstTimestamp
	OffsetDelta    int32 // from the batch's BaseOffset
	Key            []byte
	Value          []byte // nil for a null value (a tombstone)
	Headers        []RecordHeader
}

// RecordHeader is one record header. The key is never null.
type RecordHeader struct {
	Key   string
	Value []byte // nil for null
}

// minRecordSize is the smallest encoded record: a one-byte length, then
// attributes, timestamp delta, offset delta, key length, value length and
// header count of one byte each.
const minRecordSize = 7

// Records decodes the records of one batch. The batch must pass the
// framing, magic, CRC and codec checks of [Validate] (not its count rule,
// so batches thinned by compaction decode too), and its records must fill
// the records section exactly. Compressed records may decompress to at most
// maxDecompressed bytes (ErrTooLarge past it).
//
// Keys, values and header values alias b for an uncompressed batch and a
// fresh decompression buffer otherwise. The record slice costs about 100
// bytes per record, and a record takes at least 7 bytes, so the memory a
// call can use is bounded by a small multiple of len(b) or maxDecompressed.
func Records(b []byte, maxDecompressed int) ([]Record, error) {
	h, err := check(b)
	if err != nil {
		return nil, err
	}
	maxDecompressed = max(maxDecompressed, 0)
	body := b[HeaderSize:]
	if h.NumRecords == 0 && len(body) == 0 {
		return nil, nil // an empty batch, as compaction leaves behind
	}
	data, err := decompress(h.Codec(), body, maxDecompressed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.Codec(), err)
	}
	return decodeRecords(data, h.NumRecords)
}

// RecodeMemory is about the most that decoding s's records with [Records]
// and encoding them again with [Build] allocate together: the records
// section decompressed without knowing its size (up to 5 times it, by
// zstd's doubling), a Record per record and a RecordHeader per header with
// its key, the section encoded again and compressed into a growing buffer
// (up to 3 times it), and the largest encoder's state (a gzip writer's,
// over 1 MiB).
func (s Summary) RecodeMemory() int64 {
	const encoder = 2 << 20
	perRecord := int64(unsafe.Sizeof(Record{}) + unsafe.Sizeof(0)) // and Build's size of it
	perHeader := int64(unsafe.Sizeof(RecordHeader{}) + 16)         // and its key, if short
	return 8*int64(s.size) + int64(s.Header.NumRecords)*perRecord + int64(s.headers)*perHeader + encoder
}

func decodeRecords(data []byte, count int32) ([]Record, error) {
	if count < 0 || int64(count) > int64(len(data)/minRecordSize) {
		return nil, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrInvalidRecord, count, len(data))
	}
	recs := make([]Record, count)
	for i := range recs {
		length, n := readVarint(data)
		if n <= 0 || length < 0 || int(length) > len(data)-n {
			return nil, fmt.Errorf("%w: record %d: bad length in %d remaining bytes", ErrInvalidRecord, i, len(data))
		}
		if err := decodeRecord(data[n:n+int(length)], &recs[i]); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrInvalidRecord, i, err)
		}
		data = data[n+int(length):]
	}
	if len(data) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last of %d records", ErrInvalidRecord, len(data), count)
	}
	return recs, nil
}

// Why a record is malformed, for Records and ValidateRecords.
var (
	errShort       = errors.New("record ends early")
	errLong        = errors.New("bytes left over after the record's fields")
	errVarint      = errors.New("malformed varint")
	errHeaderCount = errors.New("bad header count")
	errNullHeader  = errors.New("null header key")
	errLength      = errors.New("bad record length")
	errOffsetDelta = errors.New("offset delta out of sequence")
	errFields      = errors.New("malformed fields, or fields past the record's end")
	errTrailing    = errors.New("bytes after the last record")
)

// decodeRecord decodes the fields of one record from body, the bytes after
// its length, which they must fill exactly.
func decodeRecord(body []byte, r *Record) error {
	c := cursor{b: body}
	r.Attributes = int8(c.byte())
	r.TimestampDelta = c.varlong()
	r.OffsetDelta = c.varint()
	r.Key = c.bytes()
	r.Value = c.bytes()
	nh := c.varint()
	if c.err != nil {
		return c.err
	}
	if nh < 0 || int(nh) > len(c.b)/2 { // a header takes at least 2 bytes
		return fmt.Errorf("%w: %d in %d bytes", errHeaderCount, nh, len(c.b))
	}
	if nh > 0 {
		r.Headers = make([]RecordHeader, nh)
		for i := range r.Headers {
			kl := c.varint()
			if c.err == nil && kl < 0 {
				return errNullHeader
			}
			r.Headers[i].Key = string(c.span(int(kl)))
			r.Headers[i].Value = c.bytes()
		}
	}
	if c.err != nil {
		return c.err
	}
	if len(c.b) > 0 {
		return fmt.Errorf("%w: %d", errLong, len(c.b))
	}
	return nil
}

// cursor reads record fields, remembering the first error; after one, every
// read returns zero values.
type cursor struct {
	b   []byte
	err error
}

func (c *cursor) fail(err error) {
	if c.err == nil {
		c.err = err
	}
	c.b = nil
}

func (c *cursor) byte() byte {
	if len(c.b) < 1 {
		c.fail(errShort)
		return 0
	}
	v := c.b[0]
	c.b = c.b[1:]
	return v
}

func (c *cursor) varint() int32 {
	v, n := readVarint(c.b)
	if n <= 0 {
		c.fail(errVarint)
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *cursor) varlong() int64 {
	v, n := binary.Varint(c.b)
	if n <= 0 {
		c.fail(errVarint)
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *cursor) span(n int) []byte {
	if n < 0 || n > len(c.b) {
		c.fail(errShort)
		return nil
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v
}

// bytes reads a varint length and that many bytes; a negative length is
// null.
func (c *cursor) bytes() []byte {
	n := c.varint()
	if n < 0 || c.err != nil {
		return nil
	}
	return c.span(int(n))
}

// readVarint reads a zigzag varint that must fit an int32, returning n <= 0
// if b does not start with one.
func readVarint(b []byte) (int32, int) {
	v, n := binary.Varint(b)
	if n <= 0 || n > 5 || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, -1
	}
	return int32(v), n
}

// varintSize is the encoded size of v as a zigzag varint.
func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

func bytesSize(b []byte) int {
	if b == nil {
		return 1
	}
	return varintSize(int64(len(b))) + len(b)
}

// recordSize is the size of r's fields, after its length.
func recordSize(r *Record) int {
	n := 1 + varintSize(r.TimestampDelta) + varintSize(int64(r.OffsetDelta)) +
		bytesSize(r.Key) + bytesSize(r.Value) + varintSize(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		n += varintSize(int64(len(h.Key))) + len(h.Key) + bytesSize(h.Value)
	}
	return n
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func appendRecord(dst []byte, r *Record, size int) []byte {
	dst = binary.AppendVarint(dst, int64(size))
	dst = append(dst, byte(r.Attributes))
	dst = binary.AppendVarint(dst, r.TimestampDelta)
	dst = binary.AppendVarint(dst, int64(r.OffsetDelta))
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = binary.AppendVarint(dst, int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		dst = binary.AppendVarint(dst, int64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendBytes(dst, h.Value)
	}
	return dst
}

// Build encodes records into a new v2 batch compressed with codec. From the
// template h it takes BaseOffset, PartitionLeaderEpoch, the attribute bits
// other than the codec, FirstTimestamp, MaxTimestamp, the producer fields
// and BaseSequence, as given; it sets Magic, Length, NumRecords and the
// CRC. LastOffsetDelta is the last record's OffsetDelta, or h's if larger
// (compaction keeps a batch's offset range when it drops records). Records
// are written in the order given, with their deltas as given.
func Build(h Header, codec Codec, records []Record) ([]byte, error) {
	if !codec.Known() {
		return nil, fmt.Errorf("%w: codec id %d", ErrUnsupportedCodec, int8(codec))
	}
	if len(records) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d records", ErrInvalidRecord, len(records))
	}
	sizes := make([]int, len(records))
	total := 0
	for i := range records {
		sizes[i] = recordSize(&records[i])
		if sizes[i] > math.MaxInt32 {
			return nil, fmt.Errorf("%w: record %d is %d bytes", ErrInvalidRecord, i, sizes[i])
		}
		total += varintSize(int64(sizes[i])) + sizes[i]
	}

	var out []byte
	if codec == None {
		out = make([]byte, HeaderSize, HeaderSize+total)
		for i := range records {
			out = appendRecord(out, &records[i], sizes[i])
		}
	} else {
		raw := make([]byte, 0, total)
		for i := range records {
			raw = appendRecord(raw, &records[i], sizes[i])
		}
		var err error
		out, err = compress(make([]byte, HeaderSize, HeaderSize+total/2+64), raw, codec)
		if err != nil {
			return nil, fmt.Errorf("batch: compressing with %s: %w", codec, err)
		}
	}
	if len(out)-lengthOverhead > math.MaxInt32 {
		return nil, fmt.Errorf("%w: batch of %d bytes", ErrInvalidRecord, len(out))
	}

	h.Length = int32(len(out) - lengthOverhead)
	h.Magic = Magic
	h.Attributes = h.Attributes&^codecMask | int16(codec)
	h.NumRecords = int32(len(records))
	if n := len(records); n > 0 {
		h.LastOffsetDelta = max(h.LastOffsetDelta, records[n-1].OffsetDelta)
	}
	putHeader(out, h)
	UpdateCRC(out)
	return out, nil
}
