package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// The binary codec shared by entries and snapshots: little endian fixed
// integers, unsigned varints for lengths and counts, and a CRC-32C trailer
// over everything before it. Decoding never panics and never allocates more
// than the input can justify.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt reports an entry or snapshot whose bytes do not decode.
var ErrCorrupt = errors.New("meta: corrupt record")

// An encoder writes in one format: the entry's version (or a snapshot's
// cluster format), which ops consult for fields that format added.
type encoder struct {
	b      []byte
	format Format
}

func (e *encoder) u8(v uint8)     { e.b = append(e.b, v) }
func (e *encoder) uvar(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) svar(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) i64(v int64)    { e.b = binary.LittleEndian.AppendUint64(e.b, uint64(v)) }
func (e *encoder) str(s string)   { e.uvar(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(b []byte) { e.uvar(uint64(len(b))); e.b = append(e.b, b...) }
func (e *encoder) id(v TopicID)   { e.b = append(e.b, v[:]...) }

func (e *encoder) strs(v []string) {
	e.uvar(uint64(len(v)))
	for _, s := range v {
		e.str(s)
	}
}

func (e *encoder) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// seal appends the CRC-32C of everything encoded so far.
func (e *encoder) seal() []byte {
	return binary.LittleEndian.AppendUint32(e.b, crc32.Checksum(e.b, castagnoli))
}

// A decoder reads bytes of one format (the entry's version) for a reader
// that understands formats up to max.
type decoder struct {
	b      []byte
	err    error
	format Format
	max    Format
	nested bool // inside a Contribute, which may not hold another
}

// newDecoder checks the trailing CRC and returns a decoder over the rest.
func newDecoder(b []byte) (*decoder, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return &decoder{b: body, format: Format1, max: MaxFormat}, nil
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) u8() uint8 {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool() bool { return d.u8() != 0 }

func (d *decoder) uvar() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) svar() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) i64() int64 {
	if len(d.b) < 8 {
		d.fail("int64")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return int64(v)
}

func (d *decoder) i32() int32 {
	v := d.svar()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("int32")
		return 0
	}
	return int32(v)
}

// count reads a collection length and rejects one that the remaining bytes
// cannot hold (each element takes at least minSize bytes).
func (d *decoder) count(minSize int) int {
	n := d.uvar()
	if minSize < 1 {
		minSize = 1
	}
	if n > uint64(len(d.b)/minSize) {
		d.fail("count")
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.count(1)
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// bytes reads what bytes wrote, as a copy; nil for none.
func (d *decoder) bytes() []byte {
	n := d.count(1)
	if d.err != nil || n == 0 {
		return nil
	}
	b := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return b
}

// strs reads what strs wrote; nil for none.
func (d *decoder) strs() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.str())
	}
	return out
}

// format16 reads a format number.
func (d *decoder) format16() Format {
	v := d.uvar()
	if v > math.MaxUint16 {
		d.fail("format")
		return 0
	}
	return Format(v)
}

func (d *decoder) id() TopicID {
	var v TopicID
	if len(d.b) < len(v) {
		d.fail("topic id")
		return v
	}
	copy(v[:], d.b)
	d.b = d.b[len(v):]
	return v
}
