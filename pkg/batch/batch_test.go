package batch

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// template is a typical idempotent producer's header.
var template = Header{
	BaseOffset:           0,
	PartitionLeaderEpoch: -1,
	FirstTimestamp:       1_700_000_000_000,
	MaxTimestamp:         1_700_000_000_250,
	ProducerID:           4242,
	ProducerEpoch:        3,
	BaseSequence:         17,
}

// sampleRecords covers keys (null, empty, set), null and empty values,
// headers with null and empty values, negative and large timestamp deltas,
// and enough repetition for compression to matter.
func sampleRecords() []Record {
	recs := []Record{
		{OffsetDelta: 0, TimestampDelta: 0, Key: []byte("k0"), Value: []byte("hello")},
		{OffsetDelta: 1, TimestampDelta: 250, Key: nil, Value: []byte("no key")},
		{OffsetDelta: 2, TimestampDelta: -5, Key: []byte("tombstone"), Value: nil},
		{OffsetDelta: 3, TimestampDelta: 1 << 40, Key: []byte{}, Value: []byte{}},
		{OffsetDelta: 4, Key: []byte("h"), Value: []byte("with headers"), Headers: []RecordHeader{
			{Key: "trace", Value: []byte("abc")},
			{Key: "null", Value: nil},
			{Key: "", Value: []byte{}},
		}},
		{OffsetDelta: 5, Key: []byte("big"), Value: bytes.Repeat([]byte("barge "), 5000)},
	}
	return recs
}

var codecs = []Codec{None, Gzip, Snappy, LZ4, Zstd}

func mustBuild(t testing.TB, h Header, c Codec, recs []Record) []byte {
	t.Helper()
	b, err := Build(h, c, recs)
	if err != nil {
		t.Fatalf("Build(%s): %v", c, err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			want := sampleRecords()
			b := mustBuild(t, template, c, want)
			h, err := Validate(b)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if h.Codec() != c || h.NumRecords != int32(len(want)) || h.LastOffsetDelta != int32(len(want)-1) ||
				h.ProducerID != template.ProducerID || h.BaseSequence != template.BaseSequence ||
				h.MaxTimestamp != template.MaxTimestamp || h.Size() != len(b) || h.Magic != Magic {
				t.Fatalf("header %+v", h)
			}
			if c != None && len(b) > 20000 {
				t.Errorf("%s batch is %d bytes: not compressed?", c, len(b))
			}
			got, err := Records(b, 1<<20)
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("records differ\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestBuildKeepsTemplate(t *testing.T) {
	h := template
	h.Attributes = attrTransactional | Gzip.attr() // the codec bits are replaced
	h.LastOffsetDelta = 10                         // a compacted range
	b := mustBuild(t, h, Zstd, sampleRecords()[:2])
	got, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Codec() != Zstd || !got.IsTransactional() || got.IsControl() || got.LastOffsetDelta != 10 || got.NextOffset() != 11 {
		t.Fatalf("header %+v", got)
	}
	// The count rule fails, as for a compacted batch, but Records reads it.
	if _, err := Validate(b); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Validate: %v, want ErrInvalidRecord", err)
	}
	if recs, err := Records(b, 1<<20); err != nil || len(recs) != 2 {
		t.Fatalf("Records: %d, %v", len(recs), err)
	}
}

func (c Codec) attr() int16 { return int16(c) }

func TestEmptyBatch(t *testing.T) {
	b := mustBuild(t, template, None, nil)
	if len(b) != HeaderSize {
		t.Fatalf("%d bytes", len(b))
	}
	if _, err := Validate(b); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Validate: %v", err)
	}
	if recs, err := Records(b, 0); err != nil || len(recs) != 0 {
		t.Fatalf("Records: %v, %v", recs, err)
	}
}

// corrupt returns a copy of good edited by fn, with the CRC recomputed if
// fix is set.
func corrupt(good []byte, fix bool, fn func(b []byte) []byte) []byte {
	b := fn(bytes.Clone(good))
	if fix {
		UpdateCRC(b)
	}
	return b
}

func TestValidate(t *testing.T) {
	good := mustBuild(t, template, None, sampleRecords()[:3])
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte {
			b[off], b[off+1], b[off+2], b[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
			return b
		}
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"good", good, nil},
		{"empty", nil, ErrCorrupt},
		{"shorter than a header", good[:HeaderSize-1], ErrCorrupt},
		{"truncated", good[:len(good)-1], ErrCorrupt},
		{"trailing byte", append(bytes.Clone(good), 0), ErrCorrupt},
		{"length below header", corrupt(good, false, put32(offLength, 10)), ErrCorrupt},
		{"negative length", corrupt(good, false, put32(offLength, 0xffffffff)), ErrCorrupt},
		{"bad crc field", corrupt(good, false, put32(offCRC, 12345)), ErrCorrupt},
		{"flipped record byte", corrupt(good, false, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCorrupt},
		{"flipped producer id", corrupt(good, false, func(b []byte) []byte { b[offProducerID] ^= 0x80; return b }), ErrCorrupt},
		{"magic 1", corrupt(good, false, func(b []byte) []byte { b[offMagic] = 1; return b }), ErrInvalidRecord},
		{"magic 1, short", corrupt(good, false, func(b []byte) []byte { b[offMagic] = 1; return b[:30] }), ErrInvalidRecord},
		{"zero records", corrupt(good, true, put32(offNumRecords, 0)), ErrInvalidRecord},
		{"negative records", corrupt(good, true, put32(offNumRecords, 0xffffffff)), ErrInvalidRecord},
		{"count mismatch", corrupt(good, true, put32(offNumRecords, 4)), ErrInvalidRecord},
		{"offset delta mismatch", corrupt(good, true, put32(offLastOffsetDelta, 7)), ErrInvalidRecord},
		{"codec 5", corrupt(good, true, func(b []byte) []byte { b[offAttributes+1] |= 5; return b }), ErrUnsupportedCodec},
		{"codec 7", corrupt(good, true, func(b []byte) []byte { b[offAttributes+1] |= 7; return b }), ErrUnsupportedCodec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Validate(tt.b)
			wantOnly(t, "Validate", err, tt.want)
		})
	}
}

