package batch

import (
	"bytes"
	"hash/crc32"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cross-checks against franz-go: its kmsg types encode and decode batches
// and records independently of this package, and kgo's default compressor
// and decompressor are the ones franz-go producers and consumers use.

func toKmsg(r Record) kmsg.Record {
	k := kmsg.Record{
		Attributes:       r.Attributes,
		TimestampDelta64: r.TimestampDelta,
		OffsetDelta:      r.OffsetDelta,
		Key:              r.Key,
		Value:            r.Value,
	}
	for _, h := range r.Headers {
		k.Headers = append(k.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
	}
	// kmsg writes Length as given: encode once to measure.
	k.Length = int32(len(k.AppendTo(nil)) - 1)
	return k
}

// kgoBatch encodes records as a franz-go producer would: kmsg records,
// compressed with kgo's compressor, in a kmsg.RecordBatch whose CRC is
// computed here with hash/crc32.
func kgoBatch(t *testing.T, c Codec, recs []Record) []byte {
	t.Helper()
	var raw []byte
	for _, r := range recs {
		k := toKmsg(r)
		raw = k.AppendTo(raw)
	}
	body := raw
	if c != None {
		comp, err := kgo.DefaultCompressor(codecOption(c))
		if err != nil {
			t.Fatal(err)
		}
		var used kgo.CompressionCodecType
		body, used = comp.Compress(new(bytes.Buffer), raw)
		if int(used) != int(c) {
			t.Fatalf("kgo compressed with %d, want %d", used, c)
		}
		body = bytes.Clone(body)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(HeaderSize - 12 + len(body)),
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(c),
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       template.FirstTimestamp,
		MaxTimestamp:         template.MaxTimestamp,
		ProducerID:           template.ProducerID,
		ProducerEpoch:        template.ProducerEpoch,
		FirstSequence:        template.BaseSequence,
		NumRecords:           int32(len(recs)),
		Records:              body,
	}
	b := rb.AppendTo(nil)
	crc := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli))
	b[17], b[18], b[19], b[20] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	return b
}

func codecOption(c Codec) kgo.CompressionCodec {
	switch c {
	case Gzip:
		return kgo.GzipCompression()
	case Snappy:
		return kgo.SnappyCompression()
	case LZ4:
		return kgo.Lz4Compression()
	case Zstd:
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

func TestDecodeFranzGoBatch(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			want := sampleRecords()
			b := kgoBatch(t, c, want)
			h, err := Validate(b)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if h.ProducerID != template.ProducerID || h.Codec() != c {
				t.Fatalf("header %+v", h)
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

func TestFranzGoDecodesBuild(t *testing.T) {
	dec := kgo.DefaultDecompressor()
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			want := sampleRecords()
			b := mustBuild(t, template, c, want)
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b); err != nil {
				t.Fatalf("kmsg.RecordBatch.ReadFrom: %v", err)
			}
			if crc := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)); uint32(rb.CRC) != crc {
				t.Fatalf("crc %08x, computed %08x", uint32(rb.CRC), crc)
			}
			if rb.NumRecords != int32(len(want)) || rb.LastOffsetDelta != int32(len(want)-1) ||
				rb.FirstSequence != template.BaseSequence || rb.Attributes&7 != int16(c) {
				t.Fatalf("batch %+v", rb)
			}
			raw, err := dec.Decompress(rb.Records, kgo.CompressionCodecType(c))
			if err != nil {
				t.Fatalf("kgo Decompress: %v", err)
			}
			for i, w := range want {
				var k kmsg.Record
				if err := k.ReadFrom(raw); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				wk := toKmsg(w)
				wk.TimestampDelta = int32(wk.TimestampDelta64)
				if !reflect.DeepEqual(k, wk) {
					t.Fatalf("record %d\n got %+v\nwant %+v", i, k, wk)
				}
				raw = raw[varintSize(int64(k.Length))+int(k.Length):]
			}
			if len(raw) != 0 {
				t.Fatalf("%d bytes left", len(raw))
			}
		})
	}
}
