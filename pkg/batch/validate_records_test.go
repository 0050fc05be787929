package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// rawRecords encodes records as a batch's uncompressed records section,
// deltas as given.
func rawRecords(recs []Record) []byte {
	var b []byte
	for i := range recs {
		b = appendRecord(b, &recs[i], recordSize(&recs[i]))
	}
	return b
}

// squeeze compresses a raw records section with c.
func squeeze(t testing.TB, c Codec, raw []byte) []byte {
	t.Helper()
	b, err := compress(nil, raw, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withDeltas returns a copy of recs with the given offset deltas.
func withDeltas(recs []Record, deltas ...int32) []Record {
	out := append([]Record(nil), recs...)
	for i := range out {
		out[i].OffsetDelta = deltas[i]
	}
	return out
}

// TestValidateRecordsRules: every batch below has a valid header and CRC;
// only its records break a rule. Each runs uncompressed and under every
// codec, whose compressed stream is itself valid.
func TestValidateRecordsRules(t *testing.T) {
	recs := sampleRecords()[:5]
	raw := rawRecords(recs)
	garbage := make([]byte, len(raw))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	tests := append(malformedRecords(), []recordsCase{
		{"good", 5, raw, nil},
		{"all 0xff", 5, bytes.Repeat([]byte{0xff}, len(raw)), ErrInvalidRecord},
		{"random bytes", 5, garbage, ErrInvalidRecord},
		{"a byte after the last record", 5, append(bytes.Clone(raw), 0), ErrInvalidRecord},
		{"a record after the last record", 5, append(bytes.Clone(raw), raw[:7]...), ErrInvalidRecord},
		{"offset deltas from 1", 5, rawRecords(withDeltas(recs, 1, 2, 3, 4, 5)), ErrInvalidRecord},
		{"offset delta skipped", 5, rawRecords(withDeltas(recs, 0, 1, 3, 4, 5)), ErrInvalidRecord},
		{"offset delta repeated", 5, rawRecords(withDeltas(recs, 0, 1, 1, 3, 4)), ErrInvalidRecord},
		{"offset deltas reversed", 5, rawRecords(withDeltas(recs, 4, 3, 2, 1, 0)), ErrInvalidRecord},
		{"record length past the end", 1, []byte{0x0e, 0, 0, 0, 1, 1, 0}, ErrInvalidRecord},
		{"key past the record", 2, []byte{0x0c, 0, 0, 0, 0x08, 1, 0, 0x0c, 0, 0, 2, 1, 1, 0}, ErrInvalidRecord},
		{"value past the record", 1, []byte{0x0c, 0, 0, 0, 1, 0x04, 0, 'x'}, ErrInvalidRecord},
		{"header count past the record", 1, []byte{0x0e, 0, 0, 0, 1, 1, 0x08, 0}, ErrInvalidRecord},
		{"header key past the record", 1, []byte{0x10, 0, 0, 0, 1, 1, 2, 0x08, 1}, ErrInvalidRecord},
		{"varint beyond int32", 1, []byte{0x14, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 1, 0}, ErrInvalidRecord},
		{"overlong timestamp varlong", 1, []byte{0x20, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 1, 1, 0}, ErrInvalidRecord},
	}...)
	for _, c := range codecs {
		for _, tt := range tests {
			t.Run(c.String()+"/"+tt.name, func(t *testing.T) {
				body := tt.body
				if c != None {
					body = squeeze(t, c, tt.body)
				}
				b := withBody(t, template, c, tt.n, body)
				if _, err := Validate(b); err != nil {
					t.Fatalf("the header is wrong too: %v", err)
				}
				_, err := ValidateRecords(context.Background(), b, 1<<20, nil)
				wantOnly(t, "ValidateRecords", err, tt.want)
			})
		}
	}
}

// TestValidateRecordsStreams: a records section that is not a valid stream
// of its codec is corrupt (CORRUPT_MESSAGE), and decompression stops at the
// bound.
func TestValidateRecordsStreams(t *testing.T) {
	recs := sampleRecords()
	raw := rawRecords(recs)
	for _, c := range codecs[1:] {
		t.Run(c.String(), func(t *testing.T) {
			comp := squeeze(t, c, raw)
			for _, tc := range []struct {
				name string
				body []byte
				// A stream that ends at once, or one with a flipped byte,
				// may decompress (to no records or to bad ones).
				orInvalid bool
			}{
				{"not compressed", raw, false},
				{"text", []byte("not compressed at all"), false},
				{"cut short", comp[:len(comp)-5], false},
				{"empty", []byte{}, true},
				{"flipped in half", flipHalf(comp), true},
			} {
				b := withBody(t, template, c, int32(len(recs)), tc.body)
				_, err := ValidateRecords(context.Background(), b, 1<<20, nil)
				if !errors.Is(err, ErrCorrupt) && !(tc.orInvalid && errors.Is(err, ErrInvalidRecord)) {
					t.Errorf("%s: %v, want ErrCorrupt", tc.name, err)
				}
			}
			b := withBody(t, template, c, int32(len(recs)), comp)
			if _, err := ValidateRecords(context.Background(), b, len(raw)-1, nil); !errors.Is(err, ErrTooLarge) {
				t.Errorf("limit %d: %v, want ErrTooLarge", len(raw)-1, err)
			}
			if _, err := ValidateRecords(context.Background(), b, len(raw), nil); err != nil {
				t.Errorf("limit %d: %v", len(raw), err)
			}
			// A bomb: one well-formed record of 64 MiB of zeros, far more
			// than the bound, from little input.
			bomb := withBody(t, template, c, 1, squeeze(t, c, rawRecords([]Record{{Value: make([]byte, 64<<20)}})))
			var err error
			if n := allocated(func() { _, err = ValidateRecords(context.Background(), bomb, 1<<20, nil) }); !errors.Is(err, ErrTooLarge) || n > 16<<20 {
				t.Errorf("bomb: %v, %d bytes allocated", err, n)
			}
		})
	}
}

func flipHalf(b []byte) []byte {
	b = bytes.Clone(b)
	b[len(b)/2] ^= 0x55
	return b
}

// librdkafkaZstd is a batch of 2000 records kcat 1.7.1 (librdkafka 2.0.2)
// produced with -z zstd: its frame does not declare its content size, and
// inflates 7.7 times, past the decoder's first guess.
func librdkafkaZstd(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/librdkafka-zstd.batch")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidateRecordsLibrdkafka(t *testing.T) {
	b := librdkafkaZstd(t)
	s, err := ValidateRecords(context.Background(), b, 64<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Records(b, 64<<20)
	if err != nil || len(recs) != int(s.Header.NumRecords) || !s.Keyed || s.MaxTimestamp != s.Header.MaxTimestamp {
		t.Fatalf("%d records (%v), summary %+v", len(recs), err, s)
	}
}

// TestValidateRecordsSummary: the timestamps and keys the produce path
// needs come from the records, not from the header.
func TestValidateRecordsSummary(t *testing.T) {
	recs := sampleRecords() // deltas 0, 250, -5, 1<<40, 0, 0; record 1 has no key
	first := template.FirstTimestamp
	keyed := withKeys(recs)
	noTs := []Record{{Key: []byte("a")}, {OffsetDelta: 1, TimestampDelta: -1 - first, Key: []byte("b")}}
	logAppend := template
	logAppend.Attributes = attrLogAppendTime
	logAppend.MaxTimestamp = 777
	tests := []struct {
		name     string
		h        Header
		recs     []Record
		min, max int64
		keyed    bool
	}{
		{"sample", template, recs, first - 5, first + 1<<40, false},
		{"all keyed", template, keyed, first - 5, first + 1<<40, true},
		// Kafka exempts records without a timestamp (-1) from the
		// bounds, but counts them in the maximum, which starts at -1.
		{"one without a timestamp", template, noTs, first, first, true},
		{"none with a timestamp", Header{FirstTimestamp: -1}, noTs[:1], math.MaxInt64, -1, true},
		// Every record of a LogAppendTime batch has its maxTimestamp.
		{"LogAppendTime", logAppend, recs[:3], 777, 777, false},
	}
	for _, c := range codecs {
		for _, tt := range tests {
			t.Run(c.String()+"/"+tt.name, func(t *testing.T) {
				b := mustBuild(t, tt.h, c, tt.recs)
				s, err := ValidateRecords(context.Background(), b, 1<<20, nil)
				if err != nil {
					t.Fatal(err)
				}
				if s.MinTimestamp != tt.min || s.MaxTimestamp != tt.max || s.Keyed != tt.keyed {
					t.Fatalf("summary %d..%d keyed %v, want %d..%d keyed %v", s.MinTimestamp, s.MaxTimestamp, s.Keyed, tt.min, tt.max, tt.keyed)
				}
				if want, _ := ParseHeader(b); s.Header != want {
					t.Fatalf("header %+v, want %+v", s.Header, want)
				}
			})
		}
	}
}

func withKeys(recs []Record) []Record {
	out := append([]Record(nil), recs...)
	for i := range out {
		if out[i].Key == nil {
			out[i].Key = []byte("key")
		}
	}
	return out
}

// TestValidateRecordsHeaderFirst: what Validate refuses, ValidateRecords
// refuses for the same reason.
func TestValidateRecordsHeaderFirst(t *testing.T) {
	good := mustBuild(t, template, None, sampleRecords()[:3])
	for name, b := range map[string][]byte{
		"bad crc":     corrupt(good, false, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"magic 1":     corrupt(good, false, func(b []byte) []byte { b[offMagic] = 1; return b }),
		"codec 6":     corrupt(good, true, func(b []byte) []byte { b[offAttributes+1] |= 6; return b }),
		"no records":  mustBuild(t, template, None, nil),
		"short":       good[:HeaderSize-1],
		"count delta": corrupt(good, true, func(b []byte) []byte { b[offLastOffsetDelta+3]++; return b }),
	} {
		_, want := Validate(b)
		if _, err := ValidateRecords(context.Background(), b, 1<<20, nil); want == nil || err == nil || err.Error() != want.Error() {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
}

// TestValidateRecordsAllocs: the uncompressed path, the one nearly every
// produce takes, allocates nothing; the compressed paths reuse pooled
// buffers and decoders, so they allocate little and never the output.
func TestValidateRecordsAllocs(t *testing.T) {
	recs := make([]Record, 200)
	for i := range recs {
		recs[i] = Record{OffsetDelta: int32(i), TimestampDelta: int64(i), Key: []byte("key"), Value: bytes.Repeat([]byte{byte(i)}, 1000),
			Headers: []RecordHeader{{Key: "h", Value: []byte("v")}}}
	}
	for _, c := range codecs {
		b := mustBuild(t, template, c, recs)
		if _, err := ValidateRecords(context.Background(), b, 1<<20, nil); err != nil { // warm the pools
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(50, func() {
			if _, err := ValidateRecords(context.Background(), b, 1<<20, nil); err != nil {
				panic(err)
			}
		})
		bytesPer := allocated(func() {
			for range 10 {
				if _, err := ValidateRecords(context.Background(), b, 1<<20, nil); err != nil {
					panic(err)
				}
			}
		}) / 10
		if c == None && allocs != 0 || bytesPer > 64<<10 {
			t.Errorf("%s: %v allocations, %d bytes per run", c, allocs, bytesPer)
		}
	}
}

// benchBatch is n records of size value bytes each, as a producer's batch of
// about 1 MiB would carry them, the values compressible as text.
func benchBatch(b *testing.B, c Codec, size int) []byte {
	n := (1 << 20) / (size + 20)
	recs := make([]Record, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range recs {
		v := make([]byte, size)
		for j := range v {
			v[j] = "abcdefghij klmnop"[rng.IntN(17)]
		}
		recs[i] = Record{OffsetDelta: int32(i), TimestampDelta: int64(i / 100), Key: fmt.Appendf(nil, "key-%d", i), Value: v}
	}
	return mustBuild(b, template, c, recs)
}

func BenchmarkValidateRecords(b *testing.B) {
	budget := NewBudget(256 << 20) // as the produce path's
	for _, size := range []int{100, 1024} {
		for _, c := range codecs {
			batch := benchBatch(b, c, size)
			b.Run(fmt.Sprintf("%dB/%s", size, c), func(b *testing.B) {
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ValidateRecords(context.Background(), batch, 64<<20, budget); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
