package batch

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// allocated reports the bytes fn allocates.
func allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func zstdFrame(windowByte byte, blocks ...[]byte) []byte {
	f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, windowByte}
	for _, b := range blocks {
		f = append(f, b...)
	}
	return f
}

// rleBlock is a zstd RLE block: n copies of one byte from 4 bytes.
func rleBlock(n int, last bool) []byte {
	h := n<<3 | 1<<1
	if last {
		h |= 1
	}
	return []byte{byte(h), byte(h >> 8), byte(h >> 16), 'z'}
}

func TestZstdBoundedMemory(t *testing.T) {
	// A frame declaring a 128 MiB window (the largest accepted) around
	// one raw byte. A streaming decoder would allocate the window.
	tiny := zstdFrame(0x88, []byte{0x09, 0x00, 0x00, 'x'})
	decompress(Zstd, tiny, 1<<20) // warm the pool
	var out []byte
	var err error
	if n := allocated(func() { out, err = decompress(Zstd, tiny, 1<<20) }); err != nil || string(out) != "x" || n > 64<<10 {
		t.Fatalf("tiny frame: %q, %v, %d bytes allocated", out, err, n)
	}
	// A window over the accepted maximum is refused.
	if _, err := decompress(Zstd, zstdFrame(0x90, []byte{0x09, 0x00, 0x00, 'x'}), 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("256 MiB window: %v", err)
	}

	// A bomb: 1000 RLE blocks of 128 KiB, 125 MiB from 4 KB.
	var blocks [][]byte
	for i := range 1000 {
		blocks = append(blocks, rleBlock(128<<10, i == 999))
	}
	bomb := zstdFrame(0x88, blocks...)
	if n := allocated(func() { _, err = decompress(Zstd, bomb, 1<<20) }); !errors.Is(err, ErrTooLarge) || n > 8<<20 {
		t.Fatalf("bomb: %v, %d bytes allocated", err, n)
	}
	// Within the bound it decodes.
	out, err = decompress(Zstd, zstdFrame(0x88, rleBlock(128<<10, false), rleBlock(100, true)), 128<<10+100)
	if err != nil || len(out) != 128<<10+100 || !bytes.Equal(out[:3], []byte("zzz")) {
		t.Fatalf("two blocks: %d bytes, %v", len(out), err)
	}
}

func TestBombsBounded(t *testing.T) {
	raw := bytes.Repeat([]byte{0}, 64<<20)
	for _, c := range codecs[1:] {
		comp, err := compress(nil, raw, c)
		if err != nil {
			t.Fatal(err)
		}
		var got error
		n := allocated(func() { _, got = decompress(c, comp, 1<<20) })
		if !errors.Is(got, ErrTooLarge) || n > 16<<20 {
			t.Errorf("%s: %d compressed bytes: %v, %d bytes allocated", c, len(comp), got, n)
		}
	}
}

func TestNegativeLimit(t *testing.T) {
	for _, c := range codecs[1:] {
		b := mustBuild(t, template, c, sampleRecords()[:1])
		if _, err := Records(b, -1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v", c, err)
		}
	}
}

// TestZstdWithoutContentSize: Java producers and librdkafka stream zstd, so
// their frames do not declare their content size, and one that inflates
// far past the first guess must still decode, within the bound.
func TestZstdWithoutContentSize(t *testing.T) {
	recs := make([]Record, 300)
	for i := range recs {
		recs[i] = Record{OffsetDelta: int32(i), Key: []byte("key"), Value: bytes.Repeat([]byte("barge "), 200)}
	}
	raw := rawRecords(recs)
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil || w.Close() != nil {
		t.Fatal(err)
	}
	var fh zstd.Header
	if err := fh.Decode(buf.Bytes()); err != nil || fh.HasFCS || len(raw) < 64*buf.Len() {
		t.Fatalf("want a frame without a content size, inflating 64 times or more: %v, %+v, %d from %d bytes", err, fh, len(raw), buf.Len())
	}
	b := withBody(t, template, Zstd, int32(len(recs)), buf.Bytes())
	if got, err := Records(b, len(raw)); err != nil || len(got) != len(recs) {
		t.Fatalf("Records: %d records, %v", len(got), err)
	}
	if _, err := ValidateRecords(context.Background(), b, len(raw), nil); err != nil {
		t.Fatalf("ValidateRecords: %v", err)
	}
	for _, limit := range []int{len(raw) - 1, 100 << 10} {
		if _, err := Records(b, limit); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Records, limit %d: %v, want ErrTooLarge", limit, err)
		}
	}
}

