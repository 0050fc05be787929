package batch

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// Run with a short minimization time, or the fuzzer spends up to a minute
// minimizing each new input while executing nothing new:
//
//	go test -run X -fuzz FuzzRecords -fuzztime 30s -fuzzminimizetime 2s ./pkg/batch/

// fuzzLimit bounds decompression in FuzzRecords, so that a fuzzed input
// claiming a huge output fails fast instead of exhausting memory.
const fuzzLimit = 1 << 20

// seedBatches are valid batches of every codec, and a few near misses.
func seedBatches(t testing.TB) [][]byte {
	recs := sampleRecords()
	small := recs[:5]
	var seeds [][]byte
	for _, c := range codecs {
		seeds = append(seeds, mustBuild(t, template, c, small))
	}
	seeds = append(seeds,
		mustBuild(t, template, None, recs[:1]),
		mustBuild(t, template, None, nil),
		bytes.Join([][]byte{mustBuild(t, template, None, recs[:1]), mustBuild(t, template, Snappy, recs[1:3])}, nil),
		[]byte{},
		make([]byte, HeaderSize),
	)
	return seeds
}

func FuzzValidate(f *testing.F) {
	for _, s := range seedBatches(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Validate(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalidRecord) && !errors.Is(err, ErrUnsupportedCodec) {
				t.Fatalf("unclassified error: %v", err)
			}
		} else {
			if h.Size() != len(b) || h.Magic != Magic || h.NumRecords < 1 || !h.Codec().Known() {
				t.Fatalf("accepted %+v for %d bytes", h, len(b))
			}
			c := bytes.Clone(b)
			SetBaseOffset(c, 12345)
			SetPartitionLeaderEpoch(c, 9)
			SetLogAppendTime(c, 777)
			if _, err := Validate(c); err != nil {
				t.Fatalf("patched batch fails: %v", err)
			}
		}
		total := 0
		err = Split(b, func(batch []byte, h Header) error {
			if h.Size() != len(batch) || len(batch) < HeaderSize {
				t.Fatalf("split gave %d bytes for %+v", len(batch), h)
			}
			total += len(batch)
			return nil
		})
		if err == nil && total != len(b) {
			t.Fatalf("split covered %d of %d bytes", total, len(b))
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("split: unclassified error: %v", err)
		}
	})
}

func FuzzRecords(f *testing.F) {
	for _, s := range seedBatches(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Fix up framing and CRC, so that the fuzzer spends its time in
		// decompression and record decoding rather than on checksums.
		if len(b) >= HeaderSize {
			b = bytes.Clone(b)
			b[offMagic] = Magic
			putLength(b)
			UpdateCRC(b)
		}
		recs, err := Records(b, fuzzLimit)
		if err != nil {
			return
		}
		h, _ := ParseHeader(b)
		if len(recs) != int(h.NumRecords) {
			t.Fatalf("%d records, header says %d", len(recs), h.NumRecords)
		}
		// What decodes re-encodes to the same records.
		again, err := Build(h, None, recs)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		got, err := Records(again, fuzzLimit)
		if err != nil {
			t.Fatalf("Records of rebuilt batch: %v", err)
		}
		if len(recs) == 0 {
			recs = nil
		}
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, recs) {
			t.Fatalf("rebuilt records differ\n got %+v\nwant %+v", got, recs)
		}
	})
}

func putLength(b []byte) {
	n := uint32(len(b) - lengthOverhead)
	b[offLength], b[offLength+1], b[offLength+2], b[offLength+3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}
