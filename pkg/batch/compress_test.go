package batch

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

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
	if _, err := ValidateRecords(b, len(raw)); err != nil {
		t.Fatalf("ValidateRecords: %v", err)
	}
	for _, limit := range []int{len(raw) - 1, 100 << 10} {
		if _, err := Records(b, limit); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Records, limit %d: %v, want ErrTooLarge", limit, err)
		}
	}
}