// lyingZstd is a 16-byte zstd frame whose header declares 64 MiB of
// content (single segment, a 4-byte size field) around one raw block of 4
// bytes.
func lyingZstd() []byte {
	f := binary.LittleEndian.AppendUint32([]byte{0x28, 0xb5, 0x2f, 0xfd, 0xa0}, 64<<20)
	return append(f, 4<<3|1, 0, 0, 'b', 'o', 'm', 'b')
}

// lyingSnappy is a raw snappy block whose preamble declares 64 MiB,
// followed by one literal of 4 bytes.
func lyingSnappy(declared int) []byte {
	return append(binary.AppendUvarint(nil, uint64(declared)), 3<<2, 'b', 'o', 'm', 'b')
}

// lyingXerial is xerial framing around n chunks, each a lying snappy block,
// declaring 64 MiB together.
func lyingXerial(n int) []byte {
	b := append(bytes.Clone(xerialMagic), 0, 0, 0, 1, 0, 0, 0, 1)
	for range n {
		block := lyingSnappy(64 << 20 / n)
		b = binary.BigEndian.AppendUint32(b, uint32(len(block)))
		b = append(b, block...)
	}
	return b
}

// TestLyingHeaders: a header declaring far more output than the compressed
// bytes behind it can produce is refused as corrupt before anything of the
// declared size is allocated, by every path that decompresses.
func TestLyingHeaders(t *testing.T) {
	const limit = 64 << 20 // the produce path's bound
	for _, tc := range []struct {
		name string
		c    Codec
		body []byte
	}{
		{"zstd frame content size", Zstd, lyingZstd()},
		{"snappy decoded length", Snappy, lyingSnappy(64 << 20)},
		{"xerial chunk", Snappy, lyingXerial(1)},
		{"xerial chunks", Snappy, lyingXerial(64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := withBody(t, template, tc.c, 1, tc.body)
			for what, fn := range map[string]func() error{
				"decompress":      func() error { _, err := decompress(tc.c, tc.body, limit); return err },
				"Records":         func() error { _, err := Records(b, limit); return err },
				"ValidateRecords": func() error { _, err := ValidateRecords(context.Background(), b, limit, nil); return err },
			} {
				fn() // warm the pools
				var err error
				if n := allocated(func() { err = fn() }); !errors.Is(err, ErrCorrupt) || n > 1<<20 {
					t.Errorf("%s of %d bytes: %v, %d bytes allocated; want ErrCorrupt and under 1 MiB", what, len(tc.body), err, n)
				}
			}
		})
	}
}

// xerialFramed frames raw in xerial chunks of 32 KiB, as the Java
// producer's SnappyOutputStream does.
func xerialFramed(raw []byte) []byte {
	b := append(bytes.Clone(xerialMagic), 0, 0, 0, 1, 0, 0, 0, 1)
	for len(raw) > 0 {
		n := min(len(raw), 32<<10)
		block := s2.EncodeSnappy(nil, raw[:n])
		b = binary.BigEndian.AppendUint32(b, uint32(len(block)))
		b, raw = append(b, block...), raw[n:]
	}
	return b
}

// zstdStream writes a zstd stream, as Java producers and librdkafka do: a
// frame that does not declare its content size.
func zstdStream(w io.Writer) io.WriteCloser {
	e, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err)
	}
	return e
}

