package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/bargehq/barge/internal/harness"
	"github.com/bargehq/barge/pkg/batch"
)

// Wire offsets of the v2 batch header fields the cases below rewrite.
const (
	wireLength          = 8
	wireAttributes      = 21
	wireLastOffsetDelta = 23
	wireNumRecords      = 57
)

// recordsBatch builds an uncompressed batch of one record per value, keyed
// "k<i>", with the given offset deltas (0, 1, 2, … when nil) and timestamp
// deltas from firstTs (0 when nil); the header's MaxTimestamp is maxTs.
func recordsBatch(t *testing.T, values []string, offsets []int32, tsDeltas []int64, firstTs, maxTs int64) []byte {
	t.Helper()
	recs := make([]batch.Record, len(values))
	for i, v := range values {
		recs[i] = batch.Record{OffsetDelta: int32(i), Key: fmt.Appendf(nil, "k%d", i), Value: []byte(v)}
		if offsets != nil {
			recs[i].OffsetDelta = offsets[i]
		}
		if tsDeltas != nil {
			recs[i].TimestampDelta = tsDeltas[i]
		}
	}
	b, err := batch.Build(batch.Header{FirstTimestamp: firstTs, MaxTimestamp: maxTs, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		batch.None, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reframe replaces the records section of b with body under codec, fixes
// batchLength and recomputes the CRC, so that only the records are wrong.
func reframe(b []byte, codec batch.Codec, body []byte) []byte {
	out := append(bytes.Clone(b[:batch.HeaderSize]), body...)
	binary.BigEndian.PutUint32(out[wireLength:], uint32(len(out)-12))
	attrs := binary.BigEndian.Uint16(out[wireAttributes:])
	binary.BigEndian.PutUint16(out[wireAttributes:], attrs&^7|uint16(codec))
	batch.UpdateCRC(out)
	return out
}

// recount sets numRecords and lastOffsetDelta to agree with each other
// (so the header alone looks right) and recomputes the CRC.
func recount(b []byte, n int32) []byte {
	out := bytes.Clone(b)
	binary.BigEndian.PutUint32(out[wireNumRecords:], uint32(n))
	binary.BigEndian.PutUint32(out[wireLastOffsetDelta:], uint32(n-1))
	batch.UpdateCRC(out)
	return out
}

func gzipped(t *testing.T, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCorruptRecords: a batch whose header and CRC are fine but whose
// records are not is refused with Kafka's error for it and stores nothing:
// the high watermark does not move and a consumer reads only the good
// records, at contiguous offsets. Records are judged by their own
// timestamps, and a header whose maxTimestamp understates its records is
// corrected before it is stored, as Kafka does.
func TestCorruptRecords(t *testing.T) {
	for _, b := range harness.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			a := startAgent(t, b, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			createTopic(t, a.Addr, "recs", 1, map[string]*string{"message.timestamp.before.max.ms": kmsg.StringPtr("60000")})
			cl := client(t, a.Addr)
			now := time.Now().UnixMilli()
			minute := time.Minute.Milliseconds()

			good := recordsBatch(t, []string{"a0", "a1", "a2"}, nil, nil, now, now)
			if code := produceRaw(ctx, t, cl, "recs", good); code != 0 {
				t.Fatalf("good batch: %v", kerr.ErrorForCode(code))
			}
			body := good[batch.HeaderSize:]
			garbage := bytes.Repeat([]byte{0xff}, len(body))
			cases := []struct {
				name string
				b    []byte
				want *kerr.Error
			}{
				{"garbage records", reframe(good, batch.None, garbage), kerr.InvalidRecord},
				{"count above the records", recount(good, 4), kerr.InvalidRecord},
				{"count below the records", recount(good, 2), kerr.InvalidRecord},
				{"offset deltas 0, 2, 2", recordsBatch(t, []string{"x", "y", "z"}, []int32{0, 2, 2}, nil, now, now), kerr.InvalidRecord},
				{"a byte after the last record", reframe(good, batch.None, append(bytes.Clone(body), 0)), kerr.InvalidRecord},
				{"gzip of garbage records", reframe(good, batch.Gzip, gzipped(t, garbage)), kerr.InvalidRecord},
				{"gzip of the records and a byte more", reframe(good, batch.Gzip, gzipped(t, append(bytes.Clone(body), 0))), kerr.InvalidRecord},
				{"not a gzip stream", reframe(good, batch.Gzip, body), kerr.CorruptMessage},
				// The header's timestamps are now; one record's are not.
				{"a record 10 minutes behind", recordsBatch(t, []string{"x", "y"}, nil, []int64{0, -10 * minute}, now, now), kerr.InvalidTimestamp},
				{"a record 2 hours ahead", recordsBatch(t, []string{"x", "y"}, nil, []int64{0, 120 * minute}, now, now), kerr.InvalidTimestamp},
			}
			for _, tc := range cases {
				if code := produceRaw(ctx, t, cl, "recs", tc.b); code != tc.want.Code {
					t.Errorf("%s: %v, want %v", tc.name, kerr.ErrorForCode(code), tc.want)
				}
			}
			if ends := endOffsets(t, a.Addr, "recs"); ends[0] != 3 {
				t.Errorf("high watermark %d after the refused batches, want 3", ends[0])
			}

			// Its newest record is 10 minutes ahead (within the hour
			// message.timestamp.after.max.ms allows); the header says now.
			understated := recordsBatch(t, []string{"b0", "b1", "b2"}, nil, []int64{0, 10 * minute, 0}, now, now)
			if code := produceRaw(ctx, t, cl, "recs", understated); code != 0 {
				t.Fatalf("batch with an understated maxTimestamp: %v", kerr.ErrorForCode(code))
			}
			if t.Failed() {
				return // a poisoned partition would only stall the consumer
			}
			got := consumeAll(t, a.Addr, "recs", map[int32]int64{0: 6})[0]
			for i, want := range []string{"a0", "a1", "a2", "b0", "b1", "b2"} {
				if string(got[i].Value) != want {
					t.Errorf("offset %d: %q, want %q", i, got[i].Value, want)
				}
			}
			fetched := fetchRaw(ctx, t, cl, "recs", 3, 0)
			found := false
			err := batch.Split(fetched.RecordBatches, func(fb []byte, h batch.Header) error {
				if h.BaseOffset != 3 {
					return nil
				}
				found = true
				if _, err := batch.Validate(fb); err != nil {
					t.Errorf("stored batch at offset 3: %v", err)
				}
				if h.MaxTimestamp != now+10*minute || h.TimestampType() != 0 {
					t.Errorf("stored batch at offset 3: maxTimestamp %d (type %d), want its newest record's %d", h.MaxTimestamp, h.TimestampType(), now+10*minute)
				}
				return nil
			})
			if err != nil || !found {
				t.Fatalf("fetch at offset 3: no batch there (%v)", err)
			}
		})
	}
}
