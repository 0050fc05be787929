package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Errors, each wrapped with detail. At the protocol edge they map to Kafka
// error codes:
//
//	ErrCorrupt          CORRUPT_MESSAGE (2)
//	ErrInvalidRecord    INVALID_RECORD (87)
//	ErrUnsupportedCodec UNSUPPORTED_COMPRESSION_TYPE (76)
//	ErrTooLarge         MESSAGE_TOO_LARGE (10): decompressed output over the caller's bound
var (
	// ErrCorrupt: the bytes are not a well-formed batch: truncated, lengths
	// that disagree, a CRC mismatch, or a compressed stream that does not
	// decompress (Kafka's CorruptRecordException).
	ErrCorrupt = errors.New("batch: corrupt")
	// ErrInvalidRecord: the batch is intact but breaks a format rule: a
	// magic other than 2, record counts that disagree, malformed records
	// (Kafka's InvalidRecordException).
	ErrInvalidRecord = errors.New("batch: invalid record")
	// ErrUnsupportedCodec: the attributes name a codec Kafka does not define.
	ErrUnsupportedCodec = errors.New("batch: unsupported compression codec")
	// ErrTooLarge: the records decompress to more than the caller allowed.
	ErrTooLarge = errors.New("batch: decompressed records too large")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Validate checks that b is exactly one v2 batch fit to append to a log, as
// Kafka checks a produced batch: at least a header long, Size() == len(b),
// magic 2, a CRC32C over b[21:] equal to the CRC field, a known codec, at
// least one record, and LastOffsetDelta == NumRecords-1. It reads only the
// header and runs the CRC; it neither allocates nor copies on success.
//
// Batches that compaction has thinned keep their original LastOffsetDelta
// and may have fewer records, so stored batches can fail the count rule;
// [Records] reads them without it.
func Validate(b []byte) (Header, error) {
	h, err := check(b)
	if err != nil {
		return h, err
	}
	if h.NumRecords < 1 {
		return h, fmt.Errorf("%w: batch has %d records", ErrInvalidRecord, h.NumRecords)
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d with %d records", ErrInvalidRecord, h.LastOffsetDelta, h.NumRecords)
	}
	return h, nil
}

// check verifies what every batch, produced or stored, must satisfy:
// framing, magic, CRC and codec.
func check(b []byte) (Header, error) {
	// Read the magic before anything else: a legacy message set (magic 0
	// or 1) has a different layout and may be shorter than a v2 header.
	if len(b) > offMagic && b[offMagic] != Magic {
		return Header{}, fmt.Errorf("%w: magic %d, want %d", ErrInvalidRecord, int8(b[offMagic]), Magic)
	}
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Length < HeaderSize-lengthOverhead {
		return h, fmt.Errorf("%w: batchLength %d below the header's %d", ErrCorrupt, h.Length, HeaderSize-lengthOverhead)
	}
	if h.Size() != len(b) {
		return h, fmt.Errorf("%w: batchLength %d says %d bytes, have %d", ErrCorrupt, h.Length, h.Size(), len(b))
	}
	if crc := crc32.Checksum(b[offAttributes:], castagnoli); crc != h.CRC {
		return h, fmt.Errorf("%w: crc %08x, computed %08x", ErrCorrupt, h.CRC, crc)
	}
	if !h.Codec().Known() {
		return h, fmt.Errorf("%w: codec id %d", ErrUnsupportedCodec, int8(h.Codec()))
	}
	return h, nil
}

// Split walks a Produce request's records field, one or more concatenated
// batches, and calls fn with each batch and its parsed header. The slices
// are subslices of b (capacity capped at their length), not copies. Split
// checks only framing: callers validate each batch with [Validate]. A
// trailing partial batch is ErrCorrupt; an error from fn stops the walk and
// is returned as is. An empty b calls fn never and returns nil.
func Split(b []byte, fn func(batch []byte, h Header) error) error {
	for at := 0; len(b) > 0; {
		if len(b) < HeaderSize {
			return fmt.Errorf("%w: %d trailing bytes at %d, less than a batch header", ErrCorrupt, len(b), at)
		}
		h, _ := ParseHeader(b)
		if h.Length < HeaderSize-lengthOverhead {
			return fmt.Errorf("%w: batch at %d: batchLength %d below the header's %d", ErrCorrupt, at, h.Length, HeaderSize-lengthOverhead)
		}
		n := h.Size()
		if n > len(b) {
			return fmt.Errorf("%w: batch at %d: %d bytes, only %d remain", ErrCorrupt, at, n, len(b))
		}
		if err := fn(b[:n:n], h); err != nil {
			return err
		}
		b, at = b[n:], at+n
	}
	return nil
}

// The patches below edit a batch in place. b must hold at least a header;
// they panic otherwise, as indexing past a slice does.

// SetBaseOffset sets the baseOffset field. The CRC does not cover it.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:offBaseOffset+8], uint64(off))
}

// SetPartitionLeaderEpoch sets the partitionLeaderEpoch field. The CRC does
// not cover it.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:offLeaderEpoch+4], uint32(epoch))
}

// SetLogAppendTime marks the batch's timestamps as LogAppendTime (attribute
// bit 3) and sets maxTimestamp to ts, then recomputes the CRC. As Kafka does
// when it stamps a batch in place, firstTimestamp and the records' deltas
// are left alone: readers take every record's timestamp from maxTimestamp
// when the type is LogAppendTime.
func SetLogAppendTime(b []byte, ts int64) { setMaxTimestamp(b, attrLogAppendTime, ts) }

// SetCreateTime marks the batch's timestamps as CreateTime and sets
// maxTimestamp to ts, then recomputes the CRC: what Kafka's
// setMaxTimestamp(CREATE_TIME, ts) does to a produced batch whose header
// disagrees with the newest of its records.
func SetCreateTime(b []byte, ts int64) { setMaxTimestamp(b, 0, ts) }

func setMaxTimestamp(b []byte, timestampType uint16, ts int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes : offAttributes+2])
	binary.BigEndian.PutUint16(b[offAttributes:], attrs&^attrLogAppendTime|timestampType)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:offMaxTimestamp+8], uint64(ts))
	UpdateCRC(b)
}

// UpdateCRC recomputes the CRC field over b[21:] after an edit to the bytes
// it covers.
func UpdateCRC(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:offCRC+4], crc32.Checksum(b[offAttributes:], castagnoli))
}