// TestHighlyCompressible: real output still decodes however far it
// inflates, for a cost in memory proportional to it: one record of 32 MiB
// of zeros under zstd (with a content size, as franz-go writes, and without,
// as Java and librdkafka stream) and snappy (raw and xerial framed). A zstd
// frame that declares no size, or a size too large to believe, is decoded
// into a buffer that doubles: the attempts before the last cost up to the
// output again, and the decoder, overrunning each by a block, regrows it.
func TestHighlyCompressible(t *testing.T) {
	raw := rawRecords([]Record{{Key: []byte("k"), Value: make([]byte, 32<<20)}})
	var stream bytes.Buffer
	w := zstdStream(&stream)
	if _, err := w.Write(raw); err != nil || w.Close() != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    Codec
		body []byte
	}{
		{"zstd with content size", Zstd, squeeze(t, Zstd, raw)},
		{"zstd stream", Zstd, stream.Bytes()},
		{"snappy", Snappy, squeeze(t, Snappy, raw)},
		{"xerial snappy", Snappy, xerialFramed(raw)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := withBody(t, template, tc.c, 1, tc.body)
			var err error
			if n := allocated(func() { _, err = ValidateRecords(context.Background(), b, 64<<20, nil) }); err != nil || n > 5*uint64(len(raw)) {
				t.Errorf("ValidateRecords of %d bytes inflating to %d: %v, %d bytes allocated", len(tc.body), len(raw), err, n)
			}
			if recs, err := Records(b, 64<<20); err != nil || len(recs) != 1 || len(recs[0].Value) != 32<<20 {
				t.Errorf("Records: %d records, %v", len(recs), err)
			}
			if _, err := ValidateRecords(context.Background(), b, len(raw)-1, nil); !errors.Is(err, ErrTooLarge) {
				t.Errorf("ValidateRecords with a bound a byte short: %v, want ErrTooLarge", err)
			}
		})
	}
}

// setContentSize rewrites the content size that the zstd frame at the
// start of b declares, in place.
func setContentSize(t *testing.T, b []byte, n int) {
	t.Helper()
	f, _, err := zstdNextFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	switch at := f.hdr - [4]int{1, 2, 4, 8}[b[4]>>6]; b[4] >> 6 {
	case 0:
		b[at] = byte(n)
	case 1:
		binary.LittleEndian.PutUint16(b[at:], uint16(n-256))
	case 2:
		binary.LittleEndian.PutUint32(b[at:], uint32(n))
	case 3:
		binary.LittleEndian.PutUint64(b[at:], uint64(n))
	}
}

// TestZstdFrames: every frame of a section is held to what it declares,
// whether it is believed (decoded at once into a buffer of its size) or
// compressed too far to be (decoded with its size left out, by doubling).
func TestZstdFrames(t *testing.T) {
	small := rawRecords(sampleRecords())
	zeros := make([]byte, 200<<10)
	far := squeeze(t, Zstd, zeros) // too far compressed to be believed
	if f, _, _ := zstdNextFrame(far); f.fcs <= zstdTrustRatio*len(far)+zstdTrustSlack {
		t.Fatalf("a frame of %d bytes declaring %d is believed", len(far), f.fcs)
	}
	understated := bytes.Clone(far)
	setContentSize(t, understated, 100<<10)
	overstated := bytes.Clone(far)
	setContentSize(t, overstated, 300<<10)
	skippable := []byte{0x53, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c'}
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name string
		src  []byte
		want []byte // nil: ErrCorrupt
	}{
		{"believed", squeeze(t, Zstd, small), small},
		{"compressed too far to believe", far, zeros},
		{"two frames, both believed", join(squeeze(t, Zstd, small), squeeze(t, Zstd, small)), join(small, small)},
		{"two frames, one too far", join(squeeze(t, Zstd, small), far), join(small, zeros)},
		{"a skippable frame first", join(skippable, squeeze(t, Zstd, small)), small},
		{"a lying second frame", join(squeeze(t, Zstd, small), lyingZstd()), nil},
		{"a size understated", understated, nil},
		{"a size overstated", overstated, nil},
		{"only a skippable frame", skippable, []byte{}},
		{"a skippable frame past the end", skippable[:10], nil},
		{"a block past the end", far[:len(far)-1], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limits := []int{64 << 20}
			if tc.want != nil {
				limits = append(limits, len(tc.want)) // exactly enough
			}
			for _, limit := range limits {
				l := &lease{b: NewBudget(1 << 20), ctx: t.Context()}
				got, err := decompressZstd(nil, tc.src, limit, l)
				if l.release(); tc.want == nil && !errors.Is(err, ErrCorrupt) || tc.want != nil && (err != nil || !bytes.Equal(got, tc.want)) {
					t.Errorf("limit %d: %d bytes, %v; want %d bytes", limit, len(got), err, len(tc.want))
				}
				if n := l.b.InUse(); n != 0 {
					t.Errorf("%d bytes of the budget still held", n)
				}
			}
		})
	}
}