// wantOnly fails the test unless err is nil when want is, and otherwise
// is want and none of this package's other sentinel errors.
func wantOnly(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	}
	for _, s := range []error{ErrCorrupt, ErrInvalidRecord, ErrUnsupportedCodec, ErrTooLarge} {
		if errors.Is(err, s) != (s == want) {
			t.Fatalf("%s: %v; want only %v", what, err, want)
		}
	}
}

func TestSplit(t *testing.T) {
	var batches [][]byte
	for i, c := range []Codec{None, Zstd, Snappy} {
		h := template
		h.BaseSequence = int32(10 * i)
		batches = append(batches, mustBuild(t, h, c, sampleRecords()[:i+1]))
	}
	all := bytes.Join(batches, nil)

	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d batches", n), func(t *testing.T) {
			b := bytes.Join(batches[:n], nil)
			var got int
			off := 0
			err := Split(b, func(batch []byte, h Header) error {
				if !bytes.Equal(batch, batches[got]) || &batch[0] != &b[off] || cap(batch) != len(batch) {
					t.Fatalf("batch %d: wrong slice", got)
				}
				if h.BaseSequence != int32(10*got) || h.Size() != len(batch) {
					t.Fatalf("batch %d: header %+v", got, h)
				}
				if _, err := Validate(batch); err != nil {
					t.Fatalf("batch %d: %v", got, err)
				}
				got++
				off += len(batch)
				return nil
			})
			if err != nil || got != n {
				t.Fatalf("Split: %d batches, %v", got, err)
			}
		})
	}

	for _, cut := range []int{1, 10, len(batches[2]) - HeaderSize, len(batches[2]) - 1} {
		t.Run(fmt.Sprintf("tail short by %d", cut), func(t *testing.T) {
			var got int
			err := Split(all[:len(all)-cut], func([]byte, Header) error { got++; return nil })
			if !errors.Is(err, ErrCorrupt) || got != 2 {
				t.Fatalf("Split: %d batches, %v; want 2 then ErrCorrupt", got, err)
			}
		})
	}

	t.Run("fn error stops", func(t *testing.T) {
		stop := errors.New("stop")
		var got int
		err := Split(all, func([]byte, Header) error { got++; return stop })
		if err != stop || got != 1 {
			t.Fatalf("Split: %d batches, %v", got, err)
		}
	})

	t.Run("empty", func(t *testing.T) {
		if err := Split(nil, func([]byte, Header) error { t.Fatal("called"); return nil }); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPatches(t *testing.T) {
	for _, c := range codecs {
		b := mustBuild(t, template, c, sampleRecords())
		SetBaseOffset(b, 1_000_000)
		SetPartitionLeaderEpoch(b, 7)
		h, err := Validate(b)
		if err != nil {
			t.Fatalf("%s: after offsets: %v", c, err)
		}
		if h.BaseOffset != 1_000_000 || h.PartitionLeaderEpoch != 7 || h.NextOffset() != 1_000_006 {
			t.Fatalf("%s: header %+v", c, h)
		}

		SetLogAppendTime(b, 1_800_000_000_000)
		h, err = Validate(b)
		if err != nil {
			t.Fatalf("%s: after log append time: %v", c, err)
		}
		if h.TimestampType() != 1 || h.MaxTimestamp != 1_800_000_000_000 ||
			h.FirstTimestamp != template.FirstTimestamp || h.Codec() != c || h.BaseOffset != 1_000_000 {
			t.Fatalf("%s: header %+v", c, h)
		}
		if recs, err := Records(b, 1<<20); err != nil || !reflect.DeepEqual(recs, sampleRecords()) {
			t.Fatalf("%s: Records after patches: %v", c, err)
		}

		// What the produce path does to a header whose maxTimestamp is
		// not its newest record's, as Kafka's setMaxTimestamp(CREATE_TIME).
		SetCreateTime(b, 1_900_000_000_000)
		h, err = Validate(b)
		if err != nil {
			t.Fatalf("%s: after create time: %v", c, err)
		}
		if h.TimestampType() != 0 || h.MaxTimestamp != 1_900_000_000_000 || h.FirstTimestamp != template.FirstTimestamp || h.Codec() != c {
			t.Fatalf("%s: header %+v", c, h)
		}
	}
}

func TestTooLarge(t *testing.T) {
	recs := sampleRecords()
	raw := 0
	for i := range recs {
		n := recordSize(&recs[i])
		raw += varintSize(int64(n)) + n
	}
	for _, c := range codecs[1:] {
		b := mustBuild(t, template, c, recs)
		if _, err := Records(b, raw-1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: limit %d: %v, want ErrTooLarge", c, raw-1, err)
		}
		if _, err := Records(b, raw); err != nil {
			t.Errorf("%s: limit %d: %v", c, raw, err)
		}
	}
}

// TestXerialSnappy decodes the framing Java producers write, split into
// several chunks.
func TestXerialSnappy(t *testing.T) {
	recs := sampleRecords()
	raw := mustBuild(t, template, None, recs)[HeaderSize:]
	framed := append(bytes.Clone(xerialMagic), 0, 0, 0, 1, 0, 0, 0, 1)
	for chunk := range slicesChunk(raw, 4096) {
		block, err := compress(nil, chunk, Snappy)
		if err != nil {
			t.Fatal(err)
		}
		framed = append(framed, byte(len(block)>>24), byte(len(block)>>16), byte(len(block)>>8), byte(len(block)))
		framed = append(framed, block...)
	}
	b := withBody(t, template, Snappy, int32(len(recs)), framed)
	got, err := Records(b, 1<<20)
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatal("records differ")
	}
	if _, err := Records(b, len(raw)-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bounded: %v", err)
	}
	// A chunk length past the end is corrupt.
	bad := withBody(t, template, Snappy, int32(len(recs)), framed[:len(framed)-3])
	if _, err := Records(bad, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated xerial: %v", err)
	}
}

func slicesChunk(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

// withBody frames an arbitrary records section as a batch with a valid CRC.
func withBody(t testing.TB, h Header, c Codec, n int32, body []byte) []byte {
	t.Helper()
	b := make([]byte, HeaderSize, HeaderSize+len(body))
	b = append(b, body...)
	h.Magic = Magic
	h.Length = int32(len(b) - lengthOverhead)
	h.Attributes = h.Attributes&^codecMask | int16(c)
	h.NumRecords = n
	h.LastOffsetDelta = n - 1
	putHeader(b, h)
	UpdateCRC(b)
	return b
}

// recordsCase is a records section with its record count, and the error
// reading it must give.
type recordsCase struct {
	name string
	n    int32
	body []byte
	want error
}

// malformedRecords are sections that both Records and ValidateRecords
// refuse, and the smallest one they accept.
func malformedRecords() []recordsCase {
	body := rawRecords(sampleRecords()[:2])
	return []recordsCase{
		{"more records than bytes allow", 1000, body, ErrInvalidRecord},
		{"one record too many", 3, body, ErrInvalidRecord},
		{"bytes left over", 1, body, ErrInvalidRecord},
		{"record length past end", 2, body[:len(body)-1], ErrInvalidRecord},
		{"negative record length", 1, []byte{0x01, 0, 0, 0, 0, 0, 0, 0}, ErrInvalidRecord},
		{"fields short of length", 1, []byte{0x10, 0, 0, 0, 1, 1, 0, 0, 0}, ErrInvalidRecord},
		{"fields past length", 1, []byte{0x0a, 0, 0, 0, 1, 1, 2}, ErrInvalidRecord},
		{"negative header count", 1, []byte{0x0c, 0, 0, 0, 1, 1, 1}, ErrInvalidRecord},
		{"null header key", 1, []byte{0x10, 0, 0, 0, 1, 1, 2, 1, 1}, ErrInvalidRecord},
		{"overlong varint", 1, []byte{0x16, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 1, 0}, ErrInvalidRecord},
		{"minimal record", 1, []byte{0x0c, 0, 0, 0, 1, 1, 0}, nil},
	}
}

func TestMalformedRecords(t *testing.T) {
	for _, tt := range malformedRecords() {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Records(withBody(t, template, None, tt.n, tt.body), 1<<20)
			wantOnly(t, "Records", err, tt.want)
		})
	}
	// Garbage that claims a codec is corrupt, not a panic.
	for _, c := range codecs[1:] {
		if _, err := Records(withBody(t, template, c, 1, []byte("not compressed at all")), 1<<20); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s garbage: %v", c, err)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	b := mustBuild(t, template, Zstd, sampleRecords())
	two := append(bytes.Clone(b), b...)
	var sink int
	allocs := testing.AllocsPerRun(100, func() {
		h, err := Validate(b)
		if err != nil {
			panic(err)
		}
		sink += h.Size()
		_ = Split(two, func(batch []byte, h Header) error { sink += len(batch); return nil })
		SetBaseOffset(b, 5)
		SetPartitionLeaderEpoch(b, 2)
		SetLogAppendTime(b, 99)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

func BenchmarkValidate(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		recs := []Record{{Value: bytes.Repeat([]byte{'x'}, size)}}
		batch := mustBuild(b, template, None, recs)
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Validate(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRecords(b *testing.B) {
	for _, c := range codecs {
		batch := mustBuild(b, template, c, sampleRecords())
		b.Run(c.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Records(batch, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
