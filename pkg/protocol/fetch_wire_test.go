package protocol

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/pkg/cache"
	"github.com/bargehq/barge/pkg/meta"
	"github.com/bargehq/barge/pkg/objstore"
	"github.com/bargehq/barge/pkg/tiered"
)

// randomFetchAnswer builds an answer with every field the versions carry
// set at random, records as several slices of one buffer per partition,
// and the same answer with each partition's records copied together, as
// kmsg encodes them.
func randomFetchAnswer(r *rand.Rand, version int16) (*fetchAnswer, *kmsg.FetchResponse) {
	pool := make([]byte, 1<<16)
	for i := range pool {
		pool[i] = byte(r.Uint32())
	}
	fa := &fetchAnswer{FetchResponse: kmsg.NewPtrFetchResponse()}
	want := kmsg.NewPtrFetchResponse()
	for _, v := range []*kmsg.FetchResponse{fa.FetchResponse, want} {
		v.Version = version
	}
	throttle, code, session := r.Int32(), int16(r.IntN(100)), r.Int32()
	fa.ThrottleMillis, fa.ErrorCode, fa.SessionID = throttle, code, session
	want.ThrottleMillis, want.ErrorCode, want.SessionID = throttle, code, session
	if r.IntN(3) == 0 {
		for range r.IntN(3) + 1 {
			b := kmsg.NewFetchResponseBroker()
			b.NodeID, b.Host, b.Port = r.Int32(), string(pool[:r.IntN(20)]), r.Int32()
			if r.IntN(2) == 0 {
				rack := "rack-" + string(rune('a'+r.IntN(26)))
				b.Rack = &rack
			}
			fa.Brokers = append(fa.Brokers, b)
		}
		want.Brokers = slices.Clone(fa.Brokers)
	}
	var firsts [][][]byte // earlier partitions' slices, to repeat one
	for ti := range r.IntN(4) {
		t := kmsg.NewFetchResponseTopic()
		t.Topic = "topic-" + string(rune('a'+ti))
		t.TopicID[0], t.TopicID[15] = byte(ti), byte(r.Uint32())
		t.Partitions = make([]kmsg.FetchResponseTopicPartition, r.IntN(5))
		wt := t
		wt.Partitions = make([]kmsg.FetchResponseTopicPartition, len(t.Partitions))
		for pi := range t.Partitions {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition, p.ErrorCode = int32(pi), int16(r.IntN(3))
			p.HighWatermark, p.LastStableOffset, p.LogStartOffset = r.Int64(), r.Int64(), r.Int64()
			p.PreferredReadReplica = int32(r.IntN(3)) - 1
			switch r.IntN(3) {
			case 0:
				p.AbortedTransactions = nil
			case 1:
				p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			default:
				for range r.IntN(3) + 1 {
					p.AbortedTransactions = append(p.AbortedTransactions,
						kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: r.Int64(), FirstOffset: r.Int64()})
				}
			}
			if r.IntN(4) == 0 {
				p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset = r.Int32(), r.Int64()
			}
			if r.IntN(4) == 0 {
				p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = r.Int32(), r.Int32()
			}
			if r.IntN(4) == 0 {
				p.SnapshotID.EndOffset, p.SnapshotID.Epoch = r.Int64(), r.Int32()
			}
			wp := p
			var recs [][]byte
			switch {
			case r.IntN(5) == 0:
				p.RecordBatches, wp.RecordBatches = nil, nil // as Kafka never sends, kmsg can
			case len(firsts) > 0 && r.IntN(4) == 0:
				// The request named a partition twice, with other limits:
				// the same first slice, fewer after it.
				prev := firsts[r.IntN(len(firsts))]
				recs = prev[:1+r.IntN(len(prev))]
			default:
				for range r.IntN(4) {
					at := r.IntN(len(pool) - 300)
					recs = append(recs, pool[at:at+1+r.IntN(300)])
				}
				p.RecordBatches, wp.RecordBatches = []byte{}, []byte{}
			}
			if len(recs) > 0 {
				firsts = append(firsts, recs)
				wp.RecordBatches = slices.Concat(recs...)
			}
			t.Partitions[pi] = p
			fa.setRecords(&t.Partitions[pi], recs)
			wt.Partitions[pi] = wp
		}
		fa.Topics = append(fa.Topics, t)
		want.Topics = append(want.Topics, wt)
	}
	return fa, want
}

