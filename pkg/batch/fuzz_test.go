package batch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Run with a short minimization time, or the fuzzer spends up to a minute
// minimizing each new input while executing nothing new, and with a count
// rather than a duration: Go 1.26 may end a timed run with a spurious
// "context deadline exceeded" (go.dev/issue/75804):
//
//	go test -run X -fuzz FuzzRecords -fuzztime 500000x -fuzzminimizetime 2s ./pkg/batch/

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
		b = reframed(b)
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

// reframed fixes up a fuzzed batch's magic, length and CRC, so that the
// fuzzer spends its time in decompression and record decoding rather than
// on checksums.
func reframed(b []byte) []byte {
	if len(b) < HeaderSize {
		return b
	}
	b = bytes.Clone(b)
	b[offMagic] = Magic
	putLength(b)
	UpdateCRC(b)
	return b
}

func putLength(b []byte) {
	n := uint32(len(b) - lengthOverhead)
	b[offLength], b[offLength+1], b[offLength+2], b[offLength+3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

// recordSeeds are batches that pass Validate but break record rules, or
// take the summary's less common paths.
func recordSeeds(t testing.TB) [][]byte {
	recs := sampleRecords()[:5]
	logAppend := template
	logAppend.Attributes = attrLogAppendTime
	gap := withDeltas(recs, 0, 1, 3, 4, 5)
	return [][]byte{
		withBody(t, template, None, 5, rawRecords(gap)),
		withBody(t, template, Zstd, 5, squeeze(t, Zstd, rawRecords(gap))),
		withBody(t, template, None, 5, append(rawRecords(recs), 0)),
		withBody(t, template, Gzip, 5, squeeze(t, Gzip, append(rawRecords(recs), 0))),
		withBody(t, template, LZ4, 4, squeeze(t, LZ4, rawRecords(recs))),
		mustBuild(t, logAppend, Snappy, recs),
		mustBuild(t, Header{FirstTimestamp: -1}, None, withKeys(recs)),
		librdkafkaZstd(t),
	}
}

func FuzzValidateRecords(f *testing.F) {
	for _, s := range append(seedBatches(f), recordSeeds(f)...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		b = reframed(b)
		s, err := ValidateRecords(context.Background(), b, fuzzLimit, nil)
		// Validate and Records, which decodes every record into memory,
		// are the reference: between them they decide what ValidateRecords
		// must accept.
		h, herr := Validate(b)
		recs, rerr := Records(b, fuzzLimit)
		sequential := rerr == nil
		for i := range recs {
			sequential = sequential && recs[i].OffsetDelta == int32(i)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalidRecord) && !errors.Is(err, ErrUnsupportedCodec) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified error: %v", err)
			}
			if herr == nil && sequential {
				t.Fatalf("refused (%v) a batch whose header passes and whose %d records decode in sequence", err, len(recs))
			}
			return
		}
		if herr != nil || !sequential || len(recs) != int(h.NumRecords) {
			t.Fatalf("accepted a batch that Validate (%v) or Records (%v, %d of %d records, in sequence: %v) refuses", herr, rerr, len(recs), h.NumRecords, sequential)
		}
		want := Summary{Header: h, MinTimestamp: math.MaxInt64, MaxTimestamp: -1, Keyed: true}
		section, _ := decompress(h.Codec(), b[HeaderSize:], fuzzLimit)
		want.size = len(section)
		for _, r := range recs {
			want.headers += len(r.Headers)
			ts := h.FirstTimestamp + r.TimestampDelta
			if h.TimestampType() == 1 {
				ts = h.MaxTimestamp
			}
			want.MaxTimestamp = max(want.MaxTimestamp, ts)
			if ts != -1 {
				want.MinTimestamp = min(want.MinTimestamp, ts)
			}
			want.Keyed = want.Keyed && r.Key != nil
		}
		if s != want {
			t.Fatalf("summary %+v, records say %+v", s, want)
		}
	})
}

// FuzzDecompressWhole checks the codecs decoded whole against their
// libraries' own decoders, unbounded: what those decode within the limit,
// decompress decodes alike (snappy only what snappy itself can make, not
// s2's denser extensions), and what decompress decodes, they do. A tiny
// budget is taken and given back in full whatever happens.
func FuzzDecompressWhole(f *testing.F) {
	raw := rawRecords(sampleRecords())
	var stream bytes.Buffer
	w := zstdStream(&stream)
	w.Write(make([]byte, 200<<10))
	w.Close()
	for _, body := range [][]byte{
		squeeze(f, Zstd, raw), lyingZstd(), zstdFrame(0x88, rleBlock(1000, false), rleBlock(10, true)),
		append(squeeze(f, Zstd, raw), lyingZstd()...), squeeze(f, Zstd, make([]byte, 200<<10)), stream.Bytes(),
		append([]byte{0x50, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, 0}, squeeze(f, Zstd, raw)...),
	} {
		f.Add(true, body)
	}
	for _, body := range [][]byte{squeeze(f, Snappy, raw), xerialFramed(raw), lyingSnappy(1 << 30), lyingXerial(3)} {
		f.Add(false, body)
	}
	// The reference's output is bounded only by its input: up to 32 KiB
	// a byte, of RLE blocks, so inputs are kept small.
	ref, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(zstdMaxWindow))
	if err != nil {
		f.Fatal(err)
	}
	budget := NewBudget(64 << 10)
	f.Fuzz(func(t *testing.T, isZstd bool, src []byte) {
		if len(src) > 2<<10 {
			return
		}
		l := &lease{b: budget, ctx: context.Background()}
		var got, want []byte
		var err, werr error
		if isZstd {
			got, err = decompressZstd(nil, src, fuzzLimit, l)
			want, werr = ref.DecodeAll(src, nil)
		} else {
			got, err = decompressSnappy(nil, src, fuzzLimit, l)
			want, werr = referenceSnappy(src)
		}
		l.release()
		if n := budget.InUse(); n != 0 {
			t.Fatalf("%d bytes of the budget still held", n)
		}
		switch {
		case err == nil && (werr != nil || !bytes.Equal(got, want)):
			t.Fatalf("decoded %d bytes where the reference says %d bytes, %v", len(got), len(want), werr)
		case err != nil && werr == nil && len(want) <= fuzzLimit:
			t.Fatalf("refused (%v) what the reference decodes to %d bytes", err, len(want))
		case err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge):
			t.Fatalf("unclassified error: %v", err)
		}
	})
}

// referenceSnappy decodes a raw or xerial-framed snappy section with s2,
// trusting nothing but refusing what snappy itself cannot make.
func referenceSnappy(src []byte) ([]byte, error) {
	blocks := [][]byte{src}
	if len(src) >= xerialHeaderSize && bytes.HasPrefix(src, xerialMagic) {
		blocks = nil
		for rem := src[xerialHeaderSize:]; len(rem) > 0; {
			block, next, err := xerialChunk(rem)
			if err != nil {
				return nil, err
			}
			blocks, rem = append(blocks, block), next
		}
	}
	var out []byte
	for _, block := range blocks {
		n, err := s2.DecodedLen(block)
		if err != nil || n > fuzzLimit || len(out)+n > fuzzLimit {
			return nil, errors.New("too large or corrupt")
		}
		if _, k := binary.Uvarint(block); n > 64*(len(block)-k)/3 {
			return nil, errors.New("more than snappy can make")
		}
		d, err := s2.Decode(nil, block)
		if err != nil {
			return nil, err
		}
		out = append(out, d...)
	}
	return out, nil
}
