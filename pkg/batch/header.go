package batch

import (
	"encoding/binary"
	"fmt"
)

// A v2 record batch on the wire (all integers big endian). The CRC is a
// CRC32C (Castagnoli) over bytes [21, end): everything after the CRC field.
// BaseOffset and PartitionLeaderEpoch are outside it, so the broker can
// assign offsets and stamp the epoch without recomputing it.
//
//	offset  size  field
//	     0     8  baseOffset
//	     8     4  batchLength           bytes after this field: total size - 12
//	    12     4  partitionLeaderEpoch
//	    16     1  magic                 2
//	    17     4  crc                   CRC32C of bytes [21, end)
//	    21     2  attributes            see below
//	    23     4  lastOffsetDelta
//	    27     8  firstTimestamp
//	    35     8  maxTimestamp
//	    43     8  producerId
//	    51     2  producerEpoch
//	    53     4  baseSequence
//	    57     4  numRecords
//	    61     -  records               compressed as a whole per the codec
//
// attributes:
//
//	bits 0-2  compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
//	bit  3    timestamp type: 0 CreateTime, 1 LogAppendTime
//	bit  4    transactional
//	bit  5    control batch
//	bit  6    has delete horizon (KIP-534; firstTimestamp holds it)
const (
	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offFirstTimestamp  = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offNumRecords      = 57

	// HeaderSize is the size of the fixed v2 batch header.
	HeaderSize = 61

	// lengthOverhead is the part of the header before and including the
	// batchLength field, which the field does not count.
	lengthOverhead = offLength + 4

	// Magic is the only batch format version this package handles.
	Magic = 2
)

// Attribute bits beyond the codec.
const (
	codecMask         = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

// Header is the fixed 61-byte v2 batch header.
type Header struct {
	BaseOffset           int64
	Length               int32 // the batchLength field: bytes after it
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// ParseHeader decodes the header at the start of b, which must hold at least
// HeaderSize bytes. It checks nothing else; see [Validate].
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, a batch header is %d", ErrCorrupt, len(b), HeaderSize)
	}
	be := binary.BigEndian
	return Header{
		BaseOffset:           int64(be.Uint64(b[offBaseOffset:])),
		Length:               int32(be.Uint32(b[offLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  be.Uint32(b[offCRC:]),
		Attributes:           int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[offLastOffsetDelta:])),
		FirstTimestamp:       int64(be.Uint64(b[offFirstTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[offBaseSequence:])),
		NumRecords:           int32(be.Uint32(b[offNumRecords:])),
	}, nil
}

// putHeader writes h in wire order to dst[:HeaderSize].
func putHeader(dst []byte, h Header) {
	be := binary.BigEndian
	be.PutUint64(dst[offBaseOffset:], uint64(h.BaseOffset))
	be.PutUint32(dst[offLength:], uint32(h.Length))
	be.PutUint32(dst[offLeaderEpoch:], uint32(h.PartitionLeaderEpoch))
	dst[offMagic] = byte(h.Magic)
	be.PutUint32(dst[offCRC:], h.CRC)
	be.PutUint16(dst[offAttributes:], uint16(h.Attributes))
	be.PutUint32(dst[offLastOffsetDelta:], uint32(h.LastOffsetDelta))
	be.PutUint64(dst[offFirstTimestamp:], uint64(h.FirstTimestamp))
	be.PutUint64(dst[offMaxTimestamp:], uint64(h.MaxTimestamp))
	be.PutUint64(dst[offProducerID:], uint64(h.ProducerID))
	be.PutUint16(dst[offProducerEpoch:], uint16(h.ProducerEpoch))
	be.PutUint32(dst[offBaseSequence:], uint32(h.BaseSequence))
	be.PutUint32(dst[offNumRecords:], uint32(h.NumRecords))
}

// Size is the total size of the batch in bytes, header included.
func (h Header) Size() int { return lengthOverhead + int(h.Length) }

// Codec is the compression codec of the records.
func (h Header) Codec() Codec { return Codec(h.Attributes & codecMask) }

// TimestampType is 0 for CreateTime and 1 for LogAppendTime.
func (h Header) TimestampType() int {
	if h.Attributes&attrLogAppendTime != 0 {
		return 1
	}
	return 0
}

// IsTransactional reports whether the batch is part of a transaction.
func (h Header) IsTransactional() bool { return h.Attributes&attrTransactional != 0 }

// IsControl reports whether the batch holds a control record (a
// transaction marker).
func (h Header) IsControl() bool { return h.Attributes&attrControl != 0 }

// NextOffset is the offset after the batch's last: BaseOffset +
// LastOffsetDelta + 1.
func (h Header) NextOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) + 1 }

// Codec is a Kafka compression codec id, the low three attribute bits.
type Codec int8

// The codecs Kafka defines. Ids 5 to 7 are unassigned.
const (
	None   Codec = 0
	Gzip   Codec = 1
	Snappy Codec = 2
	LZ4    Codec = 3
	Zstd   Codec = 4
)

// Known reports whether c is one of the five codecs Kafka defines.
func (c Codec) Known() bool { return c >= None && c <= Zstd }

func (c Codec) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}