// TestFetchWireMatchesKmsg checks that an answer written from the cached
// slices is, byte for byte, what kmsg encodes from the records copied
// together, at every Fetch version we serve.
func TestFetchWireMatchesKmsg(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for version := int16(4); version <= 16; version++ {
		for range 300 {
			fa, want := randomFetchAnswer(r, version)
			in := &inflight{key: 1, version: version, correlationID: r.Int32(), flexible: version >= 12, resp: fa}
			_, out := in.encode(nil, nil)
			got := bytes.Join(out, nil)

			exp := binary.BigEndian.AppendUint32(nil, 0)
			exp = binary.BigEndian.AppendUint32(exp, uint32(in.correlationID))
			if in.flexible {
				exp = append(exp, 0)
			}
			exp = want.AppendTo(exp)
			binary.BigEndian.PutUint32(exp, uint32(len(exp)-4))
			if !bytes.Equal(got, exp) {
				t.Fatalf("v%d: written answer differs from kmsg's encoding:\ngot  %x\nwant %x", version, got, exp)
			}
			// And it reads back as the answer it is.
			back := kmsg.NewPtrFetchResponse()
			back.Version = version
			if err := back.ReadFrom(got[8+min(1, int(version/12)):]); err != nil {
				t.Fatalf("v%d: reading the answer back: %v", version, err)
			}
		}
	}
}

// TestFetchWireUnknownTags checks that an answer carrying tagged fields
// kmsg keeps unparsed falls back to kmsg's encoder, records and all.
func TestFetchWireUnknownTags(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for {
		fa, want := randomFetchAnswer(r, 16)
		if len(fa.Topics) == 0 || len(fa.Topics[0].Partitions) == 0 {
			continue
		}
		fa.Topics[0].Partitions[0].UnknownTags.Set(9, []byte("x"))
		want.Topics[0].Partitions[0].UnknownTags.Set(9, []byte("x"))
		in := &inflight{key: 1, version: 16, correlationID: 7, flexible: true, resp: fa}
		_, out := in.encode(nil, nil)
		exp := want.AppendTo(append(binary.BigEndian.AppendUint32([]byte{0, 0, 0, 0}, 7), 0))
		binary.BigEndian.PutUint32(exp, uint32(len(exp)-4))
		if got := bytes.Join(out, nil); !bytes.Equal(got, exp) {
			t.Fatalf("answer with unknown tags differs from kmsg's encoding:\ngot  %x\nwant %x", got, exp)
		}
		return
	}
}

// A cut answer reads the oldest segments whole, for every partition, and
// leaves the partitions' chunks in later segments to the next fetch.
func TestReadOldestSegments(t *testing.T) {
	c, err := cache.New(64<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := &Server{reader: tiered.NewReader(objstore.NewMemory(), c)}
	var plans []fetchPlan
	for p := range 3 {
		var pl fetchPlan
		// Partition p starts p segments later: the laggards come first.
		for seg := p; seg < p+3; seg++ {
			pl.chunks = append(pl.chunks, meta.Chunk{Object: meta.SegmentPrefix + strconv.Itoa(seg), Len: 100})
		}
		plans = append(plans, pl)
	}
	// seg/0 holds 100 bytes of the answer, seg/1 200, seg/2 300: 350 bytes
	// take seg/0 to seg/2, and nothing later.
	s.readOldestSegments(plans, 350, nil)
	want := [][]string{{"0", "1", "2"}, {"1", "2"}, {"2"}}
	for p, pl := range plans {
		var got []string
		for _, c := range pl.chunks {
			got = append(got, strings.TrimPrefix(c.Object, meta.SegmentPrefix))
		}
		if !slices.Equal(got, want[p]) {
			t.Errorf("partition %d reads segments %v, want %v", p, got, want[p])
		}
	}
}

// BenchmarkFetchAnswer encodes a catch-up answer of 64 partitions, 1 MiB
// each in eight cached slices: "copied" copies each partition's records
// together and lets kmsg encode the answer (what Barge did before answers
// were written from the cache), "pieces" writes the framing and points at
// the cached slices.
func BenchmarkFetchAnswer(b *testing.B) {
	pool := make([]byte, 64<<20) // every slice its own, as chunks are
	build := func() *fetchAnswer {
		fa := &fetchAnswer{FetchResponse: kmsg.NewPtrFetchResponse()}
		fa.Version = 16
		t := kmsg.NewFetchResponseTopic()
		t.Topic = "bench"
		t.Partitions = make([]kmsg.FetchResponseTopicPartition, 64)
		for pi := range t.Partitions {
			t.Partitions[pi] = kmsg.NewFetchResponseTopicPartition()
			t.Partitions[pi].Partition = int32(pi)
		}
		fa.Topics = append(fa.Topics, t)
		for pi := range fa.Topics[0].Partitions {
			recs := make([][]byte, 8)
			for k := range recs {
				at := (pi*8 + k) * (128 << 10)
				recs[k] = pool[at : at+128<<10]
			}
			fa.setRecords(&fa.Topics[0].Partitions[pi], recs)
		}
		return fa
	}
	var buf []byte
	var out net.Buffers
	b.Run("copied", func(b *testing.B) {
		b.SetBytes(64 << 20)
		b.ReportAllocs()
		for b.Loop() {
			fa := build()
			fa.flatten()
			buf = fa.AppendTo(buf[:0])
		}
	})
	b.Run("pieces", func(b *testing.B) {
		b.SetBytes(64 << 20)
		b.ReportAllocs()
		for b.Loop() {
			in := &inflight{key: 1, version: 16, flexible: true, resp: build()}
			buf, out = in.encode(buf[:0], out[:0])
		}
	})
}
